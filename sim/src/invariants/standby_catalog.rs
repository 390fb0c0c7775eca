//! **The activated standby's catalog is the coordinator's, at the standby's position.**
//!
//! Seed 000 (master mirroring): "upon activation of the standby master, the replicated logs
//! reconstruct the state of the primary master at the time of the last successfully committed
//! transaction" (DESIGN checker 6: the standby's catalog equals the coordinator's at the
//! standby's replay position). Judged on WAL bytes, since the catalog is a function of its WAL:
//! the standby's catalog WAL up to the point where activation cut it is a byte-identical prefix
//! of the coordinator's durable WAL (what survived the coordinator's crash). A standby holding a
//! catalog record the coordinator never made durable, or a different one, breaks it.
//!
//! And its other half ([`check_acknowledged`]): the activated standby holds every catalog change
//! the coordinator acted on because the standby reported it flushed. The coordinator waits for
//! that report before it acts on a change (a commit record before COMMIT PREPARED, a new epoch
//! before any segment sees it), so a change the standby loses when its host crashes is one the
//! cluster was already told about.

use super::Violation;
use crate::observer::Observed;
use crate::workload::history::Event;
use crate::world::coordinator_pair::ActivationRecord;
use cluster::model::observe::Fact;

pub const NAME: &str = "standby-catalog";

/// `standby_wal`: the activated standby's WAL (at least up to `end_lsn`, where activation cut
/// it); `coordinator_wal`: the old coordinator's WAL as its disk kept it.
pub fn check(
    standby_wal: &[u8],
    coordinator_wal: &[u8],
    end_lsn: u64,
    activated_at_ms: u64,
) -> Vec<Violation> {
    let end = end_lsn as usize;
    let problem = if standby_wal.len() < end {
        Some(format!(
            "the standby's WAL is {} bytes, short of the {end_lsn} its activation replayed",
            standby_wal.len()
        ))
    } else if coordinator_wal.len() < end {
        let differs = first_difference(&standby_wal[..coordinator_wal.len()], coordinator_wal);
        Some(format!(
            "the standby was activated at catalog WAL position {end_lsn}, but the coordinator's durable WAL ends at {}{}: the standby held catalog records the coordinator never made durable",
            coordinator_wal.len(),
            differs.map(|i| format!(" (and they differ from byte {i})")).unwrap_or_default()
        ))
    } else {
        first_difference(&standby_wal[..end], &coordinator_wal[..end]).map(|i| {
            format!("the standby's catalog WAL differs from the coordinator's at byte {i}, before its activation point {end_lsn}")
        })
    };
    problem
        .map(|message| Violation {
            checker: NAME,
            message,
            first_event: Event {
                at_ms: activated_at_ms,
                client: 0,
                txn: 0,
                kind: "activate".into(),
                detail: format!("standby activated with its catalog WAL ending at {end_lsn}"),
            },
        })
        .into_iter()
        .collect()
}

/// `facts`: what the instances reported during the run; `end_lsn`: where the standby's
/// activation cut its catalog WAL, at `activated_at_ms`. Every position the coordinator acted on
/// as flushed by its standby ([`Fact::StandbyFlushed`]) before the activation must lie within it.
pub fn check_acknowledged(
    facts: &[Observed],
    end_lsn: u64,
    activated_at_ms: u64,
) -> Vec<Violation> {
    let acted = facts
        .iter()
        .filter(|o| o.at_ms <= activated_at_ms)
        .filter_map(|o| match o.fact {
            Fact::StandbyFlushed { lsn } if lsn > end_lsn => Some((o.at_ms, lsn)),
            _ => None,
        })
        .max_by_key(|(_, lsn)| *lsn);
    acted
        .map(|(at_ms, lsn)| Violation {
            checker: NAME,
            message: format!(
                "the coordinator acted on catalog WAL up to {lsn} once its standby reported it flushed, but the activated standby's catalog WAL ends at {end_lsn}: a catalog change the cluster was told about is lost"
            ),
            first_event: Event {
                at_ms,
                client: 0,
                txn: 0,
                kind: "standby-flushed".into(),
                detail: format!("the standby reported catalog WAL up to {lsn} flushed"),
            },
        })
        .into_iter()
        .collect()
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// The standby-catalog checker over this activation: the standby's catalog WAL up to its
/// activation point is a prefix of what the lost coordinator made durable, and holds every
/// catalog position the coordinator acted on as flushed by its standby since `since_ms`
/// (the previous activation, or the start of the run).
pub fn check_activation(
    record: &ActivationRecord,
    facts: &[Observed],
    since_ms: u64,
) -> Vec<Violation> {
    let mut v = check(
        &record.standby_wal,
        &record.coordinator_wal,
        record.activation.end_lsn,
        record.at_ms,
    );
    let window: Vec<Observed> = facts
        .iter()
        .filter(|o| o.at_ms >= since_ms)
        .cloned()
        .collect();
    v.extend(check_acknowledged(
        &window,
        record.activation.end_lsn,
        record.at_ms,
    ));
    v
}

/// The standby-catalog checker over every activation of a run, in order.
pub fn check_activations(records: &[ActivationRecord], facts: &[Observed]) -> Vec<Violation> {
    let mut since = 0;
    let mut out = Vec::new();
    for r in records {
        out.extend(check_activation(r, facts, since));
        since = r.at_ms;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_of_the_coordinators_durable_wal_passes() {
        let coordinator = [1, 2, 3, 4, 5, 6];
        assert!(check(&[1, 2, 3, 4], &coordinator, 4, 10).is_empty());
        // What the standby received after its activation point does not count.
        assert!(check(&[1, 2, 3, 9], &coordinator, 3, 10).is_empty());
    }

    #[test]
    fn records_the_coordinator_never_made_durable_are_caught() {
        let v = check(&[1, 2, 3, 4, 5], &[1, 2, 3], 5, 10);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message.contains("never made durable"),
            "{}",
            v[0].message
        );
        let v = check(&[1, 2, 7, 4], &[1, 2, 3, 4], 4, 10);
        assert!(v[0]
            .message
            .contains("differs from the coordinator's at byte 2"));
        let v = check(&[1, 2], &[1, 2, 3], 3, 10);
        assert!(v[0].message.contains("short of"));
    }

    fn flushed(at_ms: u64, lsn: u64) -> Observed {
        Observed {
            at_ms,
            fact: Fact::StandbyFlushed { lsn },
        }
    }

    #[test]
    fn a_change_acted_on_must_survive_in_the_activated_standby() {
        let facts = [flushed(5, 40), flushed(6, 90), flushed(20, 300)];
        assert!(check_acknowledged(&facts, 90, 10).is_empty());
        assert!(
            check_acknowledged(&facts, 120, 10).is_empty(),
            "later facts come from the new coordinator"
        );
        let v = check_acknowledged(&facts, 60, 10);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("up to 90"), "{}", v[0].message);
        assert_eq!(v[0].first_event.at_ms, 6);
    }
}
