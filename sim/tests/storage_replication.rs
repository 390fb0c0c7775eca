//! WAL shipping between two storage engines on simulated disks.
//!
//! A primary commits random transactions; its flushed WAL is fed to a mirror in random chunk
//! sizes, sometimes re-sent from before the mirror's end, sometimes left unflushed; the mirror
//! crashes with torn tails and restarts, and checkpoints without writing WAL. After every step
//! the mirror must hold exactly what the primary held at the mirror's replay LSN. At the end the
//! mirror catches up, matches the primary's digest, and is promoted.

mod storage_support;

use cluster::storage::{Engine, Key, Lsn, StorageError, Write, Xid};
use proptest::prelude::*;
use sim::world::disk::{SimDisk, TornTail};

use storage_support::*;

#[derive(Clone, Debug)]
enum ReplOp {
    Commit(Vec<W>),
    Prepare(Vec<W>),
    Resolve(usize, bool),
    /// Ship up to `chunk` bytes, starting `resend` bytes before the mirror's end; the mirror
    /// flushes them (or not) before replaying.
    Ship {
        chunk: usize,
        resend: usize,
        flush: bool,
    },
    PrimaryCheckpoint,
    MirrorCheckpoint,
    /// The mirror writes its dirty blocks back through the double-write area, leaving its
    /// redo point.
    MirrorWriteBack,
    /// The mirror's host crashes; `Some(n)` keeps `n` unsynced bytes of each file.
    MirrorCrash(Option<usize>),
}

fn repl_op_strategy() -> impl Strategy<Value = ReplOp> {
    let writes = |min| prop::collection::vec(write_strategy(), min..4);
    prop_oneof![
        6 => writes(0).prop_map(ReplOp::Commit),
        1 => writes(1).prop_map(ReplOp::Prepare),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(p, c)| ReplOp::Resolve(p, c)),
        8 => (1usize..12_000, prop_oneof![Just(0usize), 0usize..5000], any::<bool>())
            .prop_map(|(chunk, resend, flush)| ReplOp::Ship { chunk, resend, flush }),
        1 => Just(ReplOp::PrimaryCheckpoint),
        1 => Just(ReplOp::MirrorCheckpoint),
        1 => Just(ReplOp::MirrorWriteBack),
        1 => prop::option::of(0usize..20_000).prop_map(ReplOp::MirrorCrash),
    ]
}

/// A primary and its mirror, and what the primary held after each of its WAL records.
struct Pair {
    primary: Engine,
    mirror: Engine,
    mirror_disk: SimDisk,
    /// (end LSN, data digest, prepared) after each primary write, starting from the empty disk.
    history: Vec<(Lsn, u64, Vec<Xid>)>,
    next_xid: Xid,
    next_ao_key: Key,
}

impl Pair {
    async fn new() -> Pair {
        let mut primary = open(&sim_disk(), 3).await.unwrap();
        let mirror_disk = sim_disk();
        let mirror = open(&mirror_disk, 3).await.unwrap();
        let history = vec![(0, primary.data_digest().unwrap(), vec![])];
        let mut pair = Pair {
            primary,
            mirror,
            mirror_disk,
            history,
            next_xid: 0,
            next_ao_key: 0,
        };
        for def in defs() {
            let end = pair.primary.create_table(def).unwrap();
            pair.record(end);
        }
        pair
    }

    fn record(&mut self, end: Lsn) {
        let digest = self.primary.data_digest().unwrap();
        self.history.push((end, digest, self.primary.prepared()));
    }

    fn writes(&mut self, xid: Xid, spec: &[W]) -> Vec<Write> {
        spec.iter()
            .map(|w| match *w {
                W::HeapPut(key, len) => put(HEAP, xid, key, len),
                W::HeapDelete(key) => Write::Delete { table: HEAP, key },
                W::AoPut(len) => {
                    self.next_ao_key += 1;
                    put(AO, xid, self.next_ao_key, len)
                }
            })
            .collect()
    }

    /// The mirror must hold exactly what the primary held at the mirror's replay LSN.
    fn check_mirror(&mut self) -> Result<(), TestCaseError> {
        let replay = self.mirror.replay_lsn();
        let (_, digest, prepared) = self
            .history
            .iter()
            .rev()
            .find(|(end, _, _)| *end <= replay)
            .expect("history starts at 0");
        let (digest, prepared) = (*digest, prepared.clone());
        prop_assert_eq!(
            self.mirror.data_digest().unwrap(),
            digest,
            "mirror at replay lsn {} differs from the primary",
            replay
        );
        prop_assert_eq!(self.mirror.prepared(), prepared);
        prop_assert!(replay <= self.mirror.wal().flushed_lsn());
        Ok(())
    }

    async fn ship(
        &mut self,
        chunk: usize,
        resend: usize,
        flush: bool,
    ) -> Result<(), TestCaseError> {
        let end = self.primary.wal().end_lsn();
        self.primary.wal().flush_to(end).await.unwrap();
        let from = self.mirror.wal().end_lsn().saturating_sub(resend as u64);
        let bytes = self.primary.read_wal(from, chunk).unwrap();
        self.mirror.receive_wal(from, &bytes).unwrap();
        if flush {
            let end = self.mirror.wal().end_lsn();
            self.mirror.wal().flush_to(end).await.unwrap();
        }
        self.mirror.replay().unwrap();
        self.check_mirror()
    }

    async fn step(&mut self, op: &ReplOp) -> Result<(), TestCaseError> {
        self.next_xid += 1;
        let xid = self.next_xid;
        match op {
            ReplOp::Commit(spec) => {
                let writes = self.writes(xid, spec);
                let end = self.primary.commit(xid, &writes).unwrap();
                self.record(end);
            }
            ReplOp::Prepare(spec) => {
                let writes = self.writes(xid, spec);
                let end = self.primary.prepare(xid, &writes).unwrap();
                self.record(end);
            }
            ReplOp::Resolve(pick, commit) => {
                let prepared = self.primary.prepared();
                if let Some(&xid) = prepared.get(pick % prepared.len().max(1)) {
                    let end = if *commit {
                        self.primary.commit_prepared(xid)
                    } else {
                        self.primary.abort_prepared(xid)
                    };
                    self.record(end.unwrap());
                }
            }
            ReplOp::Ship {
                chunk,
                resend,
                flush,
            } => self.ship(*chunk, *resend, *flush).await?,
            ReplOp::PrimaryCheckpoint => {
                self.primary.checkpoint().await.unwrap();
            }
            ReplOp::MirrorCheckpoint => {
                let end = self.mirror.wal().end_lsn();
                self.mirror.checkpoint().await.unwrap();
                prop_assert_eq!(
                    self.mirror.wal().end_lsn(),
                    end,
                    "a mirror checkpoint wrote wal"
                );
            }
            ReplOp::MirrorWriteBack => {
                let end = self.mirror.wal().end_lsn();
                self.mirror.write_back_dirty().await.unwrap();
                prop_assert_eq!(
                    self.mirror.wal().end_lsn(),
                    end,
                    "a mirror's write-back wrote wal"
                );
                prop_assert!(
                    self.mirror.stats().cached_blocks <= 3,
                    "a mirror's write-back left {} blocks cached (bound 3)",
                    self.mirror.stats().cached_blocks
                );
            }
            ReplOp::MirrorCrash(keep) => {
                self.mirror_disk.crash(|_, unsynced| match keep {
                    None => TornTail::None,
                    Some(n) => TornTail::Keep(n % (unsynced + 1)),
                });
                self.mirror = open(&self.mirror_disk, 3).await.unwrap();
                self.check_mirror()?;
            }
        }
        Ok(())
    }

    /// Ships everything, checks the mirror caught up, then promotes it.
    async fn catch_up_and_promote(&mut self) -> Result<(), TestCaseError> {
        let end = self.primary.wal().end_lsn();
        self.primary.wal().flush_to(end).await.unwrap();
        // At least one receive, so a mirror reopened since it last received knows its role.
        loop {
            self.ship(7000, 0, true).await?;
            if self.mirror.wal().end_lsn() >= end {
                break;
            }
        }
        prop_assert_eq!(self.mirror.replay_lsn(), end);
        prop_assert_eq!(
            self.mirror.data_digest().unwrap(),
            self.primary.data_digest().unwrap()
        );
        let err = self.mirror.commit(u64::MAX, &[]).unwrap_err();
        prop_assert!(matches!(err, StorageError::Replica), "{}", err);
        let err = self.mirror.receive_wal(end + 1, b"x").unwrap_err();
        prop_assert!(matches!(err, StorageError::WalGap { .. }), "{}", err);

        prop_assert_eq!(self.mirror.end_of_valid_wal().unwrap(), end);
        let xid = self.next_xid + 1;
        let end = self.mirror.commit(xid, &[put(HEAP, xid, 1, 64)]).unwrap();
        self.mirror.wal().flush_to(end).await.unwrap();
        let err = self.mirror.receive_wal(end, b"x").unwrap_err();
        prop_assert!(matches!(err, StorageError::NotReplica), "{}", err);
        self.mirror_disk.crash(|_, _| TornTail::None);
        let mut promoted = open(&self.mirror_disk, 3).await.unwrap();
        prop_assert_eq!(promoted.get(HEAP, 1).unwrap(), Some(value(xid, 1, 64)));
        Ok(())
    }
}

proptest! {
    #![proptest_config(proptest_config(128))]

    #[test]
    fn a_mirror_fed_wal_in_random_chunks_replays_to_the_primarys_content(
        seed in any::<u64>(),
        ops in prop::collection::vec(repl_op_strategy(), 5..50),
    ) {
        run(seed, async move {
            let mut pair = Pair::new().await;
            for op in &ops {
                pair.step(op).await?;
            }
            pair.catch_up_and_promote().await
        })?;
    }
}
