//! The primary's side of replication: streams flushed WAL to the mirror and tracks how far the
//! mirror has flushed. The mirror counts as in sync (streaming) once it has caught up with the
//! primary's flushed WAL; from then on, in synchronous mode, no commit is acknowledged before
//! the mirror has it.

use tracing::{info, warn, Instrument};

use super::Instance;
use crate::io::net::Connection;
use crate::io::runtime::{self, timeout, Instant};
use crate::model::catalog::{Dbid, Role};
use crate::wal::Lsn;
use crate::wire::{WalFeedback, WalMessage};

const MAX_CHUNK_BYTES: usize = 128 * 1024;

impl Instance {
    pub(super) async fn stream_wal(
        self,
        mut conn: Connection,
        mirror_dbid: Dbid,
        from: Lsn,
        mirror_system_id: Option<u64>,
    ) {
        let flushed = self.inner.wal.flushed_lsn();
        let system_id = self.system_id();
        let refusal = if self.role() != Role::Primary {
            Some(format!("dbid {} is not a primary", self.dbid()))
        } else if from > flushed {
            Some(format!("mirror dbid {mirror_dbid} asks for WAL from {from}, ahead of the primary's flushed {flushed}: it needs recovery"))
        } else {
            history_refusal(self.dbid(), system_id, mirror_dbid, mirror_system_id, from)
        };
        if let Some(reason) = refusal {
            warn!(mirror_dbid, %reason, "replication refused");
            let _ = conn.send(&WalMessage::Refused { reason }).await;
            return;
        }
        let generation = {
            let mut state = self.inner.state.lock().unwrap();
            state.sender.generation += 1;
            state.sender.connected = true;
            state.sender.caught_up = false;
            state.sender.generation
        };
        self.inner.sync.modify(|s| s.mirror_flushed = from);
        info!(mirror_dbid, from, "mirror connected: catching up");
        let Connection {
            mut reader,
            mut writer,
        } = conn;
        let start = WalMessage::Start {
            system_id: system_id.expect("checked: a primary that streams has a history"),
            epoch: self.epoch(),
        };
        if writer.send(&start).await.is_err() {
            let mut state = self.inner.state.lock().unwrap();
            if state.sender.generation == generation {
                state.sender.connected = false;
                state.sender.last_disconnect = Instant::now();
            }
            return;
        }
        let feedback = {
            let inst = self.clone();
            let wal_timeout = self.inner.cfg.wal_timeout;
            runtime::spawn(
                async move {
                    loop {
                        let msg: WalFeedback = match timeout(wal_timeout, reader.recv()).await {
                            Ok(Ok(msg)) => msg,
                            _ => return,
                        };
                        inst.mirror_flushed(generation, msg.flushed);
                    }
                }
                .in_current_span(),
            )
        };
        let mut sent = from;
        let keepalive = self.inner.cfg.wal_timeout / 3;
        loop {
            if feedback.is_finished() {
                break;
            }
            let flushed = self.inner.wal.flushed_lsn();
            let msg = if sent < flushed {
                let bytes = match self
                    .inner
                    .engine
                    .lock()
                    .await
                    .read_wal(sent, MAX_CHUNK_BYTES)
                {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        self.storage_fault(&e);
                        break;
                    }
                };
                let start = sent;
                sent += bytes.len() as Lsn;
                WalMessage::Data { start, bytes }
            } else {
                let _ = timeout(keepalive, self.inner.wal.wait_flushed_beyond(sent)).await;
                if self.inner.wal.flushed_lsn() > sent {
                    continue;
                }
                WalMessage::Keepalive {
                    flushed,
                    epoch: self.epoch(),
                }
            };
            if writer.send(&msg).await.is_err() {
                break;
            }
        }
        feedback.abort();
        let mut state = self.inner.state.lock().unwrap();
        if state.sender.generation == generation {
            state.sender.connected = false;
            state.sender.caught_up = false;
            state.sender.last_disconnect = Instant::now();
            info!(mirror_dbid, "mirror disconnected");
            if self.inner.cfg.bugs.syncrep_off_without_marking_mirror_down {
                // Planted bug: the real primary keeps waiting until the prober marks the mirror
                // down in the catalog; only then may it acknowledge commits the mirror lacks.
                self.inner.sync.modify(|s| s.syncrep = false);
            }
        }
    }

    fn mirror_flushed(&self, generation: u64, lsn: Lsn) {
        let mut state = self.inner.state.lock().unwrap();
        if state.sender.generation != generation {
            return;
        }
        if !state.sender.caught_up && lsn >= self.inner.wal.flushed_lsn() {
            state.sender.caught_up = true;
            info!(lsn, "mirror caught up: streaming, in sync");
        }
        drop(state);
        self.inner
            .sync
            .modify(|s| s.mirror_flushed = s.mirror_flushed.max(lsn));
    }
}

/// Why a mirror may not stream from a primary of history `ours`: it holds another history, or
/// none but asks from past the start; `None` when it may.
fn history_refusal(
    dbid: Dbid,
    ours: Option<u64>,
    mirror_dbid: Dbid,
    theirs: Option<u64>,
    from: Lsn,
) -> Option<String> {
    match (ours, theirs) {
        (None, _) => Some(format!(
            "dbid {dbid} has no WAL history (system identifier) to stream"
        )),
        (Some(a), Some(b)) if a != b => Some(format!(
            "mirror dbid {mirror_dbid} holds another WAL history (system identifier {b:016x}, the primary's is {a:016x}): it shares nothing with this primary; recover it with a full copy (recoverseg -F)"
        )),
        (Some(_), None) if from > 0 => Some(format!(
            "mirror dbid {mirror_dbid} has WAL up to {from} but no system identifier; recover it with a full copy (recoverseg -F)"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::history_refusal;

    #[test]
    fn only_a_mirror_of_the_same_history_or_a_new_one_from_the_start_may_stream() {
        assert_eq!(history_refusal(2, Some(7), 3, Some(7), 900), None);
        assert_eq!(history_refusal(2, Some(7), 3, None, 0), None);
        let other = history_refusal(2, Some(7), 3, Some(8), 900).unwrap();
        assert!(
            other.contains("another WAL history") && other.contains("-F"),
            "{other}"
        );
        assert!(history_refusal(2, Some(7), 3, None, 900).is_some());
        assert!(history_refusal(2, None, 3, None, 0).is_some());
    }
}
