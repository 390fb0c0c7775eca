//! **A run that must stay available stays available.**
//!
//! Seed (002, segment mirroring): "if a primary segment becomes unavailable, the mirror is
//! promoted and the system continues operating"; the prober detects a failed primary within its
//! probe interval, timeout and retries. So in a run whose faults never take both instances of a
//! content at once, never touch the coordinator and never split a pair (label
//! [`Label::MustStayAvailable`]), a client may find a content unavailable only within the
//! detection window after a fault that touches that content starts or heals (or while the whole
//! network is slowed by a latency spike or packet loss, and a window after).
//!
//! Exact rule: every transaction that failed or timed out with a content-unavailable error (no
//! live instance, cannot reach its primary, lost the primary, an instance or the coordinator did
//! not answer in time; "all segment databases are unavailable" names every content; an error
//! naming no content, a timeout, is excused by a window of any content the transaction's
//! statements route to) completed inside an excuse window of that content; runs
//! labelled [`Label::MayLoseAvailabilityNeverData`] are not judged.
//!
//! Tightened for a hung primary ([`paused_primary_bound`]): when an `instance-pause` stops its
//! content's acting primary, every transaction touching that content that was in flight at the
//! pause, or began during it before the prober must have replaced the primary, completes (ok,
//! failed or unknown) within the failover bound after the pause starts, not after its
//! statement timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::coordinator::prober::ProbeSettings;
use cluster::model::catalog::{Role, SegmentConfig};

use super::Violation;
use crate::nemesis::{exposure, one_probe, Fault, Label, ScheduledFault};
use crate::workload::history::TxnRecord;

pub const NAME: &str = "availability";

/// What the coordinator's session needs, once the catalog names the promoted mirror, to cancel
/// its calls to the hung primary, roll the transaction back, and run it again there: the
/// retry's first pause (100 ms), a second try if the mirror was still finishing its promotion
/// (200 ms more), and the statements and the commit themselves.
pub const FAILOVER_RETRY_ALLOWANCE: Duration = Duration::from_secs(1);

/// The longest the prober may take, from the moment a content's acting primary hangs, to
/// publish the promoted mirror: the next probe cycle starts within one probe interval, and its
/// probe fails after every attempt timed out.
pub fn paused_primary_detection(probe: &ProbeSettings) -> Duration {
    probe.probe_interval + one_probe(probe)
}

/// How long after a pause of its acting primary a content's transactions may take to complete:
/// [`paused_primary_detection`], the promote request (one attempt: the mirror is up), and
/// [`FAILOVER_RETRY_ALLOWANCE`]. The simulator's settings (2 s interval, 1 s timeout, 2 retries
/// 500 ms apart) make it 8 s, under the 10 s statement timeout a call to the hung primary would
/// otherwise wait (and a transaction caught on one waits that, and then its retry).
pub fn paused_primary_bound(probe: &ProbeSettings) -> Duration {
    paused_primary_detection(probe) + probe.probe_timeout + FAILOVER_RETRY_ALLOWANCE
}

/// Whether an error says a content (or the coordinator, waiting on one) was unavailable.
fn is_unavailable(error: &str) -> bool {
    [
        "unavailable",
        "cannot reach its primary",
        "lost the primary",
        "did not answer",
        "connection to the coordinator lost",
    ]
    .iter()
    .any(|m| error.contains(m))
}

/// The contents an unavailability error names (`all` for "all segment databases are
/// unavailable"); `None` if it is no unavailability error or names no content.
fn named_contents(error: &str, all: &[i16]) -> Option<Vec<i16>> {
    if !is_unavailable(error) {
        return None;
    }
    if error.contains("all segment databases are unavailable") {
        return Some(all.to_vec());
    }
    let mut out = Vec::new();
    let mut rest = error;
    while let Some(i) = rest.find("content ") {
        rest = &rest[i + "content ".len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if let Ok(c) = digits.parse::<i16>() {
            if all.contains(&c) && !out.contains(&c) {
                out.push(c);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `faults` in ms since the workload started at `workload_started_ms` (the history's clock).
pub fn check(
    label: Label,
    faults: &[ScheduledFault],
    segments: &[SegmentConfig],
    txns: &[TxnRecord],
    workload_started_ms: u64,
    end_ms: u64,
    window: Duration,
) -> Vec<Violation> {
    if label != Label::MustStayAvailable {
        return Vec::new();
    }
    let w = window.as_millis() as u64;
    let mut contents: Vec<i16> = segments.iter().map(|s| s.content).collect();
    contents.dedup();
    let excuses = excuses(faults, segments, &contents, end_ms, w);
    let mut violations = Vec::new();
    for t in txns {
        let (Some(done), Some(err)) = (t.completed_ms, t.error.as_deref()) else {
            continue;
        };
        if t.outcome == Some(crate::workload::history::Outcome::Ok) {
            continue;
        }
        let at = done.saturating_sub(workload_started_ms);
        let mut touched: Vec<i16> = t.ops.iter().map(|o| o.content).collect();
        touched.sort_unstable();
        touched.dedup();
        let excused = |c: &i16| {
            excuses
                .get(c)
                .is_some_and(|spans| spans.iter().any(|(a, b)| *a <= at && at <= *b))
        };
        let named = named_contents(err, &contents);
        // An error that names its contents must be excused for each of them; one that names
        // none (a timeout) for at least one of the contents the transaction went to.
        let culprit = match &named {
            Some(named) => named.iter().find(|c| !excused(c)).copied(),
            None if is_unavailable(err) && !touched.iter().any(excused) => touched.first().copied(),
            None => None,
        };
        if let Some(c) = culprit {
            violations.push(Violation {
                checker: NAME,
                message: format!(
                    "content {c} was unavailable at {at} ms of the workload in a run that must stay available, outside the {w} ms detection window after every fault touching it: {err}"
                ),
                first_event: t.completion_event(),
            });
        }
        if violations.len() >= 20 {
            break;
        }
    }
    violations
}

/// Per content, the spans in which it may be unavailable: each fault touching it, and its heal,
/// followed by the detection window `w`; and everywhere, latency and loss for as long as they
/// last (then `w`).
fn excuses(
    faults: &[ScheduledFault],
    segments: &[SegmentConfig],
    contents: &[i16],
    end_ms: u64,
    w: u64,
) -> BTreeMap<i16, Vec<(u64, u64)>> {
    let exp = exposure(faults, segments, end_ms);
    let mut excuses: BTreeMap<i16, Vec<(u64, u64)>> = BTreeMap::new();
    for s in segments {
        for (a, b) in exp.per_dbid.get(&s.dbid).into_iter().flatten() {
            let e = excuses.entry(s.content).or_default();
            e.push((*a, a + w));
            e.push((*b, b.saturating_add(w)));
        }
    }
    // Latency and loss slow everything down for as long as they last.
    let mut heal_at: BTreeMap<u32, u64> = BTreeMap::new();
    for f in faults.iter().filter(|f| f.fault.is_heal()) {
        heal_at.insert(f.episode, f.at_ms);
    }
    for f in faults {
        if matches!(
            f.fault,
            Fault::LatencySpike { .. } | Fault::PacketLoss { .. }
        ) {
            let end = heal_at.get(&f.episode).copied().unwrap_or(end_ms);
            for c in contents {
                excuses
                    .entry(*c)
                    .or_default()
                    .push((f.at_ms, end.saturating_add(w)));
            }
        }
    }
    excuses
}

/// The rule for a hung primary (see the module's doc), in a run labelled
/// [`Label::MustStayAvailable`]. A pause is judged only where the schedule
/// shows the paused instance was its content's acting primary (its preferred role is primary
/// and no earlier fault touched its content, so no failover moved the role), and no other fault
/// can account for the delay: none starts within [`paused_primary_detection`] before the pause
/// (another content's failover, or its mirror's grace period, holds the prober's cycle) or
/// within [`paused_primary_bound`] after it (a transaction that also touches another content
/// may wait there, a commit on a paused mirror), and no latency spike or packet loss is in
/// force meanwhile.
pub fn check_paused_primaries(
    label: Label,
    faults: &[ScheduledFault],
    segments: &[SegmentConfig],
    txns: &[TxnRecord],
    workload_started_ms: u64,
    end_ms: u64,
    probe: &ProbeSettings,
) -> Vec<Violation> {
    if label != Label::MustStayAvailable {
        return Vec::new();
    }
    let mut heal_at: BTreeMap<u32, u64> = BTreeMap::new();
    for f in faults.iter().filter(|f| f.fault.is_heal()) {
        heal_at.entry(f.episode).or_insert(f.at_ms);
    }
    let pauses = Pauses {
        faults,
        segments,
        exp: exposure(faults, segments, end_ms),
        heal_at,
        bound: paused_primary_bound(probe).as_millis() as u64,
        detect: paused_primary_detection(probe).as_millis() as u64,
        end_ms,
    };
    let mut violations = Vec::new();
    for f in faults {
        let Fault::InstancePause { dbid } = f.fault else {
            continue;
        };
        let Some(paused) = segments.iter().find(|s| s.dbid == dbid) else {
            continue;
        };
        if !pauses.judged(f, paused) {
            continue;
        }
        let (at, content) = (f.at_ms, paused.content);
        let resumed = pauses.heal_at.get(&f.episode).copied().unwrap_or(end_ms);
        // Later transactions find the promoted mirror in the catalog.
        let last_start = resumed.min(at + pauses.detect);
        for t in txns {
            if !t.ops.iter().any(|o| o.content == content) {
                continue;
            }
            let invoked = t.invoked_ms.saturating_sub(workload_started_ms);
            let done = t
                .completed_ms
                .map_or(end_ms, |d| d.saturating_sub(workload_started_ms));
            if invoked > last_start || done <= at + pauses.bound {
                continue;
            }
            violations.push(Violation {
                checker: NAME,
                message: pauses.late(t, f, paused, invoked, done),
                first_event: t.completion_event(),
            });
            if violations.len() >= 20 {
                return violations;
            }
        }
    }
    violations
}

/// What judging paused primaries needs: the schedule, where it struck, and the bounds.
struct Pauses<'a> {
    faults: &'a [ScheduledFault],
    segments: &'a [SegmentConfig],
    exp: crate::nemesis::Exposure,
    /// Each episode's heal, by episode.
    heal_at: BTreeMap<u32, u64>,
    bound: u64,
    detect: u64,
    end_ms: u64,
}

impl Pauses<'_> {
    /// Whether the pause `f` of `paused` is judged: the instance was its content's acting
    /// primary (no fault had struck the content before), and no other fault disturbed the
    /// window from its detection before the pause to the bound after it.
    fn judged(&self, f: &ScheduledFault, paused: &SegmentConfig) -> bool {
        let (at, content) = (f.at_ms, paused.content);
        let acting = paused.preferred_role == Role::Primary
            && !self
                .segments
                .iter()
                .filter(|s| s.content == content)
                .any(|s| {
                    self.exp
                        .per_dbid
                        .get(&s.dbid)
                        .is_some_and(|spans| spans.iter().any(|(a, _)| *a < at))
                });
        let disturbed = self.faults.iter().any(|g| {
            if g.episode == f.episode || g.fault.is_heal() {
                return false;
            }
            let slows = matches!(
                g.fault,
                Fault::LatencySpike { .. } | Fault::PacketLoss { .. }
            );
            let until = if slows {
                self.heal_at.get(&g.episode).copied().unwrap_or(self.end_ms)
            } else {
                g.at_ms
            };
            g.at_ms <= at + self.bound && until >= at.saturating_sub(self.detect)
        });
        acting && !disturbed
    }

    /// The violation's text for transaction `t`, begun at `invoked` and done at `done` (ms since
    /// the workload began), which waited past the bound on the paused primary.
    fn late(
        &self,
        t: &TxnRecord,
        f: &ScheduledFault,
        paused: &SegmentConfig,
        invoked: u64,
        done: u64,
    ) -> String {
        let (at, content, dbid, bound) = (f.at_ms, paused.content, paused.dbid, self.bound);
        let when = if invoked <= at {
            "in flight when".to_string()
        } else {
            format!("begun at {invoked} ms, after")
        };
        let outcome = match t.outcome {
            Some(crate::workload::history::Outcome::Ok) => "ok",
            Some(crate::workload::history::Outcome::Fail) => "failed",
            Some(crate::workload::history::Outcome::Unknown) | None => "unknown",
        };
        let how = match (t.completed_ms, t.error.as_deref()) {
            (None, _) => "never completed".to_string(),
            (Some(_), None) => format!("completed ({outcome}) at {done} ms"),
            (Some(_), Some(e)) => format!("completed ({outcome}) at {done} ms: {e}"),
        };
        format!(
            "transaction {} of client {} touching content {content} was {when} its acting primary dbid {dbid} was paused at {at} ms (episode {}), and {how}: more than the {bound} ms failover bound after the pause",
            t.id, t.client, f.episode
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_unavailable_errors_name_their_contents() {
        let all = [0, 1, 2];
        assert_eq!(
            named_contents("content 1 is unavailable: no live instance", &all),
            Some(vec![1])
        );
        assert_eq!(
            named_contents(
                "content 2: cannot reach its primary: refused; transaction rolled back",
                &all
            ),
            Some(vec![2])
        );
        assert_eq!(
            named_contents("all segment databases are unavailable", &all),
            Some(vec![0, 1, 2])
        );
        let timeout = "connection to the coordinator lost: 10.0.0.1:5432 did not answer within 7s";
        assert!(is_unavailable(timeout));
        assert_eq!(named_contents(timeout, &all), None);
        assert!(!is_unavailable("duplicate key 5 on content 1"));
    }

    #[test]
    fn the_failover_bound_outlasts_a_detection_and_stays_under_the_statement_timeout() {
        let cfg = crate::config::RunConfig::standard();
        let bound = paused_primary_bound(&cfg.probe);
        assert_eq!(paused_primary_detection(&cfg.probe), Duration::from_secs(6));
        assert_eq!(bound, Duration::from_secs(8));
        // A call stuck on the hung primary lasts the statement timeout: past the bound.
        assert!(bound < cfg.statement_timeout);
    }

    /// The standard cluster, a pause of content 1's preferred primary at 20 s (healed at 35 s),
    /// and transactions on content 1 (`(invoked, completed)` in workload ms; the workload
    /// started at 1000 ms of the run).
    fn paused_primary_run(
        extra: Vec<ScheduledFault>,
        txns: &[(u64, u64)],
        pause_dbid: impl Fn(&[SegmentConfig]) -> u16,
    ) -> Vec<Violation> {
        use crate::workload::history::{testing, Outcome};
        let cfg = crate::config::RunConfig::standard();
        let segments = crate::world::layout(&cfg);
        let dbid = pause_dbid(&segments);
        let mut faults = vec![
            ScheduledFault {
                at_ms: 20_000,
                episode: 1,
                fault: Fault::InstancePause { dbid },
            },
            ScheduledFault {
                at_ms: 35_000,
                episode: 1,
                fault: Fault::InstanceResume { dbid },
            },
        ];
        faults.extend(extra);
        crate::nemesis::sort(&mut faults);
        let txns: Vec<TxnRecord> = txns
            .iter()
            .enumerate()
            .map(|(i, (invoked, completed))| {
                let mut t = testing::txn(
                    i as u64,
                    (1000 + invoked, 1000 + completed),
                    Outcome::Ok,
                    vec![testing::insert(i as i64, b"v")],
                );
                t.ops[0].content = 1;
                t
            })
            .collect();
        check_paused_primaries(
            Label::MustStayAvailable,
            &faults,
            &segments,
            &txns,
            1000,
            60_000,
            &cfg.probe,
        )
    }

    fn preferred(role: Role) -> impl Fn(&[SegmentConfig]) -> u16 {
        move |segments: &[SegmentConfig]| {
            segments
                .iter()
                .find(|s| s.content == 1 && s.preferred_role == role)
                .unwrap()
                .dbid
        }
    }

    #[test]
    fn a_transaction_held_on_a_paused_acting_primary_past_the_failover_bound_is_a_violation() {
        // In flight at the pause: done in 7 s is fine, in 10.2 s (a statement timeout) is not.
        // Begun during the pause before the prober must have acted: the same. Done before the
        // pause, or begun once the promoted mirror is published: not judged.
        let txns = [
            (19_990, 27_000),
            (19_995, 30_200),
            (24_000, 34_100),
            (10_000, 19_999),
            (26_500, 40_000),
        ];
        let v = paused_primary_run(Vec::new(), &txns, preferred(Role::Primary));
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].message.starts_with("transaction 1 of client 1 touching content 1 was in flight when its acting primary dbid "), "{}", v[0].message);
        assert!(
            v[0].message.contains("paused at 20000 ms (episode 1)")
                && v[0].message.contains("at 30200 ms"),
            "{}",
            v[0].message
        );
        assert!(
            v[1].message.contains("transaction 2 ")
                && v[1].message.contains("begun at 24000 ms, after"),
            "{}",
            v[1].message
        );
        assert_eq!(v[0].first_event.txn, 1);
        // A paused mirror holds no transaction.
        assert!(paused_primary_run(Vec::new(), &txns, preferred(Role::Mirror)).is_empty());
    }

    #[test]
    fn a_pause_is_judged_only_where_the_schedule_says_who_acts_and_nothing_else_delays() {
        let txns = [(19_995, 30_200)];
        let cfg = crate::config::RunConfig::standard();
        let segments = crate::world::layout(&cfg);
        let on = |content: i16, role: Role| {
            segments
                .iter()
                .find(|s| s.content == content && s.preferred_role == role)
                .unwrap()
                .dbid
        };
        let at = |at_ms: u64, episode: u32, fault: Fault| ScheduledFault {
            at_ms,
            episode,
            fault,
        };
        // An earlier kill of content 1's primary: its mirror may be acting by now.
        let earlier = vec![
            at(
                2_000,
                2,
                Fault::InstanceKill {
                    dbid: on(1, Role::Primary),
                },
            ),
            at(
                4_000,
                2,
                Fault::InstanceRestart {
                    dbid: on(1, Role::Primary),
                },
            ),
        ];
        assert!(paused_primary_run(earlier, &txns, preferred(Role::Primary)).is_empty());
        // Another content's mirror paused 7 s into the pause: a transaction that also commits
        // there waits for it to be marked down.
        let mirror = on(0, Role::Mirror);
        let after = vec![
            at(27_000, 2, Fault::InstancePause { dbid: mirror }),
            at(29_000, 2, Fault::InstanceResume { dbid: mirror }),
        ];
        assert!(paused_primary_run(after, &txns, preferred(Role::Primary)).is_empty());
        // Another content's primary paused 5 s before: its failover may hold the prober's cycle.
        let primary = on(0, Role::Primary);
        let before = vec![
            at(15_000, 2, Fault::InstancePause { dbid: primary }),
            at(16_000, 2, Fault::InstanceResume { dbid: primary }),
        ];
        assert!(paused_primary_run(before, &txns, preferred(Role::Primary)).is_empty());
        // A latency spike that began long before and lasts into the pause slows everything.
        let spike = vec![
            at(
                1_000,
                2,
                Fault::LatencySpike {
                    min_ms: 50,
                    max_ms: 250,
                },
            ),
            at(21_000, 2, Fault::LatencyHeal),
        ];
        assert!(paused_primary_run(spike, &txns, preferred(Role::Primary)).is_empty());
        // A fault well away from the pause leaves it judged.
        let far = vec![
            at(2_000, 2, Fault::InstancePause { dbid: primary }),
            at(4_000, 2, Fault::InstanceResume { dbid: primary }),
        ];
        assert_eq!(
            paused_primary_run(far, &txns, preferred(Role::Primary)).len(),
            1
        );
    }

    #[test]
    fn the_window_covers_a_probe_cycle_with_retries() {
        let probe = crate::config::sim_probe_settings();
        let w = crate::nemesis::detection_window(
            &probe,
            Duration::from_secs(3),
            Duration::from_secs(3),
        );
        assert!(w > probe.probe_interval + probe.probe_timeout * (probe.probe_retries + 1));
    }
}
