//! The coordinator's side of the administration verbs (`recoverseg`, `recoverseg -r`,
//! `move-mirrors`, `add-mirrors`, `state`): each [`AdminRequest`] is checked against the catalog,
//! carried out by talking to the instances, and recorded as one catalog change with a new epoch
//! and history rows. An `Err` is a refusal: nothing changed. The operator's side (the config
//! files, starting processes on hosts, the `state` report's text) is [`crate::admin`].

use std::time::Duration;

use tracing::{info, warn, Instrument};

use super::CatalogStore;
use crate::io::net::Connection;
use crate::io::runtime;
use crate::model::catalog::{Catalog, Dbid, Mode, Role, SegmentConfig, Status};
use crate::wire::{
    AdminReply, AdminRequest, Recovered, RejoinReport, Relocation, SegmentRequest, SegmentResponse,
    StateReport,
};

/// Timeouts the coordinator uses towards instances, and its planted bugs.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub call: Duration,
    pub bugs: crate::model::bugs::PlantedBugs,
}

async fn call(addr: &str, req: &SegmentRequest, t: Timeouts) -> Result<SegmentResponse, String> {
    let mut conn = Connection::connect(addr, t.connect)
        .await
        .map_err(|e| format!("cannot reach {addr}: {e}"))?;
    conn.call(req, t.call)
        .await
        .map_err(|e| format!("no answer from {addr}: {e}"))
}

/// Carries out one request on the coordinator. An `Err` is a refusal: nothing changed.
pub async fn handle(
    store: &CatalogStore,
    req: AdminRequest,
    t: Timeouts,
) -> Result<AdminReply, String> {
    match req {
        AdminRequest::Recover { full, only } => recover(store, full, only, t).await,
        AdminRequest::Rebalance => rebalance(store, t).await,
        AdminRequest::Relocate { moves, why } => relocate(store, moves, why).await,
        AdminRequest::AddMirrors { mirrors } => add_mirrors(store, mirrors).await,
        AdminRequest::State => state_report(store, t).await,
    }
}

fn require_mirrors(cat: &Catalog) -> Result<(), String> {
    if cat.pairs().iter().all(|p| p.mirror.is_none()) {
        return Err(
            "mirroring is not configured for this cluster; nothing to recover \
                    (add mirrors with add-mirrors)"
                .into(),
        );
    }
    Ok(())
}

/// Whether the acting primary of a content answers as a primary.
async fn primary_is_up(primary: &SegmentConfig, epoch: u64, t: Timeouts) -> bool {
    let req = SegmentRequest::Probe {
        dbid: primary.dbid,
        content: primary.content,
        epoch,
    };
    matches!(
        call(&primary.endpoint(), &req, t).await,
        Ok(SegmentResponse::Probe(reply)) if !reply.is_mirror
    )
}

async fn recover(
    store: &CatalogStore,
    full: bool,
    only: Option<Vec<Dbid>>,
    t: Timeouts,
) -> Result<AdminReply, String> {
    let cat = store.snapshot();
    require_mirrors(&cat)?;
    let targets: Vec<SegmentConfig> = match &only {
        Some(dbids) => {
            let mut rows = Vec::new();
            for dbid in dbids {
                let row = cat.segments.get(dbid).ok_or_else(|| {
                    format!("a segment to recover was not found in configuration: dbid {dbid}")
                })?;
                rows.push(row.clone());
            }
            rows
        }
        None => cat
            .segments
            .values()
            .filter(|s| s.content >= 0 && s.status == Status::Down)
            .cloned()
            .collect(),
    };
    // Every check before any change; the primaries are asked all at once.
    let mut checks = Vec::new();
    for target in &targets {
        let pair = cat
            .pair(target.content)
            .ok_or_else(|| format!("content {} has no acting primary", target.content))?;
        if pair.primary.dbid == target.dbid {
            return Err(format!(
                "dbid {} is the acting primary of content {}; it may not be recovered from itself",
                target.dbid, target.content
            ));
        }
        let primary = pair.primary.clone();
        let epoch = cat.epoch;
        let up = pair.primary.status == Status::Up;
        let check = async move { up && primary_is_up(&primary, epoch, t).await };
        checks.push((
            target.clone(),
            pair.primary,
            runtime::spawn(check.in_current_span()),
        ));
    }
    let mut plan = Vec::new();
    for (target, primary, check) in checks {
        if !check.await.unwrap_or(false) {
            return Err(format!(
                "Primary segment is not up for content {} (dbid {} at {}): both halves of the \
                 pair are down (double fault), so dbid {} cannot be recovered from it; restart \
                 the cluster (restart), then run recoverseg",
                target.content,
                primary.dbid,
                primary.endpoint(),
                target.dbid
            ));
        }
        plan.push((target, primary));
    }
    // As gprecoverseg recovers segments in parallel: one after another, a large cluster's
    // recovery would take the sum of every rewind.
    let tasks: Vec<_> = plan
        .into_iter()
        .map(|(target, primary)| {
            let one = recover_one(store.clone(), target, primary, full, t);
            runtime::spawn(one.in_current_span())
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(
            task.await
                .map_err(|e| format!("a recovery task failed: {e}"))??,
        );
    }
    Ok(AdminReply::Recovered(results))
}

/// Recovers one instance from its acting primary and records it as a resynchronizing mirror.
async fn recover_one(
    store: CatalogStore,
    target: SegmentConfig,
    primary: SegmentConfig,
    full: bool,
    t: Timeouts,
) -> Result<Recovered, String> {
    let outcome = rejoin(&target, &primary, full, store.epoch(), t).await;
    if let Ok(report) = &outcome {
        let how = if full { "full copy" } else { "incremental" };
        let desc = format!(
            "gprecoverseg: dbid {} with contentid {} recovered ({how}) from dbid {}: \
             rewound to lsn {}, resynchronizing",
            target.dbid, target.content, primary.dbid, report.divergence_lsn
        );
        let dbid = target.dbid;
        store
            .edit_rows(|cat| {
                let row = cat.segments.get_mut(&dbid).ok_or("row vanished")?;
                row.role = Role::Mirror;
                row.status = Status::Up;
                row.mode = Mode::NotSynced;
                for other in cat.segments.values_mut() {
                    if other.content == target.content && other.dbid != dbid {
                        other.mode = Mode::NotSynced;
                    }
                }
                Ok(vec![(dbid, desc)])
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Recovered {
        dbid: target.dbid,
        content: target.content,
        source_dbid: primary.dbid,
        full,
        outcome,
    })
}

async fn rejoin(
    target: &SegmentConfig,
    primary: &SegmentConfig,
    full: bool,
    epoch: u64,
    t: Timeouts,
) -> Result<RejoinReport, String> {
    let req = SegmentRequest::Rejoin {
        epoch,
        primary: primary.endpoint(),
        full,
    };
    // A rewind replays the whole WAL: give it longer than one statement.
    let long = Timeouts {
        call: t.call * 4,
        ..t
    };
    match call(&target.endpoint(), &req, long).await {
        Ok(SegmentResponse::Rejoined(report)) => {
            info!(dbid = target.dbid, ?report, "instance rejoined as mirror");
            Ok(report)
        }
        // The instance says itself when a full copy would help (another WAL history, nothing
        // shared); most refusals (an unreachable source, a failed instance) it would not.
        Ok(SegmentResponse::Error(e)) => Err(format!("dbid {} refused recovery: {e}", target.dbid)),
        Ok(SegmentResponse::Fenced {
            dbid,
            epoch,
            followed,
        }) => Err(crate::wire::fenced_message(dbid, epoch, followed)),
        Ok(other) => Err(format!("dbid {} answered {other:?}", target.dbid)),
        Err(e) => Err(format!(
            "dbid {}: {e}; start its instance (if its data directory is missing or was replaced, \
             it refuses to start: recover it with a full copy, recoverseg -F), or recover it onto \
             another host with -i",
            target.dbid
        )),
    }
}

async fn rebalance(store: &CatalogStore, t: Timeouts) -> Result<AdminReply, String> {
    let cat = store.snapshot();
    require_mirrors(&cat)?;
    for pair in cat.pairs() {
        let Some(mirror) = &pair.mirror else { continue };
        if t.bugs.rebalance_unsynchronized {
            // Planted bug: the real rule needs every pair Synchronized first.
            break;
        }
        if pair.primary.mode != Mode::Synced
            || mirror.status != Status::Up
            || pair.primary.status != Status::Up
        {
            return Err(format!(
                "rebalance refused: content {} is not synchronized (primary dbid {} {}/{}, \
                 mirror dbid {} {}/{}); every pair must be Synchronized (see state -m)",
                pair.content,
                pair.primary.dbid,
                pair.primary.status.code(),
                pair.primary.mode.code(),
                mirror.dbid,
                mirror.status.code(),
                mirror.mode.code()
            ));
        }
    }
    // Every pair at once, as gprecoverseg -r does.
    let tasks: Vec<_> = cat
        .pairs()
        .into_iter()
        .filter(|pair| pair.mirror.is_some() && pair.primary.preferred_role != Role::Primary)
        .map(|pair| {
            let content = pair.content;
            let one = rebalance_one(store.clone(), pair, t);
            (content, runtime::spawn(one.in_current_span()))
        })
        .collect();
    let mut moved = Vec::new();
    for (content, task) in tasks {
        task.await
            .map_err(|e| format!("content {content}: a rebalance task failed: {e}"))??;
        moved.push(content);
    }
    Ok(AdminReply::Rebalanced(moved))
}

/// Switches one pair back to its preferred roles: the flip durable first, then PROMOTE to the
/// preferred primary, then the old primary rejoins as its mirror.
async fn rebalance_one(
    store: CatalogStore,
    pair: crate::model::catalog::Pair,
    t: Timeouts,
) -> Result<(), String> {
    let mirror = pair.mirror.clone().expect("filtered: mirrored pairs only");
    let (old, preferred) = (pair.primary, mirror);
    // As the prober fails over: the flip is durable before PROMOTE.
    store
        .edit_rows(|cat| {
            for (dbid, role, status) in [
                (old.dbid, Role::Mirror, Status::Down),
                (preferred.dbid, Role::Primary, Status::Up),
            ] {
                let row = cat.segments.get_mut(&dbid).ok_or("row vanished")?;
                row.role = role;
                row.status = status;
                row.mode = Mode::NotSynced;
            }
            Ok(vec![
                (
                    preferred.dbid,
                    format!(
                        "gprecoverseg -r: dbid {} with contentid {} returns to its preferred \
                         role p",
                        preferred.dbid, pair.content
                    ),
                ),
                (
                    old.dbid,
                    format!(
                        "gprecoverseg -r: dbid {} with contentid {} stops acting as primary",
                        old.dbid, pair.content
                    ),
                ),
            ])
        })
        .await
        .map_err(|e| e.to_string())?;
    // The epoch current when sending, not the flip's: other pairs switch meanwhile, and the
    // prober may already have shown this instance a newer epoch.
    let promote = SegmentRequest::Promote {
        dbid: preferred.dbid,
        epoch: store.epoch(),
    };
    match call(&preferred.endpoint(), &promote, t).await {
        Ok(SegmentResponse::Ok) => {}
        other => warn!(dbid = preferred.dbid, ?other, "promote during rebalance"),
    }
    let mut preferred_now = preferred.clone();
    preferred_now.role = Role::Primary;
    let outcome = rejoin(&old, &preferred_now, false, store.epoch(), t).await;
    match outcome {
        Ok(report) => {
            store
                .edit_rows(|cat| {
                    let row = cat.segments.get_mut(&old.dbid).ok_or("row vanished")?;
                    row.status = Status::Up;
                    Ok(vec![(
                        old.dbid,
                        format!(
                            "gprecoverseg -r: dbid {} with contentid {} rejoined as mirror \
                             at lsn {}, resynchronizing",
                            old.dbid, pair.content, report.divergence_lsn
                        ),
                    )])
                })
                .await
                .map_err(|e| e.to_string())?;
        }
        Err(e) => {
            return Err(format!(
                "content {} switched to its preferred primary dbid {}, but dbid {} did not \
                 rejoin: {e}; run recoverseg",
                pair.content, preferred.dbid, old.dbid
            ))
        }
    }
    Ok(())
}

async fn relocate(
    store: &CatalogStore,
    moves: Vec<Relocation>,
    why: String,
) -> Result<AdminReply, String> {
    let cat = store
        .edit_rows(|cat| {
            let mut history = Vec::new();
            for mv in &moves {
                let row = cat.segments.get(&mv.dbid).ok_or_else(|| {
                    format!(
                        "a segment to move was not found in configuration: dbid {}",
                        mv.dbid
                    )
                })?;
                if row.role != Role::Mirror {
                    return Err(format!(
                        "dbid {} is not a mirror (role {}); only mirrors are relocated",
                        mv.dbid,
                        row.role.code()
                    ));
                }
                let content = row.content;
                let from = row.endpoint();
                let primary_host = cat
                    .pair(content)
                    .map(|p| p.primary.hostname)
                    .unwrap_or_default();
                if primary_host == mv.hostname {
                    return Err(format!(
                        "dbid {} cannot move to host {}: its primary is on that host",
                        mv.dbid, mv.hostname
                    ));
                }
                let row = cat.segments.get_mut(&mv.dbid).expect("checked");
                row.hostname = mv.hostname.clone();
                row.address = mv.address.clone();
                row.port = mv.port;
                row.datadir = mv.datadir.clone();
                row.status = Status::Up;
                row.mode = Mode::NotSynced;
                for other in cat.segments.values_mut() {
                    if other.content == content {
                        other.mode = Mode::NotSynced;
                    }
                }
                history.push((
                    mv.dbid,
                    format!(
                        "{why}: dbid {} with contentid {content} moved from {from} to {}:{} {}",
                        mv.dbid, mv.address, mv.port, mv.datadir
                    ),
                ));
            }
            Ok(history)
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(AdminReply::Recorded(cat))
}

async fn add_mirrors(
    store: &CatalogStore,
    mirrors: Vec<SegmentConfig>,
) -> Result<AdminReply, String> {
    let cat = store
        .edit_rows(|cat| {
            let mut history = Vec::new();
            let first_dbid = cat.segments.keys().max().copied().unwrap_or(1) + 1;
            for (next_dbid, m) in (first_dbid..).zip(mirrors.iter()) {
                let pair = cat.pair(m.content).ok_or_else(|| {
                    format!("content {} does not exist in the configuration", m.content)
                })?;
                if pair.mirror.is_some() {
                    return Err(format!(
                        "content {} is already configured with a mirror",
                        m.content
                    ));
                }
                if pair.primary.hostname == m.hostname {
                    return Err(format!(
                        "the mirror of content {} may not sit on its primary's host {}",
                        m.content, m.hostname
                    ));
                }
                let mut row = m.clone();
                row.dbid = next_dbid;
                row.role = Role::Mirror;
                row.preferred_role = Role::Mirror;
                row.mode = Mode::NotSynced;
                row.status = Status::Up;
                if let Some(p) = cat.segments.get_mut(&pair.primary.dbid) {
                    p.mode = Mode::NotSynced;
                }
                history.push((
                    row.dbid,
                    format!(
                        "gpaddmirrors: dbid {} added as mirror of contentid {} at {} {}",
                        row.dbid,
                        row.content,
                        row.endpoint(),
                        row.datadir
                    ),
                ));
                cat.segments.insert(row.dbid, row);
            }
            Ok(history)
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(AdminReply::Recorded(cat))
}

async fn state_report(store: &CatalogStore, t: Timeouts) -> Result<AdminReply, String> {
    let catalog = store.snapshot();
    // Every instance asked at once, as gpstate's worker pool does: one after another, a large
    // cluster's report would outlast the client's timeout.
    let asks: Vec<_> = catalog
        .segments
        .values()
        .filter(|s| s.content >= 0)
        .map(|row| {
            let (dbid, addr, down) = (row.dbid, row.endpoint(), row.status == Status::Down);
            let ask = async move {
                if down {
                    return None;
                }
                match call(&addr, &SegmentRequest::ReplicationStatus, t).await {
                    Ok(SegmentResponse::Replication(info)) => Some(info),
                    _ => None,
                }
            };
            (dbid, runtime::spawn(ask.in_current_span()))
        })
        .collect();
    let mut replication = std::collections::BTreeMap::new();
    for (dbid, ask) in asks {
        replication.insert(dbid, ask.await.ok().flatten());
    }
    let history = store.history().await.map_err(|e| e.to_string())?;
    let mirroring = store.mirroring_status().await;
    let standby_passive = match &mirroring.standby {
        Some(row) => crate::client::passive_status(&row.endpoint(), t.connect)
            .await
            .map(Box::new),
        None => None,
    };
    Ok(AdminReply::State(StateReport {
        catalog,
        replication,
        history,
        not_operational: store.unmirrored_lost(),
        standby: Some(Box::new(mirroring)),
        standby_passive,
    }))
}
