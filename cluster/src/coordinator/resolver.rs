//! The in-doubt resolver: carries out distributed commits whose second phase a session could
//! not finish, and aborts prepared transactions nobody will ever decide (see
//! [`crate::protocol::dtx::resolve_in_doubt`]). Runs on every coordinator, from start-up on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::{primary_call, CatalogStore, DtxState, OnFailover};
use crate::io::runtime;
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
    let committed = store.distributed_commits().await?;
    let mut prepared = BTreeMap::new();
    for content in store.snapshot().contents() {
        if let Some(SegmentResponse::PreparedList(gxids)) = primary_call(
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
            prepared.insert(content, gxids);
        }
    }
    let in_flight = dtx.in_flight.lock().unwrap().clone();
    let mut actions = resolve_in_doubt(&committed, &prepared, &in_flight, dtx.started_at);
    let orphans: Vec<_> = dtx.orphans.lock().unwrap().iter().copied().collect();
    actions.extend(
        orphans
            .into_iter()
            .map(|(content, gxid)| Resolution::AbortPrepared { content, gxid }),
    );
    let mut unfinished: BTreeMap<u64, bool> = committed.keys().map(|g| (*g, false)).collect();
    for action in actions {
        let (content, gxid) = action.target();
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
            if !bugs.coordinator_fence_off
                && store
                    .depose(followed, &format!("dbid {dbid} (content {content})"))
                    .await
            {
                return Ok(());
            }
        }
        let done = matches!(answer, Some(SegmentResponse::Ok));
        match (&req, done) {
            (SegmentRequest::AbortPrepared { .. }, true) => {
                dtx.orphans.lock().unwrap().remove(&(content, gxid));
                info!(content, gxid, "in-doubt transaction aborted");
            }
            (SegmentRequest::CommitPrepared { .. }, false) => {
                unfinished.insert(gxid, true);
            }
            _ => {}
        }
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
