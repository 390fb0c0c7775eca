//! **An instance never obeys a request older than a configuration it already follows**, judged
//! at each obeyed request as the run goes.
//!
//! Seed 002 (fault detection) and the coordinator fence: every fenced request (a probe, a
//! promotion, synchronous waiting off, a rejoin, a transaction's begin, a prepared
//! transaction's commit or abort...) carries the configuration epoch of the catalog that sent
//! it, and an instance refuses one older than the newest epoch it follows: it comes from a
//! decision the catalog has since replaced, or from a coordinator an activation deposed.
//!
//! "Every obeyed request carries the acting catalog's epoch at that moment, or a newer one" is
//! not a rule correct code keeps: a coordinator stamps a request with its catalog's epoch when
//! it sends it, and any number of changes (most of them about other contents) may be committed
//! while the request is in flight; the instance heard of none of them and rightly obeys. What the
//! fence does keep, and what this checker judges, is the rule relative to what the instance
//! already knows of the catalog: an epoch it followed is one a catalog had, and
//!
//! - within one run of an instance (from its start), a request it obeys carries an epoch no
//!   older than any request it obeyed before in that run;
//! - and no older than the epoch it kept on disk at its start ([`Fact::Started`]: the first
//!   epoch of the newest coordinator generation it followed, which outlives restarts, so a
//!   deposed coordinator is refused by an instance restarted after the activation).
//!
//! The instance reports every obeyed request with its epoch ([`Fact::ObeyedEpoch`]); what it
//! followed is the checker's own account of those reports, not the instance's word: a fence that
//! updates its epoch before comparing, or compares only coordinator generations, or skips the
//! comparison, obeys a request below that account and is caught at the first one, within one
//! coordinator generation as across generations. The checker may know less than the instance
//! (epochs it followed from its primary's replication stream are not reported), which makes it
//! lenient there, never wrong. A restart starts a new account from the kept epoch: within a
//! generation the epoch lives in memory only (by design, see `segment::followed`).
//!
//! Judging changes nothing: no facts, no log lines, no awaits, no randomness.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cluster::model::catalog::{epoch, Content, Dbid};
use cluster::model::observe::Fact;

use super::Violation;
use crate::workload::history::Event;

pub const NAME: &str = "obeyed-epochs";

/// The newest epoch one instance is known to follow, and where it was learnt.
#[derive(Clone, Copy, Debug)]
struct Followed {
    epoch: u64,
    at_ms: u64,
    /// Kept on disk at the start (rather than a request obeyed).
    at_start: bool,
}

#[derive(Default)]
struct State {
    followed: BTreeMap<Dbid, Followed>,
    /// The newest epoch the coordinators reported committing (for the evidence only).
    catalog: u64,
    violations: Vec<Violation>,
    /// Instances found at fault (the first violation per instance says all).
    judged: std::collections::BTreeSet<Dbid>,
}

/// The checker: follows each instance's obeyed epochs as they are reported.
#[derive(Default)]
pub struct ObeyedEpochs {
    state: Mutex<State>,
}

impl ObeyedEpochs {
    /// Judges `fact`, reported at `at_ms`.
    pub fn observe(&self, at_ms: u64, fact: &Fact) {
        let mut state = self.state.lock().unwrap();
        match *fact {
            Fact::Started { dbid, followed, .. } => {
                let kept = Followed {
                    epoch: followed,
                    at_ms,
                    at_start: true,
                };
                state.followed.insert(dbid, kept);
            }
            Fact::CatalogChanged { epoch, .. } => state.catalog = state.catalog.max(epoch),
            Fact::ObeyedEpoch {
                content,
                dbid,
                epoch,
            } => state.obeyed(at_ms, content, dbid, epoch),
            _ => {}
        }
    }

    /// Every violation found so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.state.lock().unwrap().violations.clone()
    }
}

impl State {
    fn obeyed(&mut self, at_ms: u64, content: Content, dbid: Dbid, obeyed: u64) {
        let before = self.followed.get(&dbid).copied();
        if let Some(f) = before.filter(|f| obeyed < f.epoch) {
            if self.judged.insert(dbid) {
                let v = violation(at_ms, content, dbid, obeyed, f, self.catalog);
                self.violations.push(v);
            }
            return;
        }
        let now = Followed {
            epoch: obeyed,
            at_ms,
            at_start: false,
        };
        self.followed
            .entry(dbid)
            .and_modify(|f| {
                if obeyed > f.epoch {
                    *f = now;
                }
            })
            .or_insert(now);
    }
}

fn violation(
    at_ms: u64,
    content: Content,
    dbid: Dbid,
    obeyed: u64,
    followed: Followed,
    catalog: u64,
) -> Violation {
    let learnt = if followed.at_start {
        format!("kept on disk when it started at {} ms", followed.at_ms)
    } else {
        format!("on a request it obeyed at {} ms", followed.at_ms)
    };
    let within = if epoch::generation(obeyed) == epoch::generation(followed.epoch) {
        "within one coordinator generation"
    } else {
        "from a deposed coordinator generation"
    };
    Violation {
        checker: NAME,
        message: format!(
            "content {content}: dbid {dbid} obeyed a request stamped with configuration epoch {} although it already followed epoch {} ({learnt}): a stale request, {within}, got through its fence",
            epoch::describe(obeyed),
            epoch::describe(followed.epoch),
        ),
        first_event: Event {
            at_ms,
            client: 0,
            txn: 0,
            kind: "obeyed".into(),
            detail: format!(
                "dbid {dbid} obeyed epoch {}; followed {}; newest committed catalog epoch {}",
                epoch::describe(obeyed),
                epoch::describe(followed.epoch),
                epoch::describe(catalog)
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::model::catalog::epoch::first_of_next_generation;

    fn obeyed(epoch: u64) -> Fact {
        Fact::ObeyedEpoch {
            content: 0,
            dbid: 2,
            epoch,
        }
    }

    fn started(followed: u64) -> Fact {
        Fact::Started {
            content: 0,
            dbid: 2,
            followed,
            fresh: false,
            primary_at: None,
        }
    }

    #[test]
    fn requests_obeyed_in_epoch_order_are_fine_and_repeats_too() {
        let checker = ObeyedEpochs::default();
        for (t, e) in [(1, 3), (2, 3), (3, 5), (4, 5), (5, 9)] {
            checker.observe(t, &obeyed(e));
        }
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn a_request_older_than_one_obeyed_before_within_a_generation_is_a_violation() {
        let checker = ObeyedEpochs::default();
        checker.observe(10, &obeyed(6));
        checker.observe(20, &obeyed(5));
        let found = checker.violations();
        assert_eq!(found.len(), 1);
        assert!(found[0]
            .message
            .contains("within one coordinator generation"));
        assert!(found[0].message.contains("obeyed at 10 ms"));
    }

    #[test]
    fn a_request_of_a_deposed_generation_after_a_restart_is_a_violation() {
        let next = first_of_next_generation(7);
        let checker = ObeyedEpochs::default();
        checker.observe(10, &started(next));
        checker.observe(20, &obeyed(8));
        let found = checker.violations();
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("deposed coordinator generation"));
    }

    #[test]
    fn a_restart_within_a_generation_starts_from_the_kept_epoch() {
        let checker = ObeyedEpochs::default();
        checker.observe(10, &obeyed(6));
        checker.observe(20, &started(0));
        checker.observe(30, &obeyed(5));
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn a_request_in_flight_across_other_changes_is_fine_until_the_instance_hears_of_them() {
        let checker = ObeyedEpochs::default();
        checker.observe(1, &obeyed(4));
        for e in 5..9 {
            let change = Fact::CatalogChanged {
                epoch: e,
                dbid: 7,
                desc: String::new(),
                fts: None,
            };
            checker.observe(2, &change);
        }
        checker.observe(3, &obeyed(4));
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn each_instance_is_judged_on_its_own_account_and_found_once() {
        let checker = ObeyedEpochs::default();
        checker.observe(1, &obeyed(6));
        let other = Fact::ObeyedEpoch {
            content: 1,
            dbid: 4,
            epoch: 2,
        };
        checker.observe(2, &other);
        checker.observe(3, &obeyed(5));
        checker.observe(4, &obeyed(4));
        assert_eq!(checker.violations().len(), 1);
    }
}
