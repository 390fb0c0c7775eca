//! Control requests delivered late and twice: the `late-delivery` fault. While a run goes, the
//! network keeps a copy of every control request the coordinator sends (a probe, SYNCREP_OFF,
//! PROMOTE, a rejoin, COMMIT/ABORT PREPARED; `cluster::io::runtime::replays`); the fault picks
//! one and delivers it again, twice, from the process that sent it, each copy on an
//! authenticated connection of its own (the sender's credentials: a legitimate peer, only
//! late), as a sender's delayed retry (or a proxy re-sending on a fresh connection) would: a
//! TCP connection never hands a frame over twice, and none outlives the process it reached,
//! so a copy meets whichever instance listens at the address now, a restarted one included.
//! Half the time it picks one stamped with the epoch just before the newest it saw sent (the
//! configuration has moved on by one step: a fence must refuse it), half the time one of the
//! newest epoch (a duplicate of a current request: it must be harmless).

use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use tracing::info;

use cluster::io::net::Connection;
use cluster::io::runtime::replays::{self, Captured};
use cluster::wire::{SegmentRequest, SegmentResponse};

use crate::world::{World, COORDINATOR_PORT};

/// Classes of kept requests (each keeps its own most recent ones); probes, the most frequent,
/// are picked only when nothing else was kept.
const PROBE: u8 = 0;

/// The class and epoch of a control request; `None` for anything else.
fn control(req: &SegmentRequest) -> Option<(u8, u64)> {
    Some(match req {
        SegmentRequest::Probe { epoch, .. } => (PROBE, *epoch),
        SegmentRequest::SyncrepOff { epoch, .. } => (1, *epoch),
        SegmentRequest::Promote { epoch, .. } => (2, *epoch),
        SegmentRequest::Rejoin { epoch, .. } => (3, *epoch),
        SegmentRequest::CommitPrepared { epoch, .. } => (4, *epoch),
        SegmentRequest::AbortPrepared { epoch, .. } => (5, *epoch),
        _ => return None,
    })
}

fn decode(message: &[u8]) -> Option<SegmentRequest> {
    cluster::io::codec::decode::<SegmentRequest>(message).ok()
}

/// Starts keeping control requests for this run (or nothing, when the fault is off): requests
/// to segment instances only (a coordinator's port speaks another protocol).
pub fn keep_control_requests(on: bool) {
    let coordinator_port = format!(":{COORDINATOR_PORT}");
    let filter: Option<replays::Filter> = if on {
        Some(Rc::new(move |to: &str, message: &[u8]| {
            if to.ends_with(&coordinator_port) {
                return None;
            }
            decode(message).and_then(|r| control(&r)).map(|(c, _)| c)
        }))
    } else {
        None
    };
    replays::reset(filter);
}

/// The request `pick` chooses among `kept` (oldest first): one epoch stale or of the newest
/// epoch, by `pick`'s lowest bit; then, by its next bit, a configuration request (SYNCREP_OFF,
/// PROMOTE, a rejoin) or a transaction's COMMIT/ABORT PREPARED first, the other kind if there
/// is none of that epoch, and a probe only when nothing else is.
pub fn choose(kept: &[Captured], pick: u64) -> Option<&Captured> {
    let decoded: Vec<(&Captured, u8, u64)> = kept
        .iter()
        .filter_map(|c| {
            decode(&c.message)
                .and_then(|r| control(&r))
                .map(|(k, e)| (c, k, e))
        })
        .collect();
    let newest = decoded.iter().map(|(_, _, e)| *e).max()?;
    let one_stale = decoded
        .iter()
        .map(|(_, _, e)| *e)
        .filter(|e| *e < newest)
        .max();
    let wanted = match (pick & 1, one_stale) {
        (0, Some(stale)) => stale,
        _ => newest,
    };
    let configuration = |k: u8| (1..=3).contains(&k);
    let transaction = |k: u8| k > 3;
    let tiers: [&dyn Fn(u8) -> bool; 3] = if pick & 2 == 0 {
        [&configuration, &transaction, &|k| k == PROBE]
    } else {
        [&transaction, &configuration, &|k| k == PROBE]
    };
    let n = (pick >> 2) as usize;
    tiers.iter().find_map(|in_tier| {
        let of_tier: Vec<&Captured> = decoded
            .iter()
            .filter(|(_, k, e)| *e == wanted && in_tier(*k))
            .map(|(c, _, _)| *c)
            .collect();
        (!of_tier.is_empty()).then(|| of_tier[n % of_tier.len()])
    })
}

impl World {
    /// Delivers a kept control request again, twice, from the host that sent it (if that host
    /// is up); nothing if none was kept.
    pub fn deliver_late(&mut self, pick: u64) {
        let kept = replays::captured();
        let Some(chosen) = choose(&kept, pick).cloned() else {
            info!("late delivery: no control request kept yet");
            return;
        };
        let Some(node) = chosen.from.and_then(|ip| self.node_at(ip)) else {
            info!(to = chosen.to, "late delivery: its sender is down");
            return;
        };
        let Some(request) = decode(&chosen.message) else {
            return;
        };
        info!(
            to = chosen.to,
            ?request,
            "late delivery of a control request, twice"
        );
        node.spawn(async move {
            for _ in 0..2 {
                deliver(&chosen.to, &request).await;
                madsim::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    /// The node of the process at `ip`, if its host is up.
    fn node_at(&self, ip: IpAddr) -> Option<madsim::runtime::NodeHandle> {
        self.hosts
            .values()
            .filter(|h| h.up)
            .flat_map(|h| &h.processes)
            .find(|p| p.ip == ip && p.up)
            .map(|p| p.node.clone())
    }
}

/// Sends `request` on a new authenticated connection to `to` (with the credentials of the
/// node it runs on, the original sender's) and reads what comes back, if anything, for a while;
/// the answer goes nowhere (its sender stopped waiting long ago). Not a `call`: a copy is not
/// kept again.
async fn deliver(to: &str, request: &SegmentRequest) {
    let Ok(mut conn) = Connection::connect(to, Duration::from_secs(1)).await else {
        return;
    };
    if conn.send(request).await.is_err() {
        return;
    }
    if let Ok(answer) =
        madsim::time::timeout(Duration::from_secs(5), conn.recv::<SegmentResponse>()).await
    {
        info!(to, ?answer, "late delivery answered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(reqs: &[SegmentRequest]) -> Vec<Captured> {
        reqs.iter()
            .enumerate()
            .map(|(i, r)| Captured {
                from: None,
                to: "10.0.0.1:6000".into(),
                message: cluster::io::codec::encode(r),
                seq: i as u64,
            })
            .collect()
    }

    #[test]
    fn a_late_request_is_one_epoch_stale_or_a_duplicate_of_the_newest_and_rarely_a_probe() {
        let reqs = [
            SegmentRequest::SyncrepOff { dbid: 2, epoch: 3 },
            SegmentRequest::Promote { dbid: 3, epoch: 4 },
            SegmentRequest::Probe {
                dbid: 2,
                content: 0,
                epoch: 5,
            },
            SegmentRequest::SyncrepOff { dbid: 4, epoch: 5 },
        ];
        let kept = kept(&reqs);
        let epoch_of = |c: &Captured| control(&decode(&c.message).unwrap()).unwrap();
        assert_eq!(epoch_of(choose(&kept, 0).unwrap()), (2, 4), "one stale");
        assert_eq!(
            epoch_of(choose(&kept, 1).unwrap()),
            (1, 5),
            "newest, not the probe"
        );
        assert!(choose(&[], 0).is_none());
    }
}
