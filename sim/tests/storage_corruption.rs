//! Damage the storage engine must detect, never apply or serve: a flipped bit in the middle of
//! the durable WAL (refused, naming the file and the offset), a torn WAL tail of garbage (the
//! normal end of the WAL after a crash: cut there), a valid block or record that a misdirected
//! write put at the wrong offset, a control file whose checksum fails, and an `fsync` that
//! fails once (every later flush fails too, though the disk's next `fsync` succeeds).

mod storage_support;

use cluster::storage::{Engine, EngineOptions, Key, Lsn, StorageError};
use sim::world::disk::{SimDisk, TornTail};

use storage_support::*;

/// Five flushed transactions, each a heap row and an append-optimized row; their end LSNs.
async fn five_commits(disk: &SimDisk) -> Vec<Lsn> {
    let mut engine = open(disk, 256).await.unwrap();
    for def in defs() {
        engine.create_table(def).unwrap();
    }
    let mut ends = Vec::new();
    for xid in 1..=5 {
        let rows = [
            put(HEAP, xid, xid as Key, 500),
            put(AO, xid, xid as Key, 50),
        ];
        let end = engine.commit(xid, &rows).unwrap();
        engine.wal().flush_to(end).await.unwrap();
        ends.push(end);
    }
    ends
}

#[test]
fn a_flipped_bit_in_the_middle_of_the_durable_wal_is_refused_naming_the_file_and_offset() {
    run(13, async {
        let disk = sim_disk();
        let ends = five_commits(&disk).await;
        // A byte inside the first record of transaction 4: transactions 4 and 5 are durable
        // after it, and cutting the WAL there would drop them.
        assert!(disk.corrupt("pg_wal/wal", ends[2] + 20, 0x40));
        disk.crash(|_, _| TornTail::None);
        let err = open(&disk, 256).await.err().expect("recovery must refuse");
        match &err {
            StorageError::CorruptWalMiddle { path, lsn, next } => {
                assert_eq!(path, "pg_wal/wal");
                assert_eq!(*lsn, ends[2]);
                assert!(
                    *next > *lsn && *next < ends[4],
                    "next valid record at {next}"
                );
            }
            other => panic!("expected corruption in the middle of the wal, got {other}"),
        }
        let message = err.to_string();
        assert!(message.contains("pg_wal/wal") && message.contains(&ends[2].to_string()));
    });
}

/// After a crash, recovery refuses the disk's WAL, naming the damaged record at `at`.
async fn refused_in_the_middle_at(disk: &SimDisk, at: Lsn) {
    disk.crash(|_, _| TornTail::None);
    let err = open(disk, 256).await.err().expect("recovery must refuse");
    assert!(
        matches!(err, StorageError::CorruptWalMiddle { lsn, .. } if lsn == at),
        "{err}"
    );
}

#[test]
fn a_damaged_length_in_the_middle_of_the_durable_wal_is_refused_too() {
    run(14, async {
        let disk = sim_disk();
        let ends = five_commits(&disk).await;
        assert!(disk.corrupt("pg_wal/wal", ends[1] + 2, 0x10));
        refused_in_the_middle_at(&disk, ends[1]).await;
    });
}

#[test]
fn a_torn_wal_tail_of_garbage_after_the_last_record_is_cut_as_the_end_of_the_wal() {
    run(15, async {
        let disk = sim_disk();
        let ends = five_commits(&disk).await;
        let mut engine = open(&disk, 256).await.unwrap();
        // Transaction 6 is logged but never flushed; the crash keeps part of it, and the last
        // bytes of what it keeps are junk.
        engine.commit(6, &[put(HEAP, 6, 6, 2000)]).unwrap();
        drop(engine);
        disk.crash(|_, unsynced| TornTail::Keep(unsynced - 10));
        let len = disk.durable_len("pg_wal/wal").unwrap();
        assert!(len > ends[4] + 100);
        assert!(disk.overwrite_durable("pg_wal/wal", len - 100, &[0xa5; 100]));
        let mut engine = open(&disk, 256).await.unwrap();
        assert_eq!(engine.wal().end_lsn(), ends[4]);
        assert_eq!(keys(engine.scan(HEAP).unwrap()), vec![1, 2, 3, 4, 5]);
        let end = engine.commit(7, &[put(HEAP, 7, 7, 10)]).unwrap();
        engine.wal().flush_to(end).await.unwrap();
        drop(engine);
        disk.crash(|_, _| TornTail::None);
        let mut engine = open(&disk, 256).await.unwrap();
        assert_eq!(keys(engine.scan(HEAP).unwrap()), vec![1, 2, 3, 4, 5, 7]);
    });
}

#[test]
fn a_wal_record_copied_over_a_later_one_by_a_misdirected_write_is_refused() {
    run(16, async {
        let disk = sim_disk();
        let ends = five_commits(&disk).await;
        let wal = disk.durable_content("pg_wal/wal").unwrap();
        // Transaction 5's commit record (the WAL's last record) lands where transaction 3's
        // batch started, with transactions 4 and 5 still whole after it.
        let commit_len = 40.min((ends[4] - ends[3]) as usize);
        let record = wal[(ends[4] as usize - commit_len)..ends[4] as usize].to_vec();
        assert!(disk.overwrite_durable("pg_wal/wal", ends[1], &record));
        refused_in_the_middle_at(&disk, ends[1]).await;
    });
}

#[test]
fn a_table_block_landed_at_another_block_by_a_misdirected_write_is_reported_as_corrupt() {
    run(17, async {
        let disk = sim_disk();
        let mut engine = open(&disk, 2).await.unwrap();
        for def in defs() {
            engine.create_table(def).unwrap();
        }
        // Two 3 KiB rows per block: keys 0 and 1 in block 0, keys 2 and 3 in block 1.
        let rows: Vec<_> = (0..12).map(|k| put(HEAP, 1, k, 3000)).collect();
        engine.commit(1, &rows).unwrap();
        engine.checkpoint().await.unwrap();
        for key in [11, 9, 7] {
            assert!(engine.get(HEAP, key).unwrap().is_some());
        }
        let file = disk.durable_content("base/1").unwrap();
        assert!(disk.overwrite_durable("base/1", 0, &file[8192..16384]));
        let err = engine.get(HEAP, 0).unwrap_err();
        assert!(
            matches!(err, StorageError::Corrupt { ref file, block: 0 } if file == "base/1"),
            "{err}"
        );
        assert!(err.to_string().contains("offset 0"), "{err}");
        assert!(engine.get(HEAP, 2).unwrap().is_some());
    });
}

#[test]
fn a_control_file_with_a_flipped_bit_is_refused_naming_its_path() {
    run(18, async {
        let disk = sim_disk();
        five_commits(&disk).await;
        assert!(disk.corrupt("global/control", 9, 0x02));
        disk.crash(|_, _| TornTail::None);
        let err = open(&disk, 256).await.err().expect("recovery must refuse");
        assert!(
            matches!(err, StorageError::CorruptControl { ref path } if path == "global/control"),
            "{err}"
        );
    });
}

#[test]
fn after_an_fsync_fails_every_later_flush_fails_though_the_disk_would_accept_it() {
    run(19, async {
        let disk = sim_disk();
        let ends = five_commits(&disk).await;
        let mut engine = open(&disk, 256).await.unwrap();
        let end = engine.commit(6, &[put(HEAP, 6, 6, 10)]).unwrap();
        disk.fail_next_sync("pg_wal/");
        assert!(engine.wal().flush_to(end).await.is_err());
        let again = engine.wal().flush_to(end).await.unwrap_err();
        assert!(matches!(again, StorageError::WalFailed { .. }), "{again}");
        // The dropped pages are gone: the retry the engine refuses would have made nothing
        // durable.
        assert_eq!(disk.durable_len("pg_wal/wal"), Some(ends[4]));
        drop(engine);
        disk.crash(|_, _| TornTail::None);
        let mut engine = open(&disk, 256).await.unwrap();
        assert_eq!(keys(engine.scan(HEAP).unwrap()), vec![1, 2, 3, 4, 5]);
    });
}

/// With the planted bug `fsync-error-retried`, a retried fsync claims WAL the kernel dropped:
/// reading it back is an error naming what is missing, never a short chunk a walsender would
/// send again and again (standard seed 18 of an earlier schedule never ended that way).
#[test]
fn wal_missing_below_a_claimed_flush_is_an_error_to_read_not_a_short_chunk() {
    run(20, async {
        let disk = sim_disk();
        let ends = five_commits(&disk).await;
        let arc: std::sync::Arc<dyn cluster::io::Disk> = std::sync::Arc::new(disk.clone());
        let mut engine = Engine::open(
            arc,
            EngineOptions {
                retry_failed_fsync: true,
                ..EngineOptions::default()
            },
        )
        .await
        .unwrap();
        let end = engine.commit(6, &[put(HEAP, 6, 6, 10)]).unwrap();
        disk.fail_next_sync("pg_wal/");
        assert_eq!(engine.wal().flush_to(end).await.unwrap(), end);
        let short = engine.read_wal(ends[4], 1 << 20).unwrap_err();
        assert!(
            matches!(short, StorageError::WalShort { from, .. } if from == ends[4]),
            "{short}"
        );
    });
}
