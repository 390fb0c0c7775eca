//! The third claim: **an instance that saw an `fsync` fail acknowledges nothing more until it
//! starts again**. PostgreSQL PANICs on a failed `fsync`: the kernel may have dropped the
//! dirty pages, so a retry that succeeds proves nothing, and a commit acknowledged after it
//! may be lost to the next crash (or be missing from a WAL that reads as whole).
//!
//! The simulated disk counts every failed `fsync` per file; the claim compares the count
//! under an instance's data directory at its acknowledgement with the count when it last
//! reported [`Fact::Started`].

use std::collections::BTreeMap;

use cluster::model::catalog::Dbid;
use cluster::model::observe::Fact;

use super::NAME;
use crate::invariants::Violation;
use crate::workload::history::Event;
use crate::world::dirs::DataDirs;

/// Failed `fsync`s per instance as of its last start, and what was found.
#[derive(Default)]
pub(super) struct FsyncWatch {
    at_start: BTreeMap<Dbid, usize>,
    violations: BTreeMap<Dbid, Violation>,
}

impl FsyncWatch {
    /// Judges `fact`, reported at `at_ms`, against the failed `fsync`s the disks counted.
    pub(super) fn observe(&mut self, dirs: &DataDirs, at_ms: u64, fact: &Fact) {
        match fact {
            Fact::Started { dbid, .. } => {
                if let Some(n) = dirs.failed_syncs(*dbid) {
                    self.at_start.insert(*dbid, n);
                }
            }
            Fact::Acknowledged {
                content, dbid, lsn, ..
            } => {
                let Some(now) = dirs.failed_syncs(*dbid) else {
                    return;
                };
                let before = self.at_start.get(dbid).copied().unwrap_or(0);
                if now > before && !self.violations.contains_key(dbid) {
                    let v = judge(at_ms, *content, *dbid, *lsn, now - before);
                    self.violations.insert(*dbid, v);
                }
            }
            _ => {}
        }
    }

    pub(super) fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.violations.values()
    }
}

fn judge(at_ms: u64, content: i16, dbid: Dbid, lsn: u64, failed: usize) -> Violation {
    Violation {
        checker: NAME,
        message: format!(
            "content {content}: dbid {dbid} acknowledged a commit ending at {lsn} after {failed} fsync(s) in its data directory failed since it started: the kernel may have dropped the pages, so it must stop (as PostgreSQL PANICs), never retry and carry on"
        ),
        first_event: Event {
            at_ms,
            client: 0,
            txn: 0,
            kind: "ack".into(),
            detail: format!("dbid {dbid} acknowledged up to {lsn}; failed fsyncs since start {failed}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::disk::SimDisk;
    use cluster::io::Disk;

    fn ack(dbid: Dbid) -> Fact {
        Fact::Acknowledged {
            content: 0,
            dbid,
            epoch: 1,
            lsn: 100,
        }
    }

    fn started(dbid: Dbid) -> Fact {
        Fact::Started {
            content: 0,
            dbid,
            followed: 1,
            fresh: false,
            primary_at: None,
        }
    }

    #[test]
    fn an_acknowledgement_after_a_failed_fsync_is_caught_until_the_instance_starts_again() {
        let disk = SimDisk::new();
        let dirs = DataDirs::default();
        dirs.segment(2, "sdw1", &disk, "/data/p0");
        dirs.segment(3, "sdw1", &disk, "/data/p01");
        disk.create_dir("data/p0/pg_wal").unwrap();
        disk.create("data/p0/pg_wal/wal").unwrap();
        let mut watch = FsyncWatch::default();
        watch.observe(&dirs, 1, &started(2));
        watch.observe(&dirs, 2, &ack(2));
        assert_eq!(watch.violations().count(), 0);
        disk.fail_next_sync("data/p0/");
        let sync = madsim::runtime::Runtime::new().block_on(disk.sync("data/p0/pg_wal/wal"));
        assert!(sync.is_err());
        // Another instance's directory, even one whose name extends this one's, is not it.
        watch.observe(&dirs, 3, &ack(3));
        assert_eq!(watch.violations().count(), 0);
        watch.observe(&dirs, 4, &started(2));
        watch.observe(&dirs, 5, &ack(2));
        assert_eq!(watch.violations().count(), 0, "restarted since the failure");
        disk.fail_next_sync("data/p0/");
        let sync = madsim::runtime::Runtime::new().block_on(disk.sync("data/p0/pg_wal/wal"));
        assert!(sync.is_err());
        watch.observe(&dirs, 6, &ack(2));
        let found: Vec<&Violation> = watch.violations().collect();
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("dbid 2"), "{}", found[0].message);
    }
}
