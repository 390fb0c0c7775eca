//! **Every configuration change has its history row, and every epoch step is explained.**
//!
//! DESIGN section 3: "Configuration changes are logged in a history table" (the prober's catalog
//! write inserts `gp_configuration_history(time, dbid, "FTS: update role, status, and mode for
//! dbid …")` with each change; reference/greenplum-behaviour.md, FTS catalog writes). Judged at
//! the end of a run on what the prober and the administration utilities (`recoverseg`,
//! `recoverseg -r`, ...) logged after each committed change (its history lines and the new
//! epoch) against the history table and epoch read back from the coordinator:
//! - the logged changes appear in the history table in epoch order (dbid and text equal);
//! - every epoch from the first after the initial one (2) up to the final epoch is the epoch of
//!   a logged change, or of a change whose writer was lost between making it durable and
//!   logging it (a coordinator host crash; the activated standby inherits the change): then
//!   its history rows are there, matched by no logged change. So the epochs without a logged
//!   change may not outnumber the history rows no logged change accounts for: the catalog
//!   never moved to a new configuration nobody recorded.
//!
//! Epochs count within a coordinator generation (`cluster::model::catalog::epoch`): an activation
//! starts the next generation at its change 1. A coordinator deposed by an activation may still
//! record changes of the old generation in its own catalog before it learns it was replaced
//! (they never reach the acting catalog, and what the instances did with them is
//! `one-acting-coordinator`'s and `linear-history`'s to judge): lines of a generation logged
//! after the next generation's first line are not the acting catalog's, and are left out.

use cluster::model::catalog::epoch::generation;
use cluster::model::catalog::HistoryRow;

use super::Violation;
use crate::observer::CatalogLine;
use crate::workload::history::Event;

pub const NAME: &str = "configuration-history";

/// The epoch a fresh catalog starts at.
const INITIAL_EPOCH: u64 = 1;

pub fn check(lines: &[CatalogLine], rows: &[HistoryRow], final_epoch: u64) -> Vec<Violation> {
    let lines = acting_lines(lines);
    let mut violations = Vec::new();
    let (missing, matched) = first_missing_row(&lines, rows);
    violations.extend(missing);
    let logged: std::collections::BTreeSet<u64> = lines.iter().map(|l| l.epoch).collect();
    let unlogged = unlogged_epochs(&logged, final_epoch);
    let unaccounted_rows = rows.len().saturating_sub(matched);
    if let Some(&epoch) = unlogged.get(unaccounted_rows.min(unlogged.len())) {
        violations.push(violation(
            0,
            format!(
                "the catalog reached epoch {final_epoch}, but no recorded configuration change explains the step to epoch {epoch} ({} epochs without a logged change, {unaccounted_rows} history rows no logged change accounts for)",
                unlogged.len()
            ),
            format!("final configuration epoch {final_epoch}"),
        ));
    }
    if let Some(line) = lines.iter().find(|l| l.epoch > final_epoch) {
        violations.push(violation(
            line.at_ms,
            format!(
                "the prober logged a change at epoch {} but the catalog ended at epoch {final_epoch}",
                line.epoch
            ),
            line.desc.clone(),
        ));
    }
    violations
}

/// The changes the acting catalog made: a generation's changes logged after the next
/// generation began (its successor's activation) are left out.
fn acting_lines(lines: &[CatalogLine]) -> Vec<CatalogLine> {
    // When each generation's first change was logged (its activation).
    let mut began: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    for l in lines {
        let at = began.entry(generation(l.epoch)).or_insert(l.at_ms);
        *at = (*at).min(l.at_ms);
    }
    lines
        .iter()
        .filter(|l| {
            began
                .get(&(generation(l.epoch) + 1))
                .is_none_or(|next| l.at_ms <= *next)
        })
        .cloned()
        .collect()
}

/// Logged changes, in commit (epoch) order, must be a subsequence of the history rows; two
/// writers may log their commits in another order than they made them. Returns the first
/// change with no row (the rest would repeat it), and how many rows were matched.
fn first_missing_row(lines: &[CatalogLine], rows: &[HistoryRow]) -> (Option<Violation>, usize) {
    let mut in_order: Vec<&CatalogLine> = lines.iter().collect();
    in_order.sort_by_key(|l| l.epoch);
    let mut next_row = 0;
    let mut matched = 0;
    for line in in_order {
        let found = rows[next_row..]
            .iter()
            .position(|r| r.dbid == line.dbid && r.desc == line.desc);
        match found {
            Some(i) => {
                next_row += i + 1;
                matched += 1;
            }
            None => {
                let v = violation(
                    line.at_ms,
                    format!(
                        "the prober committed \"{}\" at epoch {} ({} ms) but gp_configuration_history has no such row after the {} rows matched before it ({} rows in all)",
                        line.desc, line.epoch, line.at_ms, next_row, rows.len()
                    ),
                    format!("catalog change at epoch {}: {}", line.epoch, line.desc),
                );
                return (Some(v), matched);
            }
        }
    }
    (None, matched)
}

/// The epochs the acting catalog went through that no logged change explains: from the first
/// after the initial one to the final epoch in its generation, and in each earlier generation
/// up to its last logged change (where its successor took over).
fn unlogged_epochs(logged: &std::collections::BTreeSet<u64>, final_epoch: u64) -> Vec<u64> {
    let final_generation = generation(final_epoch);
    let mut unlogged: Vec<u64> = Vec::new();
    for g in 0..=final_generation {
        let first = if g == 0 {
            INITIAL_EPOCH + 1
        } else {
            cluster::model::catalog::epoch::first_of_next_generation(((g - 1) as u64) << 32)
        };
        let last = if g == final_generation {
            final_epoch
        } else {
            match logged
                .range(first..)
                .take_while(|e| generation(**e) == g)
                .last()
            {
                Some(e) => *e,
                None => continue,
            }
        };
        unlogged.extend((first..=last).filter(|e| !logged.contains(e)));
    }
    unlogged
}

fn violation(at_ms: u64, message: String, detail: String) -> Violation {
    Violation {
        checker: NAME,
        message,
        first_event: Event {
            at_ms,
            client: 0,
            txn: 0,
            kind: "catalog".into(),
            detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(epoch: u64, dbid: u16, desc: &str) -> CatalogLine {
        CatalogLine {
            at_ms: epoch * 10,
            epoch,
            dbid,
            desc: desc.into(),
        }
    }

    fn row(dbid: u16, desc: &str) -> HistoryRow {
        HistoryRow {
            time_ms: 0,
            dbid,
            desc: desc.into(),
        }
    }

    #[test]
    fn a_full_history_passes_and_a_missing_row_or_epoch_step_fires() {
        let lines = [line(2, 2, "a"), line(2, 3, "b"), line(3, 3, "c")];
        let rows = [row(2, "a"), row(3, "b"), row(3, "c")];
        assert!(check(&lines, &rows, 3).is_empty());
        // Rows the prober did not log (another writer of the catalog) are allowed.
        let more = [row(9, "x"), row(2, "a"), row(3, "b"), row(3, "c")];
        assert!(check(&lines, &more, 3).is_empty());

        let missing = [row(2, "a"), row(3, "c")];
        let v = check(&lines, &missing, 3);
        assert_eq!(v.len(), 1);
        assert!(
            v[0].message.contains("\"b\" at epoch 2"),
            "{}",
            v[0].message
        );

        let out_of_order = [row(3, "b"), row(2, "a"), row(3, "c")];
        assert_eq!(check(&lines, &out_of_order, 3).len(), 1);

        let v = check(&lines, &rows, 4);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("step to epoch 4"), "{}", v[0].message);
        // A change made durable (its history row written) by a coordinator lost before it
        // logged it explains one step.
        let unlogged = [row(2, "a"), row(3, "b"), row(3, "c"), row(4, "d")];
        assert!(check(&lines, &unlogged, 4).is_empty());
        let v = check(&lines, &unlogged, 5);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("step to epoch 5"), "{}", v[0].message);
        assert!(check(&[], &[], 1).is_empty());
    }
}
