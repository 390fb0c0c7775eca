//! **The prober fails over only a primary that stopped answering**, judged at each failover
//! decision as the run goes: the prober's decision policy, not only its safety.
//!
//! Seed 002 (fault detection): the prober probes each primary every `probe_interval`, each
//! attempt bounded by `probe_timeout`, and counts a primary as failed only once `probe_retries`
//! retries after a first attempt, `retry_gap` apart, all went unanswered. A needless failover
//! is safe for the data, so the end-of-run checkers see nothing; it costs the content its
//! primary, its in-flight transactions and a full resynchronization, and this checker catches
//! the policy that makes it.
//!
//! The prober reports each failover decision ([`Fact::FailoverDecided`]) with the probe round
//! it was decided on: every attempt of that round as its transport ended it (an answer
//! delivered, the instance starting, a refusal, a network failure, no answer within the time
//! left), how long the attempt waited and the pause before it. The transport's word is what the
//! simulated network delivered, and when, on the simulated clock: the decision code that the
//! planted bugs break does not make it. The configured settings come from the run's
//! configuration, not from the prober. A failover decision is wrong if its round
//!
//! - holds an attempt the primary's answer reached in time (the prober then had an answer: a
//!   primary that answers is never failed over, whatever the network did before or after);
//! - has fewer than `probe_retries + 1` attempts (a lost probe, or a few, is not a failed
//!   primary: packet loss, a latency spike or a short partition loses some);
//! - has an attempt that ended for want of an answer before `probe_timeout` had passed since it
//!   began (a slow answer is still an answer);
//! - retried sooner than `retry_gap` after the previous attempt ended.
//!
//! Exemptions, each a rule of the real prober, not a leniency: a round whose last attempt was
//! answered "starting" is not judged (a primary that keeps answering that it is starting for
//! more than `starting_probes_max` rounds counts as failed: it restarts but never comes back);
//! an attempt the instance answered by refusing the probe (its disk check failed, or its fence
//! refused the probe's epoch) counts as unanswered, as does one the network failed early (a
//! refused connection, a reset): the real prober counts both as failures. Correct code never
//! breaks the rule, whatever the faults: it decides a failover only after a full round of
//! failures, and measures each timeout on the simulated clock.
//!
//! Judging changes nothing: no facts, no log lines, no awaits, no randomness.

use std::collections::BTreeSet;
use std::sync::Mutex;

use cluster::coordinator::prober::ProbeSettings;
use cluster::model::catalog::{Content, Dbid};
use cluster::model::observe::{AttemptEnd, Fact, ProbeAttempt};

use super::Violation;
use crate::workload::history::Event;

pub const NAME: &str = "failover-policy";

/// The checker: judges each failover decision against the configured probe settings.
pub struct FailoverPolicy {
    settings: ProbeSettings,
    /// The contents found at fault so far, and each violation (the first per content).
    found: Mutex<(BTreeSet<Content>, Vec<Violation>)>,
}

impl FailoverPolicy {
    /// A checker for a prober configured with `settings`.
    pub fn new(settings: ProbeSettings) -> FailoverPolicy {
        FailoverPolicy {
            settings,
            found: Mutex::default(),
        }
    }

    /// Judges `fact`, reported at `at_ms`.
    pub fn observe(&self, at_ms: u64, fact: &Fact) {
        let Fact::FailoverDecided {
            content,
            primary,
            mirror,
            epoch,
            round,
        } = fact
        else {
            return;
        };
        let Some(wrong) = judge(&self.settings, round) else {
            return;
        };
        let mut found = self.found.lock().unwrap();
        if found.0.insert(*content) {
            found.1.push(violation(
                at_ms, *content, *primary, *mirror, *epoch, round, &wrong,
            ));
        }
    }

    /// Every violation found so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.found.lock().unwrap().1.clone()
    }
}

/// Why a failover decided on `round` breaks the policy of a prober configured with `settings`,
/// or `None` if the round allowed it.
pub fn judge(settings: &ProbeSettings, round: &[ProbeAttempt]) -> Option<String> {
    if round.last().is_some_and(|a| a.end == AttemptEnd::Starting) {
        return None;
    }
    if let Some(i) = round.iter().position(|a| a.end == AttemptEnd::Answered) {
        return Some(format!(
            "attempt {} of the round was answered, {:?} after it began",
            i + 1,
            round[i].waited
        ));
    }
    let wanted = settings.probe_retries as usize + 1;
    if round.len() < wanted {
        return Some(format!(
            "the round made {} attempt(s) of the {wanted} configured ({} retries)",
            round.len(),
            settings.probe_retries
        ));
    }
    if let Some(i) = round
        .iter()
        .position(|a| a.end == AttemptEnd::TimedOut && a.waited < settings.probe_timeout)
    {
        return Some(format!(
            "attempt {} gave up for want of an answer after {:?}, before the probe timeout of {:?}",
            i + 1,
            round[i].waited,
            settings.probe_timeout
        ));
    }
    let hasty = round
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, a)| a.gap < settings.retry_gap);
    hasty.map(|(i, a)| {
        format!(
            "attempt {} followed the previous one after {:?}, before the retry gap of {:?}",
            i + 1,
            a.gap,
            settings.retry_gap
        )
    })
}

fn violation(
    at_ms: u64,
    content: Content,
    primary: Dbid,
    mirror: Dbid,
    epoch: u64,
    round: &[ProbeAttempt],
    wrong: &str,
) -> Violation {
    let attempts: Vec<String> = round
        .iter()
        .map(|a| format!("{:?} after {:?} (gap {:?})", a.end, a.waited, a.gap))
        .collect();
    Violation {
        checker: NAME,
        message: format!(
            "content {content}: the prober failed primary dbid {primary} over to dbid {mirror} although {wrong}: a primary is failed over only after a full round of unanswered probes"
        ),
        first_event: Event {
            at_ms,
            client: 0,
            txn: 0,
            kind: "failover".into(),
            detail: format!("epoch {epoch}; round: {}", attempts.join(", ")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings() -> ProbeSettings {
        ProbeSettings {
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(1),
            probe_retries: 2,
            retry_gap: Duration::from_millis(200),
            starting_probes_max: 5,
        }
    }

    fn attempt(gap_ms: u64, waited_ms: u64, end: AttemptEnd) -> ProbeAttempt {
        ProbeAttempt {
            gap: Duration::from_millis(gap_ms),
            waited: Duration::from_millis(waited_ms),
            end,
        }
    }

    fn full_round_of(end: AttemptEnd, waited_ms: u64) -> Vec<ProbeAttempt> {
        vec![
            attempt(0, waited_ms, end),
            attempt(200, waited_ms, end),
            attempt(200, waited_ms, end),
        ]
    }

    fn decided(round: Vec<ProbeAttempt>) -> Fact {
        Fact::FailoverDecided {
            content: 0,
            primary: 2,
            mirror: 3,
            epoch: 5,
            round,
        }
    }

    #[test]
    fn a_failover_after_a_full_round_of_timeouts_is_fine() {
        let checker = FailoverPolicy::new(settings());
        checker.observe(10, &decided(full_round_of(AttemptEnd::TimedOut, 1000)));
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn network_failures_and_refusals_count_as_unanswered_whenever_they_come() {
        let round = vec![
            attempt(0, 3, AttemptEnd::Network),
            attempt(250, 40, AttemptEnd::Refused),
            attempt(200, 1000, AttemptEnd::TimedOut),
        ];
        assert_eq!(judge(&settings(), &round), None);
    }

    #[test]
    fn a_failover_after_one_lost_probe_is_a_violation() {
        let checker = FailoverPolicy::new(settings());
        checker.observe(10, &decided(vec![attempt(0, 1000, AttemptEnd::TimedOut)]));
        let found = checker.violations();
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.contains("1 attempt(s) of the 3"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn a_failover_in_a_round_the_primary_answered_is_a_violation() {
        let round = vec![
            attempt(0, 1000, AttemptEnd::TimedOut),
            attempt(200, 900, AttemptEnd::Answered),
            attempt(200, 1000, AttemptEnd::TimedOut),
        ];
        assert!(judge(&settings(), &round).unwrap().contains("attempt 2"));
    }

    #[test]
    fn giving_up_on_an_answer_before_the_timeout_is_a_violation() {
        let round = full_round_of(AttemptEnd::TimedOut, 999);
        assert!(judge(&settings(), &round)
            .unwrap()
            .contains("before the probe timeout"));
    }

    #[test]
    fn retrying_before_the_gap_is_a_violation() {
        let mut round = full_round_of(AttemptEnd::TimedOut, 1000);
        round[2].gap = Duration::from_millis(199);
        assert!(judge(&settings(), &round).unwrap().contains("retry gap"));
    }

    #[test]
    fn a_round_ending_with_the_primary_still_starting_is_not_judged() {
        let round = vec![attempt(0, 5, AttemptEnd::Starting)];
        assert_eq!(judge(&settings(), &round), None);
    }

    #[test]
    fn one_violation_is_kept_per_content() {
        let checker = FailoverPolicy::new(settings());
        let lost = || decided(vec![attempt(0, 1000, AttemptEnd::TimedOut)]);
        checker.observe(10, &lost());
        checker.observe(20, &lost());
        assert_eq!(checker.violations().len(), 1);
    }
}
