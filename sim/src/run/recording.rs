//! What one run recorded, handed to `reports` for the state timeline and the Perfetto trace:
//! the initial catalog, the host crashes and restarts the nemesis carried out, the prober's
//! catalog changes and finished promotions from the log, the operator's actions, and the
//! clients' transactions.

use cluster::model::catalog::SegmentConfig;
use reports::timeline::{CatalogChange, Event, Instance, Recording};

use crate::nemesis::{Fault, ScheduledFault};
use crate::observer::ClusterEvent;
use crate::operator::OperatorAction;
use crate::run::failover::HostEvent;
use crate::workload::history::{Outcome, TxnRecord};

/// (Kept whole: one pass per source of events, in the order the timeline layers them.)
#[allow(clippy::too_many_arguments)]
pub fn of_run(
    seed: u64,
    segments: &[SegmentConfig],
    faults: &[ScheduledFault],
    workload_started_ms: u64,
    host_events: &[HostEvent],
    cluster_events: &[ClusterEvent],
    operator: &[OperatorAction],
    txns: &[TxnRecord],
    end_ms: u64,
) -> Recording {
    let instances = segments
        .iter()
        .map(|s| Instance {
            dbid: s.dbid,
            content: s.content,
            host: s.hostname.clone(),
            role: s.role.code(),
            status: s.status.code(),
            mode: s.mode.code(),
        })
        .collect();
    let mut events: Vec<Event> = Vec::new();
    for h in host_events {
        events.push(if h.crash {
            Event::HostCrash {
                at_ms: h.at_ms,
                host: h.host.clone(),
            }
        } else {
            Event::HostRestart {
                at_ms: h.at_ms,
                host: h.host.clone(),
            }
        });
    }
    // Host crashes and restarts come from `host_events` (their exact times); the other faults
    // from the schedule, whose times count from the workload's start.
    let on_host = |host: &str| -> Vec<u16> {
        segments
            .iter()
            .filter(|s| s.hostname == host)
            .map(|s| s.dbid)
            .collect()
    };
    for f in faults {
        let at_ms = workload_started_ms + f.at_ms;
        let of_content = |content: i16| -> Vec<u16> {
            segments
                .iter()
                .filter(|s| s.content == content)
                .map(|s| s.dbid)
                .collect()
        };
        match &f.fault {
            Fault::HostCrash { .. }
            | Fault::TornWrite { .. }
            | Fault::TornGarbage { .. }
            | Fault::HostRestart { .. } => {}
            Fault::InstanceKill { dbid } | Fault::InstancePause { dbid } => {
                events.push(Event::InstanceDown { at_ms, dbid: *dbid })
            }
            Fault::InstanceRestart { dbid } | Fault::InstanceResume { dbid } => {
                events.push(Event::InstanceUp { at_ms, dbid: *dbid })
            }
            Fault::DoubleFault { content } => events.extend(
                of_content(*content)
                    .into_iter()
                    .map(|dbid| Event::InstanceDown { at_ms, dbid }),
            ),
            Fault::DoubleFaultHeal { content } => events.extend(
                of_content(*content)
                    .into_iter()
                    .map(|dbid| Event::InstanceUp { at_ms, dbid }),
            ),
            other => {
                let json = serde_json::to_value(other).unwrap_or_default();
                events.push(Event::Fault {
                    at_ms,
                    kind: json["kind"].as_str().unwrap_or("fault").to_string(),
                    dbids: json["host"].as_str().map(on_host).unwrap_or_default(),
                });
            }
        }
    }
    events.extend(cluster_events.iter().map(timeline_event));
    events.extend(operator.iter().map(|a| Event::Operator {
        at_ms: a.at_ms,
        command: a.command.clone(),
        ok: a.ok,
        outcome: a.outcome.clone(),
    }));
    for t in txns {
        events.push(Event::Txn {
            at_ms: t.invoked_ms,
            end_ms: t.completed_ms.unwrap_or(end_ms),
            client: t.client,
            id: t.id,
            contents: t.contents(),
            outcome: match t.outcome {
                Some(Outcome::Ok) => "ok",
                Some(Outcome::Fail) => "fail",
                Some(Outcome::Unknown) | None => "unknown",
            }
            .into(),
        });
    }
    // Stable: events at the same millisecond keep the order they were recorded in.
    events.sort_by_key(Event::at_ms);
    Recording {
        seed,
        end_ms,
        instances,
        events,
    }
}

/// A milestone as the report's timeline reads it.
fn timeline_event(e: &ClusterEvent) -> Event {
    match *e {
        ClusterEvent::CatalogChange(c) => Event::CatalogChange(CatalogChange {
            at_ms: c.at_ms,
            content: c.content,
            dbid: c.dbid,
            role: c.role,
            status: c.status,
            mode: c.mode,
        }),
        ClusterEvent::Promoted {
            at_ms,
            content,
            dbid,
        } => Event::Promoted {
            at_ms,
            content,
            dbid,
        },
    }
}
