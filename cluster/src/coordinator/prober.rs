//! The prober's driver: every `probe_interval` it probes every content's acting primary at
//! once (with `probe_timeout` per attempt and up to `probe_retries` retries), feeds each
//! outcome to the pure rules ([`crate::protocol::fts::decide`]), and carries the decisions out,
//! each content on its own, recording catalog changes durably before sending anything that acts
//! on them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn, Instrument};

use super::CatalogStore;
use crate::io::net::{Connection, NetError};
use crate::io::points::FaultPoint;
use crate::io::runtime::{self, Instant};
use crate::model::bugs::PlantedBugs;
use crate::model::catalog::{Pair, RowChange, SegmentConfig};
use crate::model::observe::{AttemptEnd, Fact, ProbeAttempt};
use crate::protocol::fts::{decide_with, restart_outcome_with, Decision, ProbeOutcome, Restart};
use crate::wire::ProbeReply;
use crate::wire::{SegmentRequest, SegmentResponse};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSettings {
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub probe_retries: u32,
    /// Pause between two attempts on one primary.
    pub retry_gap: Duration,
    /// Consecutive "starting" answers tolerated before a primary counts as unreachable.
    pub starting_probes_max: u32,
}

impl Default for ProbeSettings {
    /// The real system's defaults: 60 s interval, 20 s timeout, 5 retries.
    fn default() -> ProbeSettings {
        ProbeSettings {
            probe_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(20),
            probe_retries: 5,
            retry_gap: Duration::from_secs(1),
            starting_probes_max: 10,
        }
    }
}

pub struct Prober {
    settings: ProbeSettings,
    store: CatalogStore,
    bugs: PlantedBugs,
    /// "Starting" answers in a row per dbid (while some).
    starting: std::collections::BTreeMap<u16, Restart>,
}

impl Prober {
    pub fn new(settings: ProbeSettings, store: CatalogStore, bugs: PlantedBugs) -> Prober {
        Prober {
            settings,
            store,
            bugs,
            starting: Default::default(),
        }
    }

    pub async fn run(mut self) {
        loop {
            if self.store.deposed().is_some() {
                // An activated standby replaced this coordinator: it decides nothing more.
                return;
            }
            let began = Instant::now();
            self.probe_all().await;
            let elapsed = Instant::now().saturating_duration_since(began);
            runtime::sleep(self.settings.probe_interval.saturating_sub(elapsed)).await;
        }
    }

    /// One probe cycle over every content. As the real prober does, every content is handled
    /// at once: its primary probed, probed again while the decision says so (a mirror within
    /// its grace period), and the decision carried out, so one content's retries or an
    /// unreachable instance never hold back another's failover. The cycle ends when every
    /// content is done. Catalog changes are serialized by the store.
    pub async fn probe_all(&mut self) {
        let pairs: Vec<Pair> = self.store.snapshot().pairs();
        let tasks: Vec<_> = pairs
            .into_iter()
            .map(|pair| {
                let dbid = pair.primary.dbid;
                let content = ContentProber {
                    settings: self.settings.clone(),
                    store: self.store.clone(),
                    bugs: self.bugs,
                    starting: self.starting.get(&dbid).copied().unwrap_or_default(),
                    recoveries: 0,
                };
                (dbid, runtime::spawn(content.run(pair).in_current_span()))
            })
            .collect();
        for (dbid, task) in tasks {
            match task.await {
                Ok(restart) if restart.answers == 0 => {
                    self.starting.remove(&dbid);
                }
                Ok(restart) => {
                    self.starting.insert(dbid, restart);
                }
                Err(_) => {}
            }
        }
    }
}

/// The prober's work on one content in one cycle.
struct ContentProber {
    settings: ProbeSettings,
    store: CatalogStore,
    bugs: PlantedBugs,
    /// The "starting" answers in a row of the content's acting primary.
    starting: Restart,
    /// How often recoverseg had begun or ended a recovery of the content when this round
    /// began ([`CatalogStore::recoveries`]): a decision on an older picture is not recorded.
    recoveries: u64,
}

impl ContentProber {
    /// Probes, decides and acts; returns what it knows of the primary's "starting" answers.
    ///
    /// Mirrored contents go through the decision table; an unmirrored content's primary is only
    /// checked for life, because the catalog never marks an acting primary down: while one is
    /// unreachable the store says the system is not operational (without mirroring, one failed
    /// segment stops the whole system).
    async fn run(mut self, pair: Pair) -> Restart {
        self.recoveries = self.store.recoveries(pair.content);
        let (answer, round) =
            probe_with_retries(&self.settings, &pair.primary, &self.store, self.bugs).await;
        if let Answer::Deposed = answer {
            return self.starting;
        }
        self.probed(&pair, &round);
        if pair.mirror.is_none() {
            let lost = matches!(answer, Answer::Unreachable);
            if self.store.set_unmirrored_lost(pair.content, lost) {
                if lost {
                    warn!(content = pair.content, dbid = pair.primary.dbid, "segment failed and has no mirror: the system is not operational until it is recovered");
                } else {
                    info!(
                        content = pair.content,
                        dbid = pair.primary.dbid,
                        "unmirrored segment is back: the system is operational"
                    );
                }
            }
            return self.starting;
        }
        let outcome = self.outcome(answer);
        self.act(&pair, outcome, round).await;
        self.starting
    }

    /// Reports the decision to fail `pair` over to `mirror` on the probe round `round`.
    fn failover_decided(&self, pair: &Pair, mirror: &SegmentConfig, round: Vec<ProbeAttempt>) {
        self.store.report(Fact::FailoverDecided {
            content: pair.content,
            primary: pair.primary.dbid,
            mirror: mirror.dbid,
            epoch: self.store.epoch(),
            round,
        });
    }

    /// Reports a probe round as the transport ended its attempts (for the checkers).
    fn probed(&self, pair: &Pair, round: &[ProbeAttempt]) {
        self.store.report(Fact::ProbeRound {
            content: pair.content,
            primary: pair.primary.dbid,
            round: round.to_vec(),
        });
    }

    fn outcome(&mut self, answer: Answer) -> ProbeOutcome {
        match answer {
            Answer::Reply(reply) => {
                self.starting = Restart::default();
                ProbeOutcome::Answered(reply)
            }
            Answer::Starting { replay_lsn } => {
                let (outcome, now) = restart_outcome_with(
                    self.starting,
                    replay_lsn,
                    self.settings.starting_probes_max,
                    self.bugs,
                );
                self.starting = now;
                outcome
            }
            Answer::Unreachable => {
                self.starting = Restart::default();
                ProbeOutcome::Unreachable
            }
            Answer::Deposed => unreachable!("a deposed coordinator stops before deciding"),
        }
    }

    /// Carries out the decision on `outcome`, the result of the probe round `round`.
    async fn act(&mut self, pair: &Pair, mut outcome: ProbeOutcome, mut round: Vec<ProbeAttempt>) {
        let mut decision = decide_with(pair, outcome, self.bugs);
        let mut retries = 0;
        while decision == Decision::ProbeAgain && retries < self.settings.probe_retries {
            retries += 1;
            runtime::sleep(self.settings.retry_gap).await;
            let answer;
            (answer, round) =
                probe_with_retries(&self.settings, &pair.primary, &self.store, self.bugs).await;
            if let Answer::Deposed = answer {
                return;
            }
            self.probed(pair, &round);
            outcome = self.outcome(answer);
            decision = decide_with(pair, outcome, self.bugs);
        }
        let content = pair.content;
        debug!(
            content,
            primary = pair.primary.dbid,
            ?outcome,
            ?decision,
            "decided"
        );
        match decision {
            Decision::Nothing | Decision::ProbeAgain => {}
            Decision::Record(changes) => {
                self.record(pair, &changes).await;
            }
            Decision::MarkMirrorDown(changes) => {
                if changes.is_empty() || self.record(pair, &changes).await {
                    if announce_lost(&changes).await {
                        return;
                    }
                    let dbid = pair.primary.dbid;
                    self.send(&pair.primary, |epoch| SegmentRequest::SyncrepOff {
                        dbid,
                        epoch,
                    })
                    .await;
                }
            }
            Decision::Promote(changes) if self.bugs.promote_before_catalog_write => {
                // Planted bug: announce first, record after.
                let mirror = pair.mirror.as_ref().expect("promotion needs a mirror");
                self.failover_decided(pair, mirror, round);
                let dbid = mirror.dbid;
                self.send(mirror, |epoch| SegmentRequest::Promote { dbid, epoch })
                    .await;
                runtime::fault_point(FaultPoint::CatalogWrittenBeforeAnnounce).await;
                self.record(pair, &changes).await;
            }
            Decision::Promote(changes) => {
                let mirror = pair.mirror.as_ref().expect("promotion needs a mirror");
                self.failover_decided(pair, mirror, round);
                // The role flip is durable in the catalog before the mirror hears of it: if the
                // coordinator dies in between, the next prober re-sends PROMOTE; it never finds
                // a promoted mirror the catalog does not know of.
                if self.record(pair, &changes).await
                    && !announce_lost(&changes).await
                    && !self
                        .send(mirror, |epoch| SegmentRequest::Promote {
                            dbid: mirror.dbid,
                            epoch,
                        })
                        .await
                {
                    warn!(
                        content,
                        dbid = mirror.dbid,
                        "FTS double fault detected: promote request failed"
                    );
                }
            }
            Decision::ResendPromote => {
                info!(
                    content,
                    dbid = pair.primary.dbid,
                    "acting primary answers as a mirror: resending promote"
                );
                let dbid = pair.primary.dbid;
                self.send(&pair.primary, |epoch| SegmentRequest::Promote {
                    dbid,
                    epoch,
                })
                .await;
            }
            Decision::DoubleFault => {
                warn!(content, "FTS double fault detected: primary unreachable and mirror not in sync; content is down");
            }
        }
    }

    /// Records a decision on `pair`; false if the catalog refused it (or has changed since).
    async fn record(&self, pair: &Pair, changes: &[RowChange]) -> bool {
        let content = pair.content;
        match self
            .store
            .record_decision(pair, changes, self.recoveries, self.bugs)
            .await
        {
            Ok(catalog) => {
                for change in changes {
                    let desc = change.history_desc(content);
                    info!(content, epoch = catalog.epoch, "{desc}");
                    let fts = crate::model::observe::FtsChange {
                        content,
                        role: change.role,
                        status: change.status,
                        mode: change.mode,
                    };
                    self.store
                        .report_change(catalog.epoch, change.dbid, desc, Some(fts));
                }
                true
            }
            Err(e) => {
                warn!(content, error = %e, "catalog update failed");
                false
            }
        }
    }

    /// Sends a request (built for the configuration epoch current at each attempt) until the
    /// target answers OK, with the probe's retries; false if it never does.
    async fn send(&self, target: &SegmentConfig, request: impl Fn(u64) -> SegmentRequest) -> bool {
        for attempt in 0..=self.settings.probe_retries {
            if attempt > 0 {
                runtime::sleep(self.settings.retry_gap).await;
            }
            let req = request(self.store.epoch());
            match call(&self.settings, target, req).await.ok() {
                Some(SegmentResponse::Ok) => return true,
                Some(SegmentResponse::Fenced { followed, .. })
                    if deposed_by(&self.store, self.bugs, target, followed).await =>
                {
                    return false
                }
                _ => {}
            }
        }
        false
    }
}

#[derive(Clone, Copy, Debug)]
enum Answer {
    Reply(ProbeReply),
    Starting {
        replay_lsn: crate::wal::Lsn,
    },
    Unreachable,
    /// The instance follows a later coordinator generation: this coordinator was deposed.
    Deposed,
}

/// The fault point between a decision's catalog write and the message announcing it; true if
/// the message is lost there (the next probe finds the instance unaware and acts again).
async fn announce_lost(changes: &[RowChange]) -> bool {
    !changes.is_empty()
        && runtime::fault_point(FaultPoint::CatalogWrittenBeforeAnnounce)
            .await
            .dropped()
}

/// Whether an instance's refusal (it follows epoch `followed`) means an activated standby
/// deposed this coordinator; if so the store records it, and the coordinator stops serving.
/// A refusal within this coordinator's own generation is a late answer to an older change,
/// and deposes nothing.
async fn deposed_by(
    store: &CatalogStore,
    bugs: PlantedBugs,
    target: &SegmentConfig,
    followed: u64,
) -> bool {
    if bugs.coordinator_fence_off {
        return false;
    }
    let at = format!("dbid {} at {}", target.dbid, target.endpoint());
    store.depose(followed, &at).await
}

/// Up to `probe_retries + 1` attempts, each bounded by `probe_timeout`, `retry_gap` apart, each
/// with the configuration epoch current when it is sent: other contents' changes move the epoch
/// meanwhile, and an instance refuses a probe older than an epoch it has seen. Returns the
/// answer and the round's attempts, each as the transport ended it (for the checkers).
async fn probe_with_retries(
    settings: &ProbeSettings,
    primary: &SegmentConfig,
    store: &CatalogStore,
    bugs: PlantedBugs,
) -> (Answer, Vec<ProbeAttempt>) {
    let unbounded;
    let settings = if bugs.probe_without_timeout {
        unbounded = ProbeSettings {
            probe_timeout: Duration::from_secs(24 * 3600),
            ..settings.clone()
        };
        &unbounded
    } else {
        settings
    };
    let mut round = Vec::new();
    let mut last_end = Instant::now();
    for attempt in 0..=settings.probe_retries {
        if attempt > 0 {
            if bugs.failover_on_one_lost_probe {
                break;
            }
            runtime::sleep(settings.retry_gap).await;
        }
        let began = Instant::now();
        let result = call(
            settings,
            primary,
            SegmentRequest::Probe {
                dbid: primary.dbid,
                content: primary.content,
                epoch: store.epoch(),
            },
        )
        .await;
        let ended = Instant::now();
        round.push(ProbeAttempt {
            gap: if attempt == 0 {
                Duration::ZERO
            } else {
                began.saturating_duration_since(last_end)
            },
            waited: ended.saturating_duration_since(began),
            end: attempt_end(&result),
        });
        last_end = ended;
        match result {
            Ok(SegmentResponse::Probe(reply)) => return (Answer::Reply(reply), round),
            Ok(SegmentResponse::Starting { replay_lsn }) => {
                return (Answer::Starting { replay_lsn }, round)
            }
            Ok(SegmentResponse::Fenced { followed, .. })
                if deposed_by(store, bugs, primary, followed).await =>
            {
                return (Answer::Deposed, round)
            }
            other => debug!(dbid = primary.dbid, attempt, answer = ?other.ok(), "probe failed"),
        }
    }
    (Answer::Unreachable, round)
}

/// How the transport ended one probe attempt.
fn attempt_end(result: &Result<SegmentResponse, NetError>) -> AttemptEnd {
    match result {
        Ok(SegmentResponse::Probe(_)) => AttemptEnd::Answered,
        Ok(SegmentResponse::Starting { replay_lsn }) => AttemptEnd::Starting {
            replay_lsn: *replay_lsn,
        },
        Ok(_) => AttemptEnd::Refused,
        Err(NetError::Timeout { .. }) => AttemptEnd::TimedOut,
        Err(_) => AttemptEnd::Network,
    }
}

async fn call(
    settings: &ProbeSettings,
    target: &SegmentConfig,
    req: SegmentRequest,
) -> Result<SegmentResponse, NetError> {
    let began = Instant::now();
    let mut conn = Connection::connect(&target.endpoint(), settings.probe_timeout).await?;
    let left = settings
        .probe_timeout
        .saturating_sub(Instant::now().saturating_duration_since(began));
    conn.call(&req, left).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout() -> NetError {
        NetError::Timeout {
            peer: "sdw1:6000".into(),
            after: Duration::from_secs(1),
        }
    }

    #[test]
    fn each_probe_attempt_is_reported_as_its_transport_ended_it() {
        let refused = SegmentResponse::Fenced {
            dbid: 2,
            epoch: 3,
            followed: 4,
        };
        let closed = NetError::Closed {
            peer: "sdw1:6000".into(),
        };
        assert_eq!(
            attempt_end(&Ok(SegmentResponse::Probe(ProbeReply::default()))),
            AttemptEnd::Answered
        );
        assert_eq!(attempt_end(&Ok(refused)), AttemptEnd::Refused);
        assert_eq!(attempt_end(&Err(timeout())), AttemptEnd::TimedOut);
        assert_eq!(attempt_end(&Err(closed)), AttemptEnd::Network);
    }
}
