//! The coordinator's side of the administration verbs (`recoverseg`, `recoverseg -r`,
//! `move-mirrors`, `add-mirrors`, `state`): each [`AdminRequest`] is checked against the catalog,
//! carried out by talking to the instances, and recorded as one catalog change with a new epoch
//! and history rows. An `Err` is a refusal: nothing changed. The operator's side (the config
//! files, starting processes on hosts, the `state` report's text) is [`crate::admin`].

use std::time::Duration;

use tracing::{info, warn, Instrument};

use super::{CatalogStore, CatalogStoreError};
use crate::io::net::{Connection, NetError};
use crate::io::runtime;
use crate::model::catalog::{Catalog, Content, Dbid, Mode, Role, SegmentConfig, Status};
use crate::wire::{
    fenced_message, AdminReply, AdminRequest, DbError, Recovered, RejoinReport, Relocation,
    SegmentRequest, SegmentResponse, StateReport,
};

/// Why the coordinator refused an administration request (nothing changed, unless the message
/// says what did), or why one instance's recovery failed. The text is what the operator reads.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot reach {addr}: {source}")]
    Unreachable { addr: String, source: NetError },
    #[error("no answer from {addr}: {source}")]
    NoAnswer { addr: String, source: NetError },
    #[error(
        "mirroring is not configured for this cluster; nothing to recover \
                    (add mirrors with add-mirrors)"
    )]
    NotMirrored,
    #[error("a segment to recover was not found in configuration: dbid {dbid}")]
    UnknownDbid { dbid: Dbid },
    #[error("content {content} has no acting primary")]
    NoActingPrimary { content: Content },
    #[error(
        "dbid {dbid} is the acting primary of content {content}; it may not be recovered from itself"
    )]
    RecoverFromItself { dbid: Dbid, content: Content },
    #[error(
        "Primary segment is not up for content {content} (dbid {primary_dbid} at {primary_addr}): \
         both halves of the pair are down (double fault), so dbid {dbid} cannot be recovered \
         from it; {}",
        crate::wire::admin::RESTART_THEN_RECOVER
    )]
    DoubleFault {
        content: Content,
        primary_dbid: Dbid,
        primary_addr: String,
        dbid: Dbid,
    },
    #[error("a recovery task failed: {0}")]
    RecoveryTask(#[source] tokio::task::JoinError),
    #[error("dbid {dbid} refused recovery: {reason}")]
    RejoinRefused { dbid: Dbid, reason: DbError },
    #[error("{}", fenced_message(*.dbid, *.epoch, *.followed))]
    Fenced {
        dbid: Dbid,
        epoch: u64,
        followed: u64,
    },
    #[error("dbid {dbid} answered {answer}")]
    Unexpected { dbid: Dbid, answer: String },
    #[error(
        "dbid {dbid}: {source}; start its instance (if its data directory is missing or was \
         replaced, it refuses to start: recover it with a full copy, recoverseg -F), or recover \
         it onto another host with -i"
    )]
    InstanceDown { dbid: Dbid, source: Box<AdminError> },
    #[error(
        "rebalance refused: content {content} is not synchronized (primary dbid {primary_dbid} \
         {primary_status}/{primary_mode}, mirror dbid {mirror_dbid} {mirror_status}/{mirror_mode}); \
         every pair must be Synchronized (see state -m)"
    )]
    NotSynchronized {
        content: Content,
        primary_dbid: Dbid,
        primary_status: char,
        primary_mode: char,
        mirror_dbid: Dbid,
        mirror_status: char,
        mirror_mode: char,
    },
    #[error("content {content}: a rebalance task failed: {source}")]
    RebalanceTask {
        content: Content,
        source: tokio::task::JoinError,
    },
    #[error(
        "content {content} switched to its preferred primary dbid {preferred}, but dbid {old} did \
         not rejoin: {source}; run recoverseg"
    )]
    NotRejoined {
        content: Content,
        preferred: Dbid,
        old: Dbid,
        source: Box<AdminError>,
    },
    #[error(
        "content {content} is not in sync right now: dbid {dbid}: {why}; rebalance once every \
         pair is Synchronized (state -s, recoverseg)"
    )]
    NotInSyncNow {
        content: Content,
        dbid: Dbid,
        why: String,
    },
    #[error(
        "content {content}: the preferred primary dbid {preferred} refused to be promoted \
         ({reason}); dbid {old} stays the primary. Recover dbid {preferred} (recoverseg) before \
         rebalancing"
    )]
    PromoteRefused {
        content: Content,
        preferred: Dbid,
        old: Dbid,
        reason: String,
    },
    #[error("a segment to move was not found in configuration: dbid {dbid}")]
    UnknownMove { dbid: Dbid },
    #[error("dbid {dbid} is not a mirror (role {role}); only mirrors are relocated")]
    NotAMirror { dbid: Dbid, role: char },
    #[error("dbid {dbid} cannot move to host {host}: its primary is on that host")]
    MoveOntoPrimaryHost { dbid: Dbid, host: String },
    #[error("content {content} does not exist in the configuration")]
    UnknownContent { content: Content },
    #[error("content {content} is already configured with a mirror")]
    AlreadyMirrored { content: Content },
    #[error("the mirror of content {content} may not sit on its primary's host {host}")]
    MirrorOnPrimaryHost { content: Content, host: String },
    /// The catalog refused or failed the change. The refusals of a move or a new mirror are
    /// found inside the catalog's edit, which takes them as text, and come back this way.
    #[error(transparent)]
    Catalog(#[from] CatalogStoreError),
}

/// Timeouts the coordinator uses towards instances, and its planted bugs.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub call: Duration,
    pub bugs: crate::model::bugs::PlantedBugs,
}

async fn call(
    addr: &str,
    req: &SegmentRequest,
    t: Timeouts,
) -> Result<SegmentResponse, AdminError> {
    let mut conn = Connection::connect(addr, t.connect)
        .await
        .map_err(|source| AdminError::Unreachable {
            addr: addr.to_string(),
            source,
        })?;
    conn.call(req, t.call)
        .await
        .map_err(|source| AdminError::NoAnswer {
            addr: addr.to_string(),
            source,
        })
}

/// Carries out one request on the coordinator. An `Err` is a refusal: nothing changed.
pub async fn handle(
    store: &CatalogStore,
    req: AdminRequest,
    t: Timeouts,
) -> Result<AdminReply, AdminError> {
    match req {
        AdminRequest::Recover { full, only } => recover(store, full, only, t).await,
        AdminRequest::Rebalance => rebalance(store, t).await,
        AdminRequest::Relocate { moves, why } => relocate(store, moves, why).await,
        AdminRequest::AddMirrors { mirrors } => add_mirrors(store, mirrors).await,
        AdminRequest::State => state_report(store, t).await,
    }
}

fn require_mirrors(cat: &Catalog) -> Result<(), AdminError> {
    if cat.pairs().iter().all(|p| p.mirror.is_none()) {
        return Err(AdminError::NotMirrored);
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
) -> Result<AdminReply, AdminError> {
    let cat = store.snapshot();
    require_mirrors(&cat)?;
    let targets: Vec<SegmentConfig> = match &only {
        Some(dbids) => {
            let mut rows = Vec::new();
            for dbid in dbids {
                let row = cat
                    .segments
                    .get(dbid)
                    .ok_or(AdminError::UnknownDbid { dbid: *dbid })?;
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
            .ok_or(AdminError::NoActingPrimary {
                content: target.content,
            })?;
        if pair.primary.dbid == target.dbid {
            return Err(AdminError::RecoverFromItself {
                dbid: target.dbid,
                content: target.content,
            });
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
            return Err(AdminError::DoubleFault {
                content: target.content,
                primary_dbid: primary.dbid,
                primary_addr: primary.endpoint(),
                dbid: target.dbid,
            });
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
        results.push(task.await.map_err(AdminError::RecoveryTask)??);
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
) -> Result<Recovered, AdminError> {
    let (dbid, content) = (target.dbid, target.content);
    store.begin_recovery(dbid, content).await;
    let recovered = recover_one_begun(&store, target, primary, full, t).await;
    store.end_recovery(dbid, content).await;
    recovered
}

async fn recover_one_begun(
    store: &CatalogStore,
    target: SegmentConfig,
    primary: SegmentConfig,
    full: bool,
    t: Timeouts,
) -> Result<Recovered, AdminError> {
    // The prober may have recorded the instance back, and in sync, since it was chosen: then
    // there is nothing to recover, and a full copy would wipe a mirror the catalog calls in
    // sync. Read from the newest committed catalog: a decision committed before the recovery
    // began and still flushing is published after it (standard seed 1260: a full copy wiped a
    // mirror the prober's flushing decision then published in sync).
    let back = store.read_latest(|c| {
        c.segments
            .get(&target.dbid)
            .is_some_and(|r| r.status == Status::Up && r.mode == Mode::Synced)
    });
    if back {
        return Ok(Recovered {
            dbid: target.dbid,
            content: target.content,
            source_dbid: primary.dbid,
            full,
            outcome: Err(format!(
                "dbid {} is back and in sync with dbid {}: nothing to recover",
                target.dbid, primary.dbid
            )),
        });
    }
    let outcome = rejoin(&target, &primary, full, store, t).await;
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
            .await?;
    }
    Ok(Recovered {
        dbid: target.dbid,
        content: target.content,
        source_dbid: primary.dbid,
        full,
        outcome: outcome.map_err(|e| e.to_string()),
    })
}

/// How often, and how far apart, `recoverseg` asks an instance that answers "starting" again.
const STARTING_TRIES: usize = 120;
const STARTING_RETRY_GAP: Duration = Duration::from_millis(500);

/// A rejoin to send again: with which epoch, and whether after a pause.
#[derive(Debug, PartialEq, Eq)]
struct Again {
    epoch: u64,
    wait: bool,
}

/// Whether a rejoin that got `answer` is asked again, `current` being this coordinator's epoch
/// now. An instance still recovering ("starting") is asked again after a pause. One that
/// refused the request as stale, fenced by an epoch this coordinator itself published after
/// the request was made (another recovery of the same verb recorded; standard seed 13's kept
/// schedule), is asked again at once with the current epoch, never the one it follows. A newer
/// epoch than ours is final, as is every other answer.
fn rejoin_again<E>(answer: &Result<SegmentResponse, E>, current: u64) -> Option<Again> {
    match answer {
        Ok(SegmentResponse::Starting { .. }) => Some(Again {
            epoch: current,
            wait: true,
        }),
        Ok(SegmentResponse::Fenced { followed, .. }) if *followed <= current => Some(Again {
            epoch: current,
            wait: false,
        }),
        _ => None,
    }
}

async fn rejoin(
    target: &SegmentConfig,
    primary: &SegmentConfig,
    full: bool,
    store: &CatalogStore,
    t: Timeouts,
) -> Result<RejoinReport, AdminError> {
    // Each try carries the epoch current when it is sent: the verb's other recoveries record
    // theirs meanwhile, and the prober shows the instance those newer epochs.
    let req = |epoch| SegmentRequest::Rejoin {
        epoch,
        primary: primary.endpoint(),
        full,
    };
    // A rewind replays the whole WAL: give it longer than one statement.
    let long = Timeouts {
        call: t.call * 4,
        ..t
    };
    // An instance still recovering from its own WAL answers "starting"; like gprecoverseg's
    // `pg_ctl start -w`, wait for it (a bounded number of tries) instead of failing it.
    let mut answer = call(&target.endpoint(), &req(store.epoch()), long).await;
    for _ in 0..STARTING_TRIES {
        let Some(again) = rejoin_again(&answer, store.epoch()) else {
            break;
        };
        if again.wait {
            runtime::sleep(STARTING_RETRY_GAP).await;
        }
        // The epoch current when it is sent: the pause may have seen a newer one published.
        let epoch = again.epoch.max(store.epoch());
        answer = call(&target.endpoint(), &req(epoch), long).await;
    }
    match answer {
        Ok(SegmentResponse::Rejoined(report)) => {
            info!(dbid = target.dbid, ?report, "instance rejoined as mirror");
            Ok(report)
        }
        // The instance says itself when a full copy would help (another WAL history, nothing
        // shared); most refusals (an unreachable source, a failed instance) it would not.
        Ok(SegmentResponse::Error(reason)) => Err(AdminError::RejoinRefused {
            dbid: target.dbid,
            reason,
        }),
        Ok(SegmentResponse::Fenced {
            dbid,
            epoch,
            followed,
        }) => Err(AdminError::Fenced {
            dbid,
            epoch,
            followed,
        }),
        Ok(other) => Err(AdminError::Unexpected {
            dbid: target.dbid,
            answer: format!("{other:?}"),
        }),
        Err(e) => Err(AdminError::InstanceDown {
            dbid: target.dbid,
            source: Box::new(e),
        }),
    }
}

async fn rebalance(store: &CatalogStore, t: Timeouts) -> Result<AdminReply, AdminError> {
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
            return Err(AdminError::NotSynchronized {
                content: pair.content,
                primary_dbid: pair.primary.dbid,
                primary_status: pair.primary.status.code(),
                primary_mode: pair.primary.mode.code(),
                mirror_dbid: mirror.dbid,
                mirror_status: mirror.status.code(),
                mirror_mode: mirror.mode.code(),
            });
        }
    }
    if !t.bugs.rebalance_unsynchronized {
        for pair in cat.pairs() {
            if let Some(mirror) = &pair.mirror {
                if pair.primary.preferred_role != Role::Primary {
                    live_in_sync(&pair.primary, mirror, pair.content, t).await?;
                }
            }
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
            .map_err(|source| AdminError::RebalanceTask { content, source })??;
        moved.push(content);
    }
    Ok(AdminReply::Rebalanced(moved))
}

/// The catalog's Synchronized may be older than the pair's state (a primary reports its mirror
/// streaming until its walsender notices the mirror is gone), so before a switch the two
/// instances are asked themselves: the mirror must answer as a mirror that is not in the middle
/// of a recovery, and the primary that it streams and has caught up.
async fn live_in_sync(
    primary: &SegmentConfig,
    mirror: &SegmentConfig,
    content: Content,
    t: Timeouts,
) -> Result<(), AdminError> {
    let not = |dbid: Dbid, why: String| AdminError::NotInSyncNow { content, dbid, why };
    match call(&mirror.endpoint(), &SegmentRequest::ReplicationStatus, t).await {
        Ok(SegmentResponse::Replication(info)) if info.role == Role::Mirror && !info.recovering => {
        }
        Ok(SegmentResponse::Replication(info)) if info.recovering => {
            return Err(not(mirror.dbid, "its recovery has not finished".into()))
        }
        Ok(other) => return Err(not(mirror.dbid, format!("it answered {other:?}"))),
        Err(e) => return Err(not(mirror.dbid, e.to_string())),
    }
    match call(&primary.endpoint(), &SegmentRequest::ReplicationStatus, t).await {
        Ok(SegmentResponse::Replication(info))
            if info.role == Role::Primary && info.mirror_connected && info.mirror_caught_up =>
        {
            Ok(())
        }
        Ok(SegmentResponse::Replication(_)) => Err(not(
            primary.dbid,
            "its mirror is not streaming and caught up".into(),
        )),
        Ok(other) => Err(not(primary.dbid, format!("it answered {other:?}"))),
        Err(e) => Err(not(primary.dbid, e.to_string())),
    }
}

/// Switches one pair back to its preferred roles: the flip durable first, then PROMOTE to the
/// preferred primary, then the old primary rejoins as its mirror.
async fn rebalance_one(
    store: CatalogStore,
    pair: crate::model::catalog::Pair,
    t: Timeouts,
) -> Result<(), AdminError> {
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
        .await?;
    if let Err(reason) = promote_preferred(&store, &preferred, t).await {
        // Refused outright (not lost on the way): the old primary was never told anything and
        // still serves, so the flip is undone rather than leaving the content without one.
        store
            .edit_rows(|cat| {
                for (dbid, role, status, mode) in [
                    (old.dbid, Role::Primary, Status::Up, Mode::NotSynced),
                    (preferred.dbid, Role::Mirror, Status::Down, Mode::NotSynced),
                ] {
                    let row = cat.segments.get_mut(&dbid).ok_or("row vanished")?;
                    row.role = role;
                    row.status = status;
                    row.mode = mode;
                }
                Ok(vec![(
                    old.dbid,
                    format!(
                        "gprecoverseg -r: dbid {} refused to be promoted; dbid {} with \
                         contentid {} stays the primary",
                        preferred.dbid, old.dbid, pair.content
                    ),
                )])
            })
            .await?;
        return Err(AdminError::PromoteRefused {
            content: pair.content,
            preferred: preferred.dbid,
            old: old.dbid,
            reason,
        });
    }
    let mut preferred_now = preferred.clone();
    preferred_now.role = Role::Primary;
    let outcome = rejoin(&old, &preferred_now, false, &store, t).await;
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
                .await?;
        }
        Err(e) => {
            return Err(AdminError::NotRejoined {
                content: pair.content,
                preferred: preferred.dbid,
                old: old.dbid,
                source: Box::new(e),
            })
        }
    }
    Ok(())
}

/// Sends PROMOTE to a pair's preferred primary during a rebalance. `Err` is a refusal the
/// instance answered (it was not promoted); an answer lost on the way is only logged, and the
/// rejoin that follows finds out whether the switch took.
async fn promote_preferred(
    store: &CatalogStore,
    preferred: &SegmentConfig,
    t: Timeouts,
) -> Result<(), String> {
    // The epoch current when sending, not the flip's: other pairs switch meanwhile, and the
    // prober may already have shown this instance a newer epoch.
    let promote = SegmentRequest::Promote {
        dbid: preferred.dbid,
        epoch: store.epoch(),
    };
    match call(&preferred.endpoint(), &promote, t).await {
        Ok(SegmentResponse::Ok) => Ok(()),
        Ok(SegmentResponse::Error(refusal)) => {
            warn!(dbid = preferred.dbid, %refusal, "promote during rebalance refused");
            Err(refusal.to_string())
        }
        other => {
            // Logged with the refusal's text, as it always was.
            let other = other.map_err(|e| e.to_string());
            warn!(dbid = preferred.dbid, ?other, "promote during rebalance");
            Ok(())
        }
    }
}

async fn relocate(
    store: &CatalogStore,
    moves: Vec<Relocation>,
    why: String,
) -> Result<AdminReply, AdminError> {
    let cat = store
        .edit_rows(|cat| {
            let mut history = Vec::new();
            for mv in &moves {
                let row = cat
                    .segments
                    .get(&mv.dbid)
                    .ok_or_else(|| AdminError::UnknownMove { dbid: mv.dbid }.to_string())?;
                if row.role != Role::Mirror {
                    let role = row.role.code();
                    return Err(AdminError::NotAMirror {
                        dbid: mv.dbid,
                        role,
                    }
                    .to_string());
                }
                let content = row.content;
                let from = row.endpoint();
                let primary_host = cat
                    .pair(content)
                    .map(|p| p.primary.hostname)
                    .unwrap_or_default();
                if primary_host == mv.hostname {
                    let host = mv.hostname.clone();
                    return Err(AdminError::MoveOntoPrimaryHost {
                        dbid: mv.dbid,
                        host,
                    }
                    .to_string());
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
        .await?;
    Ok(AdminReply::Recorded(cat))
}

async fn add_mirrors(
    store: &CatalogStore,
    mirrors: Vec<SegmentConfig>,
) -> Result<AdminReply, AdminError> {
    let cat = store
        .edit_rows(|cat| {
            let mut history = Vec::new();
            let first_dbid = cat.segments.keys().max().copied().unwrap_or(1) + 1;
            for (next_dbid, m) in (first_dbid..).zip(mirrors.iter()) {
                let content = m.content;
                let pair = cat
                    .pair(content)
                    .ok_or_else(|| AdminError::UnknownContent { content }.to_string())?;
                if pair.mirror.is_some() {
                    return Err(AdminError::AlreadyMirrored { content }.to_string());
                }
                if pair.primary.hostname == m.hostname {
                    let host = m.hostname.clone();
                    return Err(AdminError::MirrorOnPrimaryHost { content, host }.to_string());
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
        .await?;
    Ok(AdminReply::Recorded(cat))
}

async fn state_report(store: &CatalogStore, t: Timeouts) -> Result<AdminReply, AdminError> {
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
    let history = store.history().await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejoin_is_asked_again_only_while_starting_or_fenced_by_our_own_epoch() {
        let fenced = |followed| -> Result<SegmentResponse, &str> {
            Ok(SegmentResponse::Fenced {
                dbid: 4,
                epoch: 17,
                followed,
            })
        };
        let again = |epoch, wait| Some(Again { epoch, wait });
        assert_eq!(
            rejoin_again::<&str>(&Ok(SegmentResponse::Starting { replay_lsn: 9 }), 17),
            again(17, true)
        );
        // Fenced by an epoch we published since: our current one, at once.
        assert_eq!(rejoin_again(&fenced(19), 19), again(19, false));
        assert_eq!(rejoin_again(&fenced(18), 19), again(19, false));
        // Fenced by a newer epoch than ours (a deposed coordinator): final.
        assert_eq!(rejoin_again(&fenced(20), 19), None);
        assert_eq!(rejoin_again::<&str>(&Ok(SegmentResponse::Ok), 19), None);
        let closed: Result<SegmentResponse, &str> = Err("10.0.0.2:6000 closed the connection");
        assert_eq!(rejoin_again(&closed, 19), None);
    }

    /// The refusals read as they did when they were built as text: the operator, the
    /// simulator's scenarios and the trace hashes see these exact words.
    #[test]
    fn refusals_read_as_before() {
        assert_eq!(
            AdminError::NotMirrored.to_string(),
            "mirroring is not configured for this cluster; nothing to recover (add mirrors with add-mirrors)"
        );
        let double = AdminError::DoubleFault {
            content: 0,
            primary_dbid: 2,
            primary_addr: "10.0.0.2:6000".into(),
            dbid: 5,
        };
        assert_eq!(
            double.to_string(),
            "Primary segment is not up for content 0 (dbid 2 at 10.0.0.2:6000): both halves of \
             the pair are down (double fault), so dbid 5 cannot be recovered from it; restart the \
             cluster (restart), then run recoverseg"
        );
        let down = AdminError::InstanceDown {
            dbid: 5,
            source: Box::new(AdminError::NoAnswer {
                addr: "10.0.0.3:6001".into(),
                source: NetError::Closed {
                    peer: "10.0.0.3:6001".into(),
                },
            }),
        };
        assert_eq!(
            down.to_string(),
            "dbid 5: no answer from 10.0.0.3:6001: 10.0.0.3:6001 closed the connection; start its \
             instance (if its data directory is missing or was replaced, it refuses to start: \
             recover it with a full copy, recoverseg -F), or recover it onto another host with -i"
        );
        let unsynced = AdminError::NotSynchronized {
            content: 1,
            primary_dbid: 3,
            primary_status: 'u',
            primary_mode: 'n',
            mirror_dbid: 6,
            mirror_status: 'd',
            mirror_mode: 'n',
        };
        assert_eq!(
            unsynced.to_string(),
            "rebalance refused: content 1 is not synchronized (primary dbid 3 u/n, mirror dbid 6 \
             d/n); every pair must be Synchronized (see state -m)"
        );
        let not_rejoined = AdminError::NotRejoined {
            content: 1,
            preferred: 3,
            old: 6,
            source: Box::new(AdminError::RejoinRefused {
                dbid: 6,
                reason: DbError::Failed("no".into()),
            }),
        };
        assert_eq!(
            not_rejoined.to_string(),
            "content 1 switched to its preferred primary dbid 3, but dbid 6 did not rejoin: dbid 6 \
             refused recovery: no; run recoverseg"
        );
        let fenced = AdminError::Fenced {
            dbid: 6,
            epoch: 4,
            followed: 7,
        };
        assert_eq!(fenced.to_string(), fenced_message(6, 4, 7));
    }
}
