//! The prober's driver: every `probe_interval` it probes each mirrored content's acting primary
//! (with `probe_timeout` per attempt and up to `probe_retries` retries), feeds the outcome to
//! [`decide`], and carries the decision out, recording catalog changes durably before sending
//! anything that acts on them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use super::{decide_with, Decision, ProbeOutcome, ProbeReply};
use crate::bugs::PlantedBugs;
use crate::catalog::{Pair, RowChange, SegmentConfig};
use crate::coordinator::CatalogStore;
use crate::io::net::Connection;
use crate::io::runtime::{self, Instant};
use crate::proto::{SegmentRequest, SegmentResponse};

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
    /// Consecutive "starting" answers per dbid.
    starting: std::collections::BTreeMap<u16, u32>,
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
            let began = Instant::now();
            self.probe_all().await;
            let elapsed = Instant::now().saturating_duration_since(began);
            runtime::sleep(self.settings.probe_interval.saturating_sub(elapsed)).await;
        }
    }

    /// One probe cycle over every content. Mirrored contents go through the decision table; an
    /// unmirrored content's primary is only checked for life, because the catalog never marks
    /// an acting primary down: while one is unreachable the store says the system is not
    /// operational (without mirroring, one failed segment stops the whole system).
    pub async fn probe_all(&mut self) {
        let pairs: Vec<Pair> = self.store.snapshot().pairs();
        // Probe all primaries at once, as the real prober does; act on results in content order.
        let probes: Vec<_> = pairs
            .iter()
            .map(|pair| {
                let settings = self.settings.clone();
                let epoch = self.store.epoch();
                let primary = pair.primary.clone();
                let bugs = self.bugs;
                runtime::spawn(
                    async move { probe_with_retries(&settings, &primary, epoch, bugs).await },
                )
            })
            .collect();
        for (pair, probe) in pairs.into_iter().zip(probes) {
            let answer = probe.await.unwrap_or(Answer::Unreachable);
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
                continue;
            }
            let outcome = self.outcome(&pair.primary, answer);
            self.act(&pair, outcome).await;
        }
    }

    fn outcome(&mut self, primary: &SegmentConfig, answer: Answer) -> ProbeOutcome {
        match answer {
            Answer::Reply(reply) => {
                self.starting.remove(&primary.dbid);
                ProbeOutcome::Answered(reply)
            }
            Answer::Starting => {
                let n = self.starting.entry(primary.dbid).or_default();
                *n += 1;
                if *n > self.settings.starting_probes_max {
                    ProbeOutcome::Unreachable
                } else {
                    ProbeOutcome::Restarting
                }
            }
            Answer::Unreachable => {
                self.starting.remove(&primary.dbid);
                ProbeOutcome::Unreachable
            }
        }
    }

    async fn act(&mut self, pair: &Pair, outcome: ProbeOutcome) {
        let mut decision = decide_with(pair, outcome, self.bugs);
        let mut retries = 0;
        while decision == Decision::ProbeAgain && retries < self.settings.probe_retries {
            retries += 1;
            runtime::sleep(self.settings.retry_gap).await;
            let answer =
                probe_with_retries(&self.settings, &pair.primary, self.store.epoch(), self.bugs)
                    .await;
            let outcome = self.outcome(&pair.primary, answer);
            decision = decide_with(pair, outcome, self.bugs);
        }
        let content = pair.content;
        match decision {
            Decision::Nothing | Decision::ProbeAgain => {}
            Decision::Record(changes) => {
                self.record(content, &changes).await;
            }
            Decision::MarkMirrorDown(changes) => {
                if changes.is_empty() || self.record(content, &changes).await {
                    send(
                        &self.settings,
                        &pair.primary,
                        SegmentRequest::SyncrepOff {
                            dbid: pair.primary.dbid,
                            epoch: self.store.epoch(),
                        },
                    )
                    .await;
                }
            }
            Decision::Promote(changes) => {
                let mirror = pair.mirror.as_ref().expect("promotion needs a mirror");
                // The role flip is durable in the catalog before the mirror hears of it: if the
                // coordinator dies in between, the next prober re-sends PROMOTE; it never finds
                // a promoted mirror the catalog does not know of.
                if self.record(content, &changes).await
                    && !send(
                        &self.settings,
                        mirror,
                        SegmentRequest::Promote {
                            dbid: mirror.dbid,
                            epoch: self.store.epoch(),
                        },
                    )
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
                send(
                    &self.settings,
                    &pair.primary,
                    SegmentRequest::Promote {
                        dbid: pair.primary.dbid,
                        epoch: self.store.epoch(),
                    },
                )
                .await;
            }
            Decision::DoubleFault => {
                warn!(content, "FTS double fault detected: primary unreachable and mirror not in sync; content is down");
            }
        }
    }

    async fn record(&self, content: i16, changes: &[RowChange]) -> bool {
        match self.store.record_with(changes, self.bugs).await {
            Ok(catalog) => {
                for change in changes {
                    info!(
                        content,
                        epoch = catalog.epoch,
                        "{}",
                        change.history_desc(content)
                    );
                }
                true
            }
            Err(e) => {
                warn!(content, error = %e, "catalog update failed");
                false
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Answer {
    Reply(ProbeReply),
    Starting,
    Unreachable,
}

/// Up to `probe_retries + 1` attempts, each bounded by `probe_timeout`, `retry_gap` apart.
async fn probe_with_retries(
    settings: &ProbeSettings,
    primary: &SegmentConfig,
    epoch: u64,
    bugs: PlantedBugs,
) -> Answer {
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
    for attempt in 0..=settings.probe_retries {
        if attempt > 0 {
            runtime::sleep(settings.retry_gap).await;
        }
        match call(
            settings,
            primary,
            SegmentRequest::Probe {
                dbid: primary.dbid,
                content: primary.content,
                epoch,
            },
        )
        .await
        {
            Some(SegmentResponse::Probe(reply)) => return Answer::Reply(reply),
            Some(SegmentResponse::Starting { .. }) => return Answer::Starting,
            other => debug!(dbid = primary.dbid, attempt, answer = ?other, "probe failed"),
        }
    }
    Answer::Unreachable
}

async fn call(
    settings: &ProbeSettings,
    target: &SegmentConfig,
    req: SegmentRequest,
) -> Option<SegmentResponse> {
    let began = Instant::now();
    let mut conn = Connection::connect(&target.endpoint(), settings.probe_timeout)
        .await
        .ok()?;
    let left = settings
        .probe_timeout
        .saturating_sub(Instant::now().saturating_duration_since(began));
    conn.call(&req, left).await.ok()
}

async fn send(settings: &ProbeSettings, target: &SegmentConfig, req: SegmentRequest) -> bool {
    for attempt in 0..=settings.probe_retries {
        if attempt > 0 {
            runtime::sleep(settings.retry_gap).await;
        }
        if let Some(SegmentResponse::Ok) = call(settings, target, req.clone()).await {
            return true;
        }
    }
    false
}
