//! The client workload: each client runs insert transactions of one to three rows with keys no
//! other transaction uses, and records every one in the history.

use std::time::Duration;

use rand_chacha::rand_core::Rng;
use rand_chacha::ChaCha8Rng;

use cluster::client::Client;
use cluster::proto::DbError;
use cluster::wal::{Key, Value};

use crate::history::{History, Outcome};

pub const TABLES: &[(&str, cluster::wal::TableKind)] = &[
    ("t_heap", cluster::wal::TableKind::Heap),
    ("t_ao", cluster::wal::TableKind::AppendOptimized),
];

pub fn now_ms() -> u64 {
    madsim::time::TimeHandle::current().elapsed().as_millis() as u64
}

pub async fn run_client(
    id: u32,
    coordinator: String,
    timeout: Duration,
    mut rng: ChaCha8Rng,
    history: History,
    stop_at_ms: u64,
) {
    let mut client = Client::new(vec![coordinator], timeout);
    let mut seq: i64 = 0;
    while now_ms() < stop_at_ms {
        let table = TABLES[rng.next_u32().is_multiple_of(4) as usize].0;
        let n = 1 + rng.next_u32() % 3;
        let rows: Vec<(Key, Value)> = (0..n)
            .map(|_| {
                seq += 1;
                let mut value = vec![0u8; 8 + (rng.next_u32() % 120) as usize];
                rng.fill_bytes(&mut value);
                (((id as i64) << 40) | seq, value)
            })
            .collect();
        let txn = history.invoke(id, table, rows.clone(), now_ms());
        let result = async {
            client.begin().await?;
            for (key, value) in &rows {
                client.insert(table, *key, value.clone()).await?;
            }
            client.commit().await
        }
        .await;
        let (outcome, error) = match result {
            Ok(()) => (Outcome::Ok, None),
            Err(DbError::Failed(e)) => {
                let _ = client.abort().await;
                (Outcome::Fail, Some(e))
            }
            Err(DbError::Unknown(e)) => (Outcome::Unknown, Some(e)),
        };
        history.complete(txn, outcome, error, now_ms());
        crate::trace::hash_fact(&format!("txn {txn} {outcome:?} at {}", now_ms()));
        // After a failure, back off as a real client would rather than spin on an unavailable
        // content.
        let think = match outcome {
            Outcome::Ok => Duration::from_millis(rng.next_u64() % 50),
            _ => Duration::from_millis(200 + rng.next_u64() % 300),
        };
        madsim::time::sleep(think).await;
    }
}
