//! The in-doubt resolver: carries out distributed commits whose second phase a session could
//! not finish, and aborts prepared transactions nobody will ever decide (see
//! [`crate::protocol::dtx::resolve_in_doubt`]). Runs on every coordinator, from start-up on. Its
//! gathering ([`in_doubt`]) and its executor ([`execute`]) are the only ones: an activated
//! standby resolves what its old coordinator left in doubt with them too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{primary_call, CatalogStore, DtxState, OnFailover};
use crate::io::runtime;
use crate::model::catalog::Content;
use crate::protocol::dtx::{resolve_in_doubt, Resolution};
use crate::wire::{SegmentRequest, SegmentResponse};

pub(super) async fn run(
    store: CatalogStore,
    dtx: Arc<DtxState>,
    every: Duration,
    connect_timeout: Duration,
    call_timeout: Duration,
    bugs: crate::model::bugs::PlantedBugs,
) {
    loop {
        if store.deposed().is_some() {
            // An activated standby replaced this coordinator: what is in doubt is its to decide.
            return;
        }
        if let Err(e) = resolve_once(&store, &dtx, connect_timeout, call_timeout, bugs).await {
            warn!(error = %e, "in-doubt resolution failed; will retry");
        }
        runtime::sleep(every).await;
    }
}

async fn resolve_once(
    store: &CatalogStore,
    dtx: &DtxState,
    connect_timeout: Duration,
    call_timeout: Duration,
    bugs: crate::model::bugs::PlantedBugs,
) -> Result<(), super::CatalogStoreError> {
    let InDoubt {
        committed,
        prepared,
        ..
    } = in_doubt(store, connect_timeout, call_timeout).await?;
    let in_flight = dtx.in_flight.lock().unwrap().clone();
    let mut actions = resolve_in_doubt(&committed, &prepared, &in_flight, dtx.started_at);
    let orphans: Vec<_> = dtx.orphans.lock().unwrap().iter().copied().collect();
    actions.extend(
        orphans
            .into_iter()
            .map(|(content, gxid)| Resolution::AbortPrepared { content, gxid }),
    );
    let mut unfinished: BTreeMap<u64, bool> = committed.keys().map(|g| (*g, false)).collect();
    let timeouts = (connect_timeout, call_timeout);
    let on_fenced = if bugs.coordinator_fence_off {
        OnFenced::Ignore
    } else {
        OnFenced::Depose
    };
    let went_on = execute(store, actions, timeouts, on_fenced, |action, done| {
        match (action, done) {
            (Resolution::AbortPrepared { content, gxid }, true) => {
                dtx.orphans.lock().unwrap().remove(&(*content, *gxid));
                info!(content, gxid, "in-doubt transaction aborted");
            }
            (Resolution::CommitPrepared { gxid, .. }, false) => {
                unfinished.insert(*gxid, true);
            }
            _ => {}
        }
    })
    .await;
    if !went_on {
        return Ok(());
    }
    for (gxid, left) in unfinished {
        if !left && !in_flight.contains(&gxid) {
            info!(
                gxid,
                "distributed commit finished on every writer; forgotten"
            );
            store.forget_distributed_commit(gxid).await?;
        }
    }
    Ok(())
}

/// What is in doubt: the distributed-commit records, and the transactions prepared on each
/// content's acting primary.
pub(crate) struct InDoubt {
    pub committed: BTreeMap<u64, Vec<Content>>,
    pub prepared: BTreeMap<Content, Vec<u64>>,
    /// The contents whose acting primary did not list its prepared transactions.
    pub unreached: Vec<Content>,
}

/// Reads the distributed-commit records, then asks each content's acting primary for its
/// prepared transactions.
pub(crate) async fn in_doubt(
    store: &CatalogStore,
    connect_timeout: Duration,
    call_timeout: Duration,
) -> Result<InDoubt, super::CatalogStoreError> {
    let committed = store.distributed_commits().await?;
    let mut prepared = BTreeMap::new();
    let mut unreached = Vec::new();
    for content in store.snapshot().contents() {
        match primary_call(
            store,
            content,
            &SegmentRequest::ListPrepared {
                epoch: store.epoch(),
            },
            connect_timeout,
            call_timeout,
            OnFailover::Wait,
        )
        .await
        {
            Some(SegmentResponse::PreparedList(gxids)) => {
                prepared.insert(content, gxids);
            }
            _ => unreached.push(content),
        }
    }
    Ok(InDoubt {
        committed,
        prepared,
        unreached,
    })
}

/// What an instance answering that it follows a newer coordinator generation does to the
/// resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnFenced {
    /// This coordinator is deposed and stops resolving.
    Depose,
    /// The action counts as not done; the rest goes on.
    Ignore,
}

/// The one executor of in-doubt resolutions: carries out `actions` in order, each on its
/// content's acting primary (`timeouts`: connect, call), and tells `outcome` of each whether
/// it was done. Returns false when a fenced answer deposed this coordinator, leaving the rest
/// undone.
pub(crate) async fn execute(
    store: &CatalogStore,
    actions: Vec<Resolution>,
    (connect_timeout, call_timeout): (Duration, Duration),
    on_fenced: OnFenced,
    mut outcome: impl FnMut(&Resolution, bool),
) -> bool {
    for action in actions {
        let (content, _) = action.target();
        let req = action.request(store.epoch());
        let answer = primary_call(
            store,
            content,
            &req,
            connect_timeout,
            call_timeout,
            OnFailover::Wait,
        )
        .await;
        if let Some(SegmentResponse::Fenced { dbid, followed, .. }) = answer {
            if on_fenced == OnFenced::Depose
                && store
                    .depose(followed, &format!("dbid {dbid} (content {content})"))
                    .await
            {
                return false;
            }
        }
        outcome(&action, matches!(answer, Some(SegmentResponse::Ok)));
    }
    true
}
