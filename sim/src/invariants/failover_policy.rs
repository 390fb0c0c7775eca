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
//! A round whose last attempt was answered "starting" follows the prober's rule for a
//! restarting primary instead, judged from every round the prober reports
//! ([`Fact::ProbeRound`], the transport's word again): such a primary is left alone while its
//! replay position moved since its previous "starting" answer in a row (the first counts as
//! movement) and it has answered "starting" at most `starting_probes_max` rounds in a row; a
//! failover decided while both held is a violation. Once its replay stops moving, or it keeps
//! answering "starting" for longer, it counts as failed: it restarts but never comes back.
//!
//! Exemptions, each a rule of the real prober, not a leniency: an attempt the instance answered by refusing the probe (its disk check failed, or its fence
//! refused the probe's epoch) counts as unanswered, as does one the network failed early (a
//! refused connection, a reset): the real prober counts both as failures. Correct code never
//! breaks the rule, whatever the faults: it decides a failover only after a full round of
//! failures, and measures each timeout on the simulated clock.
//!
//! Judging changes nothing: no facts, no log lines, no awaits, no randomness.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use cluster::coordinator::prober::ProbeSettings;
use cluster::model::catalog::{Content, Dbid};
use cluster::model::data::Lsn;
use cluster::model::observe::{AttemptEnd, Fact, ProbeAttempt};

use super::Violation;
use crate::workload::history::Event;

pub const NAME: &str = "failover-policy";

/// The checker: judges each failover decision against the configured probe settings.
pub struct FailoverPolicy {
    settings: ProbeSettings,
    /// The contents found at fault so far, and each violation (the first per content).
    found: Mutex<(BTreeSet<Content>, Vec<Violation>)>,
    /// Each primary's "starting" answers in a row, as the reported rounds show them.
    starting: Mutex<BTreeMap<(Content, Dbid), Streak>>,
}

/// A primary's "starting" answers in a row, and whether the last one left it restarting.
#[derive(Clone, Copy, Debug, Default)]
struct Streak {
    answers: u32,
    replay_lsn: Option<Lsn>,
    /// The last answer moved the replay on, within `starting_probes_max` answers in a row.
    restarting: bool,
}

impl FailoverPolicy {
    /// A checker for a prober configured with `settings`.
    pub fn new(settings: ProbeSettings) -> FailoverPolicy {
        FailoverPolicy {
            settings,
            found: Mutex::default(),
            starting: Mutex::default(),
        }
    }

    /// Follows a primary's "starting" answers round by round.
    fn probed(&self, content: Content, primary: Dbid, round: &[ProbeAttempt]) {
        let mut starting = self.starting.lock().unwrap();
        let streak = starting.entry((content, primary)).or_default();
        match round.last().map(|a| a.end) {
            Some(AttemptEnd::Starting { replay_lsn }) => {
                let moved = streak.replay_lsn.is_none_or(|before| replay_lsn > before);
                streak.answers += 1;
                streak.replay_lsn = Some(replay_lsn);
                streak.restarting = moved && streak.answers <= self.settings.starting_probes_max;
            }
            _ => *streak = Streak::default(),
        }
    }

    /// Why failing `primary` over on a round that ended "starting" breaks the restart rule.
    fn restart_rule_broken(&self, content: Content, primary: Dbid) -> Option<String> {
        let starting = self.starting.lock().unwrap();
        let streak = starting
            .get(&(content, primary))
            .copied()
            .unwrap_or_default();
        streak.restarting.then(|| {
            format!(
                "it answered \"starting\" with its replay at {} ({} such answer(s) in a row, of \
                 at most {}), moved on since the answer before: a restarting primary is left \
                 alone while its replay advances",
                streak.replay_lsn.unwrap_or_default(),
                streak.answers,
                self.settings.starting_probes_max
            )
        })
    }

    /// Judges `fact`, reported at `at_ms`.
    pub fn observe(&self, at_ms: u64, fact: &Fact) {
        if let Fact::ProbeRound {
            content,
            primary,
            round,
        } = fact
        {
            return self.probed(*content, *primary, round);
        }
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
        let ended_starting = matches!(
            round.last().map(|a| a.end),
            Some(AttemptEnd::Starting { .. })
        );
        let wrong = if ended_starting {
            self.restart_rule_broken(*content, *primary)
        } else {
            judge(&self.settings, round)
        };
        let Some(wrong) = wrong else {
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
    if round
        .last()
        .is_some_and(|a| matches!(a.end, AttemptEnd::Starting { .. }))
    {
        // Judged by the restart rule instead (see the module doc).
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

    fn starting(replay_lsn: Lsn) -> Vec<ProbeAttempt> {
        vec![attempt(0, 5, AttemptEnd::Starting { replay_lsn })]
    }

    fn probed(round: Vec<ProbeAttempt>) -> Fact {
        Fact::ProbeRound {
            content: 0,
            primary: 2,
            round,
        }
    }

    #[test]
    fn a_round_ending_with_the_primary_still_starting_is_left_to_the_restart_rule() {
        assert_eq!(judge(&settings(), &starting(100)), None);
    }

    #[test]
    fn failing_over_a_primary_at_its_first_starting_answer_is_a_violation() {
        let checker = FailoverPolicy::new(settings());
        checker.observe(10, &probed(starting(100)));
        checker.observe(11, &decided(starting(100)));
        let found = checker.violations();
        assert_eq!(found.len(), 1);
        assert!(
            found[0].message.contains("1 such answer"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn failing_over_a_primary_whose_replay_stopped_moving_is_fine() {
        let checker = FailoverPolicy::new(settings());
        checker.observe(10, &probed(starting(100)));
        checker.observe(20, &probed(starting(100)));
        checker.observe(21, &decided(starting(100)));
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn failing_over_a_primary_starting_for_too_many_rounds_is_fine() {
        let checker = FailoverPolicy::new(settings());
        for (i, lsn) in (1..=6).map(|i| (i, i * 100)) {
            checker.observe(i * 10, &probed(starting(lsn)));
        }
        checker.observe(70, &decided(starting(600)));
        assert!(checker.violations().is_empty());
    }

    #[test]
    fn an_answered_round_starts_the_count_of_starting_answers_again() {
        let checker = FailoverPolicy::new(settings());
        checker.observe(10, &probed(starting(100)));
        checker.observe(20, &probed(starting(100)));
        checker.observe(30, &probed(vec![attempt(0, 5, AttemptEnd::Answered)]));
        checker.observe(40, &probed(starting(50)));
        checker.observe(41, &decided(starting(50)));
        assert_eq!(checker.violations().len(), 1);
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
