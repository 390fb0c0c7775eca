//! **Every WAL position an instance reports is true of its disk**, judged against the
//! simulated disks the moment the position is reported (like [`super::durable_claims`], whose
//! [`DataDirs`] says where each directory lies).
//!
//! Seed 001: a mirror "writes, flushes, then reports"; a mirror replays only what it has
//! flushed; a primary ships only flushed WAL and acknowledges a commit once its record is
//! flushed; a promoted mirror keeps every whole record it received. So, for segment instances
//! and the standby coordinator alike:
//!
//! - **flushed is durable**: a mirror's reported flush position ([`Fact::WalPositions`]: its
//!   feedback to its primary, its replication status), the standby's
//!   ([`Fact::StandbyWalPositions`]), the end of what a primary's walsender sends as flushed
//!   ([`Fact::WalShipped`]) and a primary's acknowledged commit ([`Fact::Acknowledged`]) never
//!   pass what the instance's own disk holds durably (its synced WAL bytes);
//! - **replayed is flushed**: a reported replay position never passes the flush position
//!   reported with it (and so what is durable);
//! - **promotion keeps the flushed WAL**: when a mirror begins its promotion
//!   ([`Fact::PromotionBegun`]), the checker reads its WAL as it is then and finds the end of
//!   the last whole record within the higher of the flush position it last reported and what
//!   its disk holds durably, parsing from the last replay position it reported (a record
//!   boundary); the promotion's end of WAL ([`Fact::Promoted`]) must reach it. Only whole
//!   records count: the walsender ships WAL in chunks, so a mirror can flush half a record,
//!   and promotion rightly cuts such a partial tail; a record that fails its checksum (a
//!   corrupted byte) ends the parse too, as it ends recovery.
//!
//! Exemptions: an instance whose directory or disk a fault destroyed is not judged (its place
//! is forgotten by [`DataDirs`]); what a mirror reported is forgotten when it starts (crash
//! recovery may rightly cut a record a corrupted byte broke; what recovery kept is judged from
//! the disk from then on) and when it is promoted (a primary reports no flush position; as a
//! mirror again it reports anew). Asynchronous replication changes none of these rules: they
//! are each instance's claims about its own disk.
//!
//! Cost: O(1) per position fact (a lookup of a file's durable length); a promotion parses the
//! mirror's WAL between its replay and flush positions once.
//!
//! Reading the disks changes nothing: no facts, no log lines, no awaits, no randomness.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cluster::model::catalog::Dbid;
use cluster::model::data::Lsn;
use cluster::model::observe::Fact;
use cluster::wal::record::{decode_frame, Frame};

use super::Violation;
use crate::world::dirs::DataDirs;

pub const NAME: &str = "wal-positions";

/// What a mirror reported since it last started: the highest flush position, the last replay
/// position.
#[derive(Clone, Copy, Debug, Default)]
struct Reported {
    flushed: Lsn,
    replayed: Lsn,
}

/// What a promotion that began must keep: the end of the last whole record it must reach, and
/// what that end was derived from.
#[derive(Clone, Copy, Debug)]
struct Floor {
    least_end: Lsn,
    reported: Reported,
    durable: u64,
}

/// Whose claim a violation is about: an instance, or the standby coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Claimant {
    Instance(Dbid),
    Standby,
}

/// The kind of claim broken; one violation is kept per claimant and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    FlushedIsDurable,
    ReplayedIsFlushed,
    PromotionKeepsFlushed,
}

#[derive(Default)]
struct State {
    reported: BTreeMap<Dbid, Reported>,
    promoting: BTreeMap<Dbid, Floor>,
    violations: Vec<(Claimant, Rule, Violation)>,
}

/// The checker: judges each position as it is reported.
pub struct WalPositions {
    dirs: DataDirs,
    state: Mutex<State>,
}

impl WalPositions {
    /// A checker reading the disks through `dirs`.
    pub fn new(dirs: DataDirs) -> WalPositions {
        WalPositions {
            dirs,
            state: Mutex::new(State::default()),
        }
    }

    /// Judges `fact`, reported at `at_ms`, against the disks as they are now.
    pub fn observe(&self, at_ms: u64, fact: &Fact) {
        let mut state = self.state.lock().unwrap();
        let state = &mut *state;
        match *fact {
            Fact::WalPositions {
                dbid,
                flushed,
                replayed,
                ..
            } => {
                let Some(durable) = self.dirs.segment_wal(dbid) else {
                    return;
                };
                let who = Claimant::Instance(dbid);
                state.judge_positions(at_ms, who, flushed, replayed, durable);
                let r = state.reported.entry(dbid).or_default();
                r.flushed = r.flushed.max(flushed);
                r.replayed = replayed;
            }
            Fact::StandbyWalPositions { flushed, replayed } => {
                if let Some(durable) = self.dirs.standby_wal() {
                    state.judge_positions(at_ms, Claimant::Standby, flushed, replayed, durable);
                }
            }
            Fact::WalShipped { dbid, end, .. } => {
                self.judge_own_wal(state, at_ms, dbid, end, "shipped to its mirror as flushed")
            }
            Fact::Acknowledged { dbid, lsn, .. } => {
                self.judge_own_wal(state, at_ms, dbid, lsn, "acknowledged a commit ending at")
            }
            Fact::PromotionBegun { dbid, .. } => {
                if let Some(floor) = self.floor(state, dbid) {
                    state.promoting.insert(dbid, floor);
                }
            }
            Fact::Promoted {
                content,
                dbid,
                end_lsn,
                ..
            } => {
                state.reported.remove(&dbid);
                if let Some(floor) = state.promoting.remove(&dbid) {
                    if end_lsn < floor.least_end {
                        let v = promotion_cut(at_ms, content, dbid, end_lsn, floor);
                        state.found(Claimant::Instance(dbid), Rule::PromotionKeepsFlushed, v);
                    }
                }
            }
            Fact::Started { dbid, .. } => {
                state.reported.remove(&dbid);
                state.promoting.remove(&dbid);
            }
            _ => {}
        }
    }

    /// A primary's claim that its own WAL is durable up to `lsn`.
    fn judge_own_wal(&self, state: &mut State, at_ms: u64, dbid: Dbid, lsn: Lsn, what: &str) {
        let Some(durable) = self.dirs.segment_wal(dbid) else {
            return;
        };
        if durable < lsn {
            let v = violation(
                at_ms,
                "flushed",
                format!(
                    "dbid {dbid} {what} {lsn}, but its disk holds only {durable} bytes of its WAL durably: a crash of its host would lose the rest"
                ),
            );
            state.found(Claimant::Instance(dbid), Rule::FlushedIsDurable, v);
        }
    }

    /// The least end of WAL mirror `dbid`'s promotion may keep, from what it reported and its
    /// disk as it is now (`None`: its directory is unknown or lost).
    fn floor(&self, state: &State, dbid: Dbid) -> Option<Floor> {
        let durable = self.dirs.segment_wal(dbid)?;
        let reported = state.reported.get(&dbid).copied().unwrap_or_default();
        let upto = reported.flushed.max(durable);
        let from = reported.replayed.min(upto);
        let bytes = self.dirs.segment_visible_wal(dbid, from, upto)?;
        Some(Floor {
            least_end: last_whole_record_end(from, &bytes),
            reported,
            durable,
        })
    }

    /// Every violation found so far.
    pub fn violations(&self) -> Vec<Violation> {
        let state = self.state.lock().unwrap();
        state.violations.iter().map(|(_, _, v)| v.clone()).collect()
    }
}

impl State {
    /// A reported flush and replay position against the claimant's durable WAL.
    fn judge_positions(
        &mut self,
        at_ms: u64,
        who: Claimant,
        flushed: Lsn,
        replayed: Lsn,
        durable: u64,
    ) {
        let name = match who {
            Claimant::Instance(dbid) => format!("mirror dbid {dbid}"),
            Claimant::Standby => "the standby coordinator".to_string(),
        };
        if flushed > durable {
            let v = violation(
                at_ms,
                "flushed",
                format!(
                    "{name} reported its WAL flushed up to {flushed}, but its disk holds only {durable} bytes of it durably: a crash of its host would lose the rest"
                ),
            );
            self.found(who, Rule::FlushedIsDurable, v);
        }
        if replayed > flushed {
            let v = violation(
                at_ms,
                "replayed",
                format!(
                    "{name} reported its WAL replayed up to {replayed} but flushed only up to {flushed} (durable {durable}): it applied records a crash loses"
                ),
            );
            self.found(who, Rule::ReplayedIsFlushed, v);
        }
    }

    /// Keeps `v` if it is the first of its kind against `who`: a broken claim repeats with
    /// every report, and the first says all.
    fn found(&mut self, who: Claimant, rule: Rule, v: Violation) {
        if !self
            .violations
            .iter()
            .any(|(w, r, _)| *w == who && *r == rule)
        {
            self.violations.push((who, rule, v));
        }
    }
}

/// The end of the last whole, valid record in `bytes`, the WAL from `from` (a record
/// boundary); `from` itself if none is whole.
fn last_whole_record_end(from: Lsn, bytes: &[u8]) -> Lsn {
    let mut pos = from;
    loop {
        let offset = (pos - from) as usize;
        match decode_frame(pos, &bytes[offset..]) {
            Frame::Complete { end, .. } => pos = end,
            Frame::Incomplete { .. } | Frame::Bad => return pos,
        }
    }
}

fn promotion_cut(at_ms: u64, content: i16, dbid: Dbid, end: Lsn, floor: Floor) -> Violation {
    let Floor {
        least_end,
        reported,
        durable,
    } = floor;
    violation(
        at_ms,
        "promote",
        format!(
            "content {content}: mirror dbid {dbid} was promoted with its WAL ending at {end}, but it held whole records up to {least_end} when its promotion began (it had reported {} flushed and {} replayed; {durable} bytes durable): the promotion discarded flushed WAL",
            reported.flushed, reported.replayed
        ),
    )
}

fn violation(at_ms: u64, kind: &str, message: String) -> Violation {
    Violation::as_reported(NAME, at_ms, kind, message.clone(), message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::disk::SimDisk;
    use cluster::io::disk::Disk;
    use cluster::model::data::TableDef;
    use cluster::wal::record::encode_frame;
    use cluster::wal::{Record, TableKind};

    const WAL: &str = "data/mirror0/pg_wal/wal";

    /// Frames `n` records from LSN `from`; returns the bytes and each record's end.
    fn records(from: Lsn, n: usize) -> (Vec<u8>, Vec<Lsn>) {
        let (mut bytes, mut ends) = (Vec::new(), Vec::new());
        for i in 0..n {
            let record = Record::CreateTable {
                def: TableDef {
                    id: i as _,
                    name: format!("t{i}"),
                    kind: TableKind::Heap,
                    schema: None,
                },
            };
            let end = encode_frame(from + bytes.len() as Lsn, &record, &mut bytes);
            ends.push(end);
        }
        (bytes, ends)
    }

    /// Mirror dbid 3 whose WAL holds `bytes`, the first `synced` of them durably.
    fn mirror(bytes: &[u8], synced: usize) -> (WalPositions, SimDisk) {
        let disk = SimDisk::new();
        let dirs = DataDirs::default();
        dirs.segment(3, "sdw2", &disk, "/data/mirror0");
        disk.install(WAL, &bytes[..synced]);
        if bytes.len() > synced {
            disk.append(WAL, &bytes[synced..]).unwrap();
        }
        (WalPositions::new(dirs), disk)
    }

    fn positions(flushed: Lsn, replayed: Lsn) -> Fact {
        Fact::WalPositions {
            content: 0,
            dbid: 3,
            flushed,
            replayed,
        }
    }

    fn promoted(end_lsn: Lsn) -> Fact {
        Fact::Promoted {
            content: 0,
            dbid: 3,
            epoch: 5,
            end_lsn,
        }
    }

    const BEGUN: Fact = Fact::PromotionBegun {
        content: 0,
        dbid: 3,
    };

    #[test]
    fn a_mirror_reporting_a_flush_beyond_its_durable_wal_is_a_violation() {
        let (checker, _disk) = mirror(&[1u8; 200], 100);
        checker.observe(7, &positions(100, 100));
        assert!(checker.violations().is_empty());
        checker.observe(8, &positions(150, 100));
        let found = checker.violations();
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("only 100 bytes"));
        assert_eq!(found[0].first_event.at_ms, 8);
    }

    #[test]
    fn a_replay_position_beyond_the_reported_flush_is_a_violation() {
        let (checker, _disk) = mirror(&[1u8; 200], 200);
        checker.observe(5, &positions(120, 150));
        let found = checker.violations();
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("replayed up to 150"));
    }

    #[test]
    fn a_broken_claim_is_reported_once_per_instance_and_kind() {
        let (checker, _disk) = mirror(&[1u8; 200], 100);
        for lsn in 150..160 {
            checker.observe(lsn, &positions(lsn, 0));
        }
        assert_eq!(checker.violations().len(), 1);
    }

    #[test]
    fn a_standby_reporting_a_flush_beyond_its_durable_catalog_wal_is_a_violation() {
        let disk = SimDisk::new();
        disk.install("data/standby/pg_wal/wal", &[1u8; 80]);
        let dirs = DataDirs::default();
        dirs.standby("smdw", &disk, "/data/standby");
        let checker = WalPositions::new(dirs.clone());
        let standby = |flushed, replayed| Fact::StandbyWalPositions { flushed, replayed };
        checker.observe(1, &standby(80, 80));
        assert!(checker.violations().is_empty());
        checker.observe(2, &standby(81, 80));
        checker.observe(3, &standby(80, 90));
        assert_eq!(checker.violations().len(), 2);
        dirs.standby_gone();
        checker.observe(4, &standby(900, 900));
        assert_eq!(checker.violations().len(), 2);
    }

    #[test]
    fn a_primary_shipping_or_acknowledging_beyond_its_durable_wal_is_a_violation() {
        let (checker, _disk) = mirror(&[1u8; 200], 100);
        let shipped = |end| Fact::WalShipped {
            content: 0,
            dbid: 3,
            end,
        };
        checker.observe(1, &shipped(100));
        assert!(checker.violations().is_empty());
        checker.observe(2, &shipped(101));
        assert_eq!(checker.violations().len(), 1);
        let (checker, _disk) = mirror(&[1u8; 200], 100);
        let acked = Fact::Acknowledged {
            content: 0,
            dbid: 3,
            epoch: 2,
            lsn: 180,
        };
        checker.observe(3, &acked);
        assert!(checker.violations()[0].message.contains("acknowledged"));
    }

    #[test]
    fn an_instance_whose_directory_was_lost_is_not_judged() {
        let disk = SimDisk::new();
        let dirs = DataDirs::default();
        dirs.segment(3, "sdw2", &disk, "/data/mirror0");
        dirs.lost(3);
        let checker = WalPositions::new(dirs);
        checker.observe(1, &positions(500, 900));
        checker.observe(2, &BEGUN);
        checker.observe(3, &promoted(0));
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn a_promotion_that_keeps_every_flushed_record_is_fine() {
        let (bytes, ends) = records(0, 4);
        let (checker, _disk) = mirror(&bytes, bytes.len());
        checker.observe(1, &positions(ends[3], ends[1]));
        checker.observe(2, &BEGUN);
        checker.observe(3, &promoted(ends[3]));
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn a_promotion_cutting_flushed_records_not_yet_replayed_is_a_violation() {
        let (bytes, ends) = records(0, 4);
        let (checker, _disk) = mirror(&bytes, bytes.len());
        checker.observe(1, &positions(ends[3], ends[1]));
        checker.observe(2, &BEGUN);
        checker.observe(3, &promoted(ends[1]));
        let found = checker.violations();
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("discarded flushed WAL"));
    }

    #[test]
    fn a_promotion_cutting_a_flushed_partial_record_is_fine() {
        let (bytes, ends) = records(0, 3);
        let half = ends[1] + (ends[2] - ends[1]) / 2;
        let (checker, _disk) = mirror(&bytes[..half as usize], half as usize);
        checker.observe(1, &positions(half, ends[0]));
        checker.observe(2, &BEGUN);
        checker.observe(3, &promoted(ends[1]));
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn durable_records_never_reported_flushed_must_be_kept_too() {
        let (bytes, ends) = records(0, 3);
        let (checker, _disk) = mirror(&bytes, bytes.len());
        checker.observe(1, &positions(ends[0], ends[0]));
        checker.observe(2, &BEGUN);
        checker.observe(3, &promoted(ends[0]));
        assert_eq!(checker.violations().len(), 1);
    }

    #[test]
    fn a_restart_forgets_what_the_mirror_reported_before_it() {
        let (bytes, ends) = records(0, 3);
        let (checker, disk) = mirror(&bytes, bytes.len());
        checker.observe(1, &positions(ends[2], ends[0]));
        // Recovery cut the last record (a corrupted byte), durably.
        disk.install(WAL, &bytes[..ends[1] as usize]);
        let started = Fact::Started {
            content: 0,
            dbid: 3,
            followed: 4,
            fresh: false,
            primary_at: None,
        };
        checker.observe(2, &started);
        checker.observe(3, &BEGUN);
        checker.observe(4, &promoted(ends[1]));
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn a_corrupt_record_ends_what_a_promotion_must_keep() {
        let (mut bytes, ends) = records(0, 3);
        bytes[ends[1] as usize + 9] ^= 0x40;
        let (checker, _disk) = mirror(&bytes, bytes.len());
        checker.observe(1, &positions(ends[2], 0));
        checker.observe(2, &BEGUN);
        checker.observe(3, &promoted(ends[1]));
        assert!(checker.violations().is_empty());
    }
}
