//! **What the cluster says is durable elsewhere is durable there**, judged against the
//! simulated disks while the run goes, not at its end.
//!
//! Seed 001 (segment mirroring): "in synchronous mode a commit is acknowledged only after the
//! mirror has flushed its commit record"; the standby documents: the coordinator acts on a
//! catalog change once its synchronized standby has it. Two claims, each checked at the moment
//! the cluster reports it (the observation hook runs inside the simulation, so the disks are
//! read as they are then):
//!
//! - a primary acknowledged a commit ending at `lsn` ([`Fact::Acknowledged`]) while the acting
//!   catalog says its pair is in sync (both rows mode `s`, the acknowledging instance the
//!   primary): the mirror's WAL, as much of it as survives a crash (its synced bytes), reaches
//!   `lsn`;
//! - the coordinator acted on catalog WAL up to `lsn` because its standby reported it flushed
//!   ([`Fact::StandbyFlushed`]): the standby's durable catalog WAL reaches `lsn`.
//!
//! The acting catalog is followed from the coordinators' [`Fact::CatalogChanged`] reports: the
//! prober's changes carry each row's role, status and mode. An administrator's change (no row
//! given) makes its content's rows unknown until the prober records them again, and a new coordinator
//! generation (an activated standby, whose catalog may lack its predecessor's last changes)
//! forgets every row; reports of an older generation (a deposed coordinator) are ignored. So
//! the check judges only pairs the acting catalog surely says are in sync. Asynchronous
//! replication is not judged: there the primary never waits for its mirror.
//!
//! Where each instance's data directory lies is kept in [`DataDirs`], filled by the world as
//! it makes the directories; one whose disk or directory a fault destroyed is forgotten (what
//! it held durably is gone for a reason outside the cluster's durability promise).
//!
//! Reading the disks changes nothing: no facts, no log lines, no awaits, no randomness.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cluster::model::catalog::{epoch, Content, Dbid, Mode, Role, SegmentConfig, Status};
use cluster::model::data::Lsn;
use cluster::model::observe::{Fact, FtsChange};

use super::Violation;
use crate::workload::history::Event;
use crate::world::dirs::DataDirs;

mod fsync;

pub const NAME: &str = "durable-claims";

/// One catalog row as the prober last recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Row {
    content: Content,
    role: Role,
    status: Status,
    mode: Mode,
}

/// The acting catalog's rows as far as the facts tell them surely.
#[derive(Default)]
pub struct Catalog {
    generation: Option<u32>,
    rows: BTreeMap<Dbid, Row>,
}

impl Catalog {
    /// The catalog a new cluster's coordinator starts from (generation 0).
    pub fn initial(rows: &[SegmentConfig]) -> Catalog {
        let rows = rows
            .iter()
            .map(|r| {
                let row = Row {
                    content: r.content,
                    role: r.role,
                    status: r.status,
                    mode: r.mode,
                };
                (r.dbid, row)
            })
            .collect();
        Catalog {
            generation: Some(0),
            rows,
        }
    }

    /// Follows one committed configuration change.
    pub fn changed(&mut self, at_epoch: u64, dbid: Dbid, fts: Option<FtsChange>) {
        let generation = epoch::generation(at_epoch);
        match self.generation {
            Some(g) if generation < g => return,
            Some(g) if generation == g => {}
            _ => {
                self.rows.clear();
                self.generation = Some(generation);
            }
        }
        match fts {
            Some(c) => {
                let row = Row {
                    content: c.content,
                    role: c.role,
                    status: c.status,
                    mode: c.mode,
                };
                self.rows.insert(dbid, row);
            }
            // An administrator's change may have changed its content's other row too (a
            // rebalance swaps both roles): forget the content.
            None => {
                if let Some(content) = self.rows.get(&dbid).map(|r| r.content) {
                    self.rows.retain(|_, r| r.content != content);
                }
            }
        }
    }

    /// Follows a coordinator that started on its recovered catalog: what it acts on from now
    /// on is exactly `rows` (changes it made durable just before a crash included, reported or
    /// not), unless it belongs to an older generation (a deposed coordinator).
    pub fn recovered(&mut self, at_epoch: u64, rows: &[(Dbid, FtsChange)]) {
        let generation = epoch::generation(at_epoch);
        if matches!(self.generation, Some(g) if generation < g) {
            return;
        }
        self.generation = Some(generation);
        self.rows = rows
            .iter()
            .map(|(dbid, c)| {
                let row = Row {
                    content: c.content,
                    role: c.role,
                    status: c.status,
                    mode: c.mode,
                };
                (*dbid, row)
            })
            .collect();
    }

    /// The pair of `content`, primary and mirror, if the catalog says it is in sync.
    pub fn in_sync_pair(&self, content: Content) -> Option<(Dbid, Dbid)> {
        let primary = self.rows.iter().find(|(_, r)| {
            r.content == content && r.role == Role::Primary && r.status == Status::Up
        })?;
        let primary = *primary.0;
        self.in_sync_mirror(content, primary).map(|m| (primary, m))
    }

    /// The contents the catalog has rows for.
    fn contents(&self) -> std::collections::BTreeSet<Content> {
        self.rows.values().map(|r| r.content).collect()
    }

    /// The mirror of `content` if the catalog says the pair is in sync with `primary` as its
    /// primary.
    pub fn in_sync_mirror(&self, content: Content, primary: Dbid) -> Option<Dbid> {
        let in_sync = |r: &Row, role| {
            r.content == content
                && r.role == role
                && r.status == Status::Up
                && r.mode == Mode::Synced
        };
        let is_primary = self
            .rows
            .get(&primary)
            .is_some_and(|r| in_sync(r, Role::Primary));
        let mut mirrors = self
            .rows
            .iter()
            .filter(|(d, r)| **d != primary && in_sync(r, Role::Mirror))
            .map(|(d, _)| *d);
        // Exactly one in-sync mirror (two would be a catalog this checker does not judge).
        match (is_primary, mirrors.next(), mirrors.next()) {
            (true, Some(mirror), None) => Some(mirror),
            _ => None,
        }
    }
}

/// A violation and the mirror it is about (`None`: the standby).
type Found = (Option<Dbid>, Violation);

/// The checker: follows the catalog and judges each claim as it is reported.
pub struct DurableClaims {
    dirs: DataDirs,
    /// Synchronous replication: acknowledgements wait for the mirror.
    synchronous: bool,
    /// The catalog followed so far, and each violation with the mirror it is about (`None`:
    /// the standby).
    state: Mutex<(Catalog, Vec<Found>)>,
    /// The end of the last commit each instance acknowledged (as a primary, in sync or alone).
    acknowledged: Mutex<BTreeMap<Dbid, Lsn>>,
    /// The third claim: no acknowledgement after a failed `fsync` ([`fsync`]).
    fsync: Mutex<fsync::FsyncWatch>,
}

impl DurableClaims {
    /// A checker following the catalog from `initial`, reading the disks through `dirs`.
    pub fn new(dirs: DataDirs, initial: Catalog, synchronous: bool) -> DurableClaims {
        DurableClaims {
            dirs,
            synchronous,
            state: Mutex::new((initial, Vec::new())),
            acknowledged: Mutex::default(),
            fsync: Mutex::default(),
        }
    }

    /// Judges `fact`, reported at `at_ms`, against the disks as they are now.
    pub fn observe(&self, at_ms: u64, fact: &Fact) {
        self.fsync.lock().unwrap().observe(&self.dirs, at_ms, fact);
        let mut state = self.state.lock().unwrap();
        let (catalog, violations) = &mut *state;
        if let Fact::Acknowledged { dbid, lsn, .. } = fact {
            let mut acknowledged = self.acknowledged.lock().unwrap();
            let last = acknowledged.entry(*dbid).or_default();
            *last = (*last).max(*lsn);
        }
        match fact {
            Fact::CatalogChanged { .. } | Fact::CatalogRecovered { .. } if self.synchronous => {
                let before: BTreeMap<Content, (Dbid, Dbid)> = catalog
                    .contents()
                    .into_iter()
                    .filter_map(|c| catalog.in_sync_pair(c).map(|p| (c, p)))
                    .collect();
                match fact {
                    Fact::CatalogChanged {
                        epoch, dbid, fts, ..
                    } => catalog.changed(*epoch, *dbid, *fts),
                    Fact::CatalogRecovered { epoch, rows } => catalog.recovered(*epoch, rows),
                    _ => unreachable!("matched above"),
                }
                for content in catalog.contents() {
                    let Some((primary, mirror)) = catalog.in_sync_pair(content) else {
                        continue;
                    };
                    if before.get(&content) == Some(&(primary, mirror)) {
                        continue;
                    }
                    let acked = self.acknowledged.lock().unwrap().get(&primary).copied();
                    let (Some(acked), Some(durable)) = (acked, self.dirs.segment_wal(mirror))
                    else {
                        continue;
                    };
                    if let Some(v) = judge_in_sync(at_ms, content, primary, acked, mirror, durable)
                    {
                        Self::found(violations, Some(mirror), v);
                    }
                }
            }
            Fact::CatalogChanged {
                epoch, dbid, fts, ..
            } => catalog.changed(*epoch, *dbid, *fts),
            Fact::CatalogRecovered { epoch, rows } => catalog.recovered(*epoch, rows),
            Fact::Acknowledged {
                content,
                dbid,
                epoch,
                lsn,
            } if self.synchronous => {
                let Some(mirror) = catalog.in_sync_mirror(*content, *dbid) else {
                    return;
                };
                let Some(durable) = self.dirs.segment_wal(mirror) else {
                    return;
                };
                if let Some(v) = judge_ack(at_ms, *content, *dbid, *epoch, *lsn, mirror, durable) {
                    Self::found(violations, Some(mirror), v);
                }
            }
            Fact::StandbyFlushed { lsn } => {
                if let Some(durable) = self.dirs.standby_wal() {
                    if let Some(v) = judge_standby(at_ms, *lsn, durable) {
                        Self::found(violations, None, v);
                    }
                }
            }
            _ => {}
        }
    }

    /// Keeps `v` if it is the first against its target (one mirror, or the standby): a broken
    /// claim repeats with every commit, and the first says all.
    fn found(violations: &mut Vec<Found>, target: Option<Dbid>, v: Violation) {
        if !violations.iter().any(|(t, _)| *t == target) {
            violations.push((target, v));
        }
    }

    /// Every violation found so far.
    pub fn violations(&self) -> Vec<Violation> {
        let state = self.state.lock().unwrap();
        let fsync = self.fsync.lock().unwrap();
        let claims = state.1.iter().map(|(_, v)| v.clone());
        claims.chain(fsync.violations().cloned()).collect()
    }
}

/// A commit of `primary` ending at `lsn`, acknowledged while its pair was in sync, against the
/// durable length of its mirror's WAL.
fn judge_ack(
    at_ms: u64,
    content: Content,
    primary: Dbid,
    at_epoch: u64,
    lsn: Lsn,
    mirror: Dbid,
    durable: u64,
) -> Option<Violation> {
    (durable < lsn).then(|| {
        found_at(
            at_ms,
            "ack",
            format!(
                "content {content}: dbid {primary} acknowledged a commit ending at {lsn} while the catalog said the pair was in sync, but its mirror dbid {mirror} holds only {durable} bytes of WAL durably: a crash of the mirror's host would lose it"
            ),
            format!(
                "dbid {primary} (content {content}, epoch {at_epoch}) acknowledged up to {lsn}; mirror dbid {mirror} durable WAL {durable}"
            ),
        )
    })
}

/// A violation of this checker, first seen at `at_ms` in an event of `kind`.
fn found_at(at_ms: u64, kind: &str, message: String, detail: String) -> Violation {
    Violation {
        checker: NAME,
        message,
        first_event: Event {
            at_ms,
            client: 0,
            txn: 0,
            kind: kind.into(),
            detail,
        },
    }
}

/// A pair the catalog has just recorded in sync: every commit its primary acknowledged (the
/// last ending at `acked`, some perhaps acknowledged alone while the mirror was down) against
/// the durable length of the mirror's WAL. A failover from now on promotes that mirror.
fn judge_in_sync(
    at_ms: u64,
    content: Content,
    primary: Dbid,
    acked: Lsn,
    mirror: Dbid,
    durable: u64,
) -> Option<Violation> {
    (durable < acked).then(|| {
        found_at(
            at_ms,
            "in-sync",
            format!(
                "content {content}: the catalog recorded the pair in sync, but mirror dbid {mirror} holds only {durable} bytes of WAL durably, short of the commit ending at {acked} its primary dbid {primary} acknowledged: a failover now would lose it"
            ),
            format!(
                "pair of content {content} recorded in sync; primary dbid {primary} acknowledged up to {acked}; mirror dbid {mirror} durable WAL {durable}"
            ),
        )
    })
}

/// Catalog WAL up to `lsn` acted on as flushed by the standby, against the durable length of
/// the standby's catalog WAL.
fn judge_standby(at_ms: u64, lsn: Lsn, durable: u64) -> Option<Violation> {
    (durable < lsn).then(|| {
        found_at(
            at_ms,
            "standby-flushed",
            format!(
                "the coordinator acted on catalog WAL up to {lsn} as flushed by its standby, but the standby holds only {durable} bytes of it durably: a crash of the standby's host would lose it"
            ),
            format!("standby flushed {lsn}; durable catalog WAL {durable}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::disk::SimDisk;
    use cluster::model::catalog::epoch::first_of_next_generation;

    fn row(content: Content, role: Role, mode: Mode) -> Option<FtsChange> {
        Some(FtsChange {
            content,
            role,
            status: Status::Up,
            mode,
        })
    }

    fn synced_pair(catalog: &mut Catalog, at: u64) {
        catalog.changed(at, 2, row(0, Role::Primary, Mode::Synced));
        catalog.changed(at, 3, row(0, Role::Mirror, Mode::Synced));
    }

    /// A world of one content: primary dbid 2, mirror dbid 3 whose WAL holds `written` bytes,
    /// the first `synced` of them durably.
    fn world(written: usize, synced: usize) -> (DataDirs, SimDisk) {
        let disk = SimDisk::new();
        let dirs = DataDirs::default();
        dirs.segment(3, "sdw2", &disk, "/data/mirror0");
        disk.install("data/mirror0/pg_wal/wal", &vec![7u8; synced]);
        if written > synced {
            use cluster::io::disk::Disk;
            disk.append("data/mirror0/pg_wal/wal", &vec![7u8; written - synced])
                .unwrap();
        }
        (dirs, disk)
    }

    fn ack(lsn: Lsn) -> Fact {
        Fact::Acknowledged {
            content: 0,
            dbid: 2,
            epoch: 4,
            lsn,
        }
    }

    fn in_sync_checker(dirs: DataDirs) -> DurableClaims {
        let checker = DurableClaims::new(dirs, Catalog::default(), true);
        for dbid in [2, 3] {
            let role = if dbid == 2 {
                Role::Primary
            } else {
                Role::Mirror
            };
            checker.observe(
                0,
                &Fact::CatalogChanged {
                    epoch: 3,
                    dbid,
                    desc: String::new(),
                    fts: row(0, role, Mode::Synced),
                },
            );
        }
        checker
    }

    #[test]
    fn an_ack_beyond_the_mirrors_synced_wal_while_in_sync_is_a_violation() {
        let (dirs, _disk) = world(200, 100);
        let checker = in_sync_checker(dirs);
        checker.observe(50, &ack(150));
        let found = checker.violations();
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("holds only 100 bytes"));
        assert_eq!(found[0].first_event.at_ms, 50);
    }

    /// The mirror down, its primary acknowledges commits alone; when the catalog records the
    /// pair in sync again, the mirror must hold them durably (a failover may promote it from
    /// then on).
    fn mirror_back_in_sync(checker: &DurableClaims) {
        let mirror = |mode, status| Fact::CatalogChanged {
            epoch: 4,
            dbid: 3,
            desc: String::new(),
            fts: Some(FtsChange {
                content: 0,
                role: Role::Mirror,
                status,
                mode,
            }),
        };
        checker.observe(10, &mirror(Mode::NotSynced, Status::Down));
        checker.observe(20, &ack(150));
        checker.observe(30, &mirror(Mode::NotSynced, Status::Up));
        checker.observe(40, &mirror(Mode::Synced, Status::Up));
    }

    #[test]
    fn a_pair_recorded_in_sync_whose_mirror_lacks_a_commit_acknowledged_alone_is_a_violation() {
        let (dirs, _disk) = world(200, 100);
        let checker = in_sync_checker(dirs);
        mirror_back_in_sync(&checker);
        let found = checker.violations();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("recorded the pair in sync"));
        assert!(found[0].message.contains("commit ending at 150"));
        assert_eq!(found[0].first_event.at_ms, 40);
    }

    #[test]
    fn a_pair_recorded_in_sync_whose_mirror_holds_every_acknowledged_commit_is_fine() {
        let (dirs, _disk) = world(200, 150);
        let checker = in_sync_checker(dirs);
        mirror_back_in_sync(&checker);
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn an_ack_within_the_mirrors_synced_wal_is_fine() {
        let (dirs, _disk) = world(200, 150);
        let checker = in_sync_checker(dirs);
        checker.observe(50, &ack(150));
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn an_ack_while_the_pair_is_not_in_sync_is_not_judged() {
        let (dirs, _disk) = world(200, 0);
        let checker = in_sync_checker(dirs);
        checker.observe(
            10,
            &Fact::CatalogChanged {
                epoch: 4,
                dbid: 3,
                desc: String::new(),
                fts: Some(FtsChange {
                    content: 0,
                    role: Role::Mirror,
                    status: Status::Down,
                    mode: Mode::NotSynced,
                }),
            },
        );
        checker.observe(50, &ack(150));
        assert!(checker.violations().is_empty());
    }

    /// Standard seed 983: the acting coordinator's host crashed at the point
    /// catalog-written-before-announce; the flush that made one content's decision durable also
    /// carried another content's "mirror down", whose report never ran. Restarted, the
    /// coordinator acted on its recovered catalog and turned that primary's synchronous waiting
    /// off, as the catalog says it may.
    #[test]
    fn an_ack_after_a_restart_is_judged_against_the_recovered_catalog() {
        let (dirs, _disk) = world(200, 0);
        let checker = in_sync_checker(dirs);
        let recovered = |mode, status| {
            let row = |role, status| FtsChange {
                content: 0,
                role,
                status,
                mode,
            };
            Fact::CatalogRecovered {
                epoch: 5,
                rows: vec![
                    (2, row(Role::Primary, Status::Up)),
                    (3, row(Role::Mirror, status)),
                ],
            }
        };
        checker.observe(10, &recovered(Mode::NotSynced, Status::Down));
        checker.observe(50, &ack(150));
        assert!(checker.violations().is_empty());
        checker.observe(60, &recovered(Mode::Synced, Status::Up));
        checker.observe(70, &ack(150));
        assert_eq!(
            checker.violations().len(),
            1,
            "in sync again once recovered so"
        );
    }

    #[test]
    fn a_deposed_coordinators_recovered_catalog_is_ignored() {
        let (dirs, _disk) = world(200, 0);
        let checker = in_sync_checker(dirs);
        let next = first_of_next_generation(3);
        checker.observe(
            5,
            &Fact::CatalogChanged {
                epoch: next,
                dbid: 2,
                desc: String::new(),
                fts: row(0, Role::Primary, Mode::Synced),
            },
        );
        checker.observe(
            6,
            &Fact::CatalogChanged {
                epoch: next,
                dbid: 3,
                desc: String::new(),
                fts: row(0, Role::Mirror, Mode::Synced),
            },
        );
        let down = FtsChange {
            content: 0,
            role: Role::Mirror,
            status: Status::Down,
            mode: Mode::NotSynced,
        };
        checker.observe(
            10,
            &Fact::CatalogRecovered {
                epoch: 4,
                rows: vec![(3, down)],
            },
        );
        checker.observe(50, &ack(150));
        assert_eq!(checker.violations().len(), 1);
    }

    #[test]
    fn asynchronous_replication_is_not_judged() {
        let (dirs, _disk) = world(200, 0);
        let mut catalog = Catalog::default();
        synced_pair(&mut catalog, 3);
        let checker = DurableClaims::new(dirs, catalog, false);
        checker.observe(50, &ack(150));
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn an_ack_from_the_row_the_catalog_calls_mirror_is_not_judged() {
        let mut catalog = Catalog::default();
        synced_pair(&mut catalog, 3);
        assert_eq!(catalog.in_sync_mirror(0, 2), Some(3));
        assert_eq!(catalog.in_sync_mirror(0, 3), None);
        assert_eq!(catalog.in_sync_mirror(1, 2), None);
    }

    #[test]
    fn an_administrators_change_makes_the_pair_unknown_until_the_prober_records_it() {
        let mut catalog = Catalog::default();
        synced_pair(&mut catalog, 3);
        catalog.changed(4, 3, None);
        assert_eq!(catalog.in_sync_mirror(0, 2), None);
        catalog.changed(5, 3, row(0, Role::Mirror, Mode::Synced));
        assert_eq!(
            catalog.in_sync_mirror(0, 2),
            None,
            "the primary's row is unknown too"
        );
        synced_pair(&mut catalog, 6);
        assert_eq!(catalog.in_sync_mirror(0, 2), Some(3));
    }

    #[test]
    fn a_new_generation_forgets_the_rows_and_an_older_one_is_ignored() {
        let mut catalog = Catalog::default();
        synced_pair(&mut catalog, 3);
        let next = first_of_next_generation(3);
        catalog.changed(next, 1, None);
        assert_eq!(catalog.in_sync_mirror(0, 2), None);
        // A deposed coordinator's prober, still in the old generation, is not the catalog.
        synced_pair(&mut catalog, 9);
        assert_eq!(catalog.in_sync_mirror(0, 2), None);
        synced_pair(&mut catalog, next + 1);
        assert_eq!(catalog.in_sync_mirror(0, 2), Some(3));
    }

    #[test]
    fn a_mirror_whose_directory_was_lost_is_not_judged() {
        let (dirs, _disk) = world(200, 0);
        dirs.lost(3);
        let checker = in_sync_checker(dirs.clone());
        checker.observe(50, &ack(150));
        let (dirs2, _disk2) = world(200, 0);
        dirs2.host_lost("sdw2");
        let checker2 = in_sync_checker(dirs2);
        checker2.observe(50, &ack(150));
        assert!(checker.violations().is_empty() && checker2.violations().is_empty());
    }

    #[test]
    fn a_standby_flush_beyond_the_standbys_synced_catalog_wal_is_a_violation() {
        let disk = SimDisk::new();
        disk.install("data/standby/pg_wal/wal", &[1u8; 80]);
        let dirs = DataDirs::default();
        dirs.standby("smdw", &disk, "/data/standby");
        let checker = DurableClaims::new(dirs.clone(), Catalog::default(), true);
        checker.observe(5, &Fact::StandbyFlushed { lsn: 80 });
        assert!(checker.violations().is_empty());
        checker.observe(6, &Fact::StandbyFlushed { lsn: 81 });
        assert_eq!(checker.violations().len(), 1);
        dirs.standby_gone();
        checker.observe(7, &Fact::StandbyFlushed { lsn: 500 });
        assert_eq!(checker.violations().len(), 1);
    }
}
