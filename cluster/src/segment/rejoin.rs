//! Recovery of an instance as the mirror of an acting primary (`recoverseg`): the instance stops
//! serving as a primary (commits waiting on it fail), records its new role, finds where its
//! WAL and the primary's part ways, rewinds its storage there (or wipes it for a full copy),
//! and streams from the primary: Resynchronizing, then Synchronized once it has caught up.
//! Also the primary's side of that comparison, and replication positions for `state`.

use tracing::{info, Instrument};

use super::{role_file, Instance};
use crate::io::net::Connection;
use crate::model::catalog::Role;
use crate::protocol::recovery::{from_itself, Agreement, Decision, Recovery, WalSummary};
use crate::storage::WAL_SUMMARY_CHUNK;
use crate::wal::Lsn;
use crate::wire::{DbError, RejoinReport, ReplicationInfo, SegmentRequest, SegmentResponse};

/// Stops an instance from outside: once raised, the instance fails itself ("stopped by the
/// administrator") and serves nothing more.
#[derive(Clone)]
pub struct StopSignal(std::sync::Arc<crate::io::sync::Watch<bool>>);

impl Default for StopSignal {
    fn default() -> StopSignal {
        StopSignal(std::sync::Arc::new(crate::io::sync::Watch::new(false)))
    }
}

impl std::fmt::Debug for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StopSignal({})", self.0.get())
    }
}

impl StopSignal {
    pub fn raise(&self) {
        self.0.set(true);
    }
}

fn failed(msg: String) -> SegmentResponse {
    SegmentResponse::Error(DbError::Failed(msg))
}

impl Instance {
    /// Gathers what the [`Recovery`] machine asks for, in its order, and carries out its
    /// decision.
    pub(super) async fn rejoin(&self, primary: String, full: bool) -> SegmentResponse {
        if let Some(refusal) = from_itself(self.dbid(), &primary, &self.inner.cfg.listen_addr) {
            return failed(refusal);
        }
        // Ask the source first: refusing leaves this instance as it was.
        let wal_timeout = self.inner.cfg.wal_timeout;
        let mut conn = match Connection::connect(&primary, wal_timeout).await {
            Ok(conn) => conn,
            Err(e) => return failed(format!("cannot reach the acting primary {primary}: {e}")),
        };
        let recovery = Recovery {
            dbid: self.dbid(),
            primary: primary.clone(),
            full,
            local_flushed: self.inner.wal.flushed_lsn(),
            chunk: WAL_SUMMARY_CHUNK,
        };
        let (source, source_history) =
            match source_summary(&mut conn, &primary, recovery.local_flushed, wal_timeout).await {
                Ok(got) => got,
                Err(reason) => return failed(reason),
            };
        if let Err(refusal) = recovery.admit(self.system_id(), source_history) {
            return failed(refusal);
        }
        if let Err(e) = self.stop_acting_as_primary().await {
            return failed(self.storage_fault(&e));
        }
        let mut engine = self.inner.engine.lock().await;
        let (divergence, compare_bytes) = if full {
            (0, Recovery::compare_bytes(&source, 0))
        } else {
            match self
                .divergence(&recovery, &engine, &mut conn, &source)
                .await
            {
                Ok(found) => found,
                Err(reason) => return failed(reason),
            }
        };
        let cut_at = match recovery.decide(divergence) {
            Decision::Refuse(refusal) => return failed(refusal),
            decision => decision.cut_at().expect("only a refusal cuts nowhere"),
        };
        let rewind = if !full && self.inner.cfg.bugs.recovery_skips_rewind {
            engine.cut_wal_keeping_blocks(cut_at).await
        } else {
            engine.rewind_to(cut_at).await
        };
        let discarded = match rewind {
            Ok(n) => n,
            Err(e) => return failed(self.storage_fault(&e)),
        };
        drop(engine);
        if full {
            // A full copy starts over: the history is taken on afresh from the primary.
            if let Err(e) = self.set_system_id(None).await {
                return failed(self.storage_fault(&e));
            }
        }
        // The WAL now ends where the primary's history continues: only from here may this
        // directory stream (until now, a restart finds it "recovering" and waits).
        if let Err(e) = role_file::store(&*self.inner.disk, Role::Mirror).await {
            return failed(self.storage_fault(&e));
        }
        self.inner.state.lock().unwrap().recovering = false;
        info!(
            primary,
            divergence, discarded, compare_bytes, full, "rejoining as mirror"
        );
        let task = crate::io::runtime::spawn(self.clone().receive_loop(primary).in_current_span());
        if let Some(old) = self.inner.state.lock().unwrap().receiver.replace(task) {
            old.abort();
        }
        SegmentResponse::Rejoined(RejoinReport {
            divergence_lsn: divergence,
            discarded_bytes: discarded,
            compare_bytes,
            source_flushed: source.flushed,
        })
    }

    /// Stops acting as a primary: new work is refused, and commits waiting for a mirror wake
    /// up, see the role, and fail instead of being acknowledged. The new role is kept on disk
    /// as "recovering": if the recovery stops before its rewind is done (the source is lost, or
    /// this host crashes), the directory is not taken for a mirror that may stream from its own
    /// WAL end, whose tail the primary may never have had.
    async fn stop_acting_as_primary(&self) -> Result<(), crate::storage::StorageError> {
        {
            let mut state = self.inner.state.lock().unwrap();
            state.role = Role::Mirror;
            state.recovering = true;
            if let Some(receiver) = state.receiver.take() {
                receiver.abort();
            }
        }
        tracing::Span::current().record("role", "m");
        self.inner.sync.modify(|s| s.syncrep = false);
        role_file::store_recovering(&*self.inner.disk).await
    }

    /// Where this instance's WAL and the primary's (summed up in `source`) part ways, as a
    /// record boundary, and the bytes compared to find it; `Err` says why it could not be found.
    async fn divergence(
        &self,
        recovery: &Recovery,
        engine: &crate::storage::Engine,
        conn: &mut Connection,
        source: &WalSummary,
    ) -> Result<(Lsn, u64), String> {
        let primary = &recovery.primary;
        let (flushed, crcs) = engine
            .wal_summary(recovery.local_flushed)
            .map_err(|e| self.storage_fault(&e))?;
        let local = WalSummary { flushed, crcs };
        let (common, chunk_sent) = match recovery.agreement(source, &local) {
            Agreement::Common(common) => (common, 0),
            Agreement::CompareChunk { from, len } => {
                let req = SegmentRequest::ReadWal { from, len };
                let theirs = match conn.call(&req, self.inner.cfg.wal_timeout).await {
                    Ok(SegmentResponse::WalBytes(bytes)) => bytes,
                    other => {
                        return Err(format!(
                            "acting primary {primary} did not send WAL at {from}: {other:?}"
                        ))
                    }
                };
                let ours = engine
                    .wal_bytes(from, len)
                    .map_err(|e| self.storage_fault(&e))?;
                (recovery.refine(from, &ours, &theirs), theirs.len())
            }
        };
        let divergence = engine
            .record_boundary_before(common)
            .map_err(|e| self.storage_fault(&e))?;
        Ok((divergence, Recovery::compare_bytes(source, chunk_sent)))
    }

    /// Waits until the instance fails itself or an administrator stops it; returns why.
    pub(super) async fn failed_or_stopped(&self) -> String {
        let failed = self.inner.failure.wait_until(|f| f.is_some());
        let stopped = self.inner.cfg.stop.0.wait_until(|s| *s);
        tokio::select! {
            biased;
            reason = failed => reason.expect("waited for a failure"),
            _ = stopped => {
                let reason = "stopped by the administrator".to_string();
                self.fail(reason.clone());
                reason
            }
        }
    }

    pub(super) async fn wal_summary(&self, upto: Lsn) -> SegmentResponse {
        if let Some(refusal) = self.not_a_source() {
            return refusal;
        }
        // Only this primary's mirror asks: it is about to cut or wipe its WAL, so it is in
        // sync no more, and a probe now must not say it is (standard seed 311: a full copy
        // wiped the mirror, and the primary, still holding its last report, answered "in
        // sync" until the stream's timeout; the catalog recorded an empty mirror in sync).
        {
            let mut state = self.inner.state.lock().unwrap();
            if state.sender.pair.connected || state.sender.pair.caught_up {
                state.sender.pair.receiver_recovering();
                state.sender.last_disconnect = crate::io::runtime::Instant::now();
            }
        }
        let engine = self.inner.engine.lock().await;
        let flushed = self.inner.wal.flushed_lsn();
        match engine.wal_summary(upto) {
            Ok((_, crcs)) => SegmentResponse::WalSummary {
                flushed,
                crcs,
                system_id: self.system_id(),
            },
            Err(e) => failed(self.storage_fault(&e)),
        }
    }

    pub(super) async fn read_wal_for_rejoin(&self, from: Lsn, len: u64) -> SegmentResponse {
        if let Some(refusal) = self.not_a_source() {
            return refusal;
        }
        match self
            .inner
            .engine
            .lock()
            .await
            .wal_bytes(from, len.min(WAL_SUMMARY_CHUNK * 16))
        {
            Ok(bytes) => SegmentResponse::WalBytes(bytes),
            Err(e) => failed(self.storage_fault(&e)),
        }
    }

    /// A recovery copies its history from the acting primary only: a mirror's WAL (perhaps
    /// wiped by a recovery of its own that has not finished) is no source for another copy.
    fn not_a_source(&self) -> Option<SegmentResponse> {
        let state = self.inner.state.lock().unwrap();
        (state.role != Role::Primary || state.promoting).then(|| {
            failed(format!(
                "dbid {} is not an acting primary: a recovery takes its WAL from the acting \
                 primary only",
                self.dbid()
            ))
        })
    }

    pub(super) async fn replication_status(&self) -> SegmentResponse {
        let replay_lsn = self.inner.engine.lock().await.replay_lsn();
        let state = self.inner.state.lock().unwrap();
        if state.role == Role::Mirror {
            self.inner
                .cfg
                .observe
                .report(crate::model::observe::Fact::WalPositions {
                    content: self.inner.cfg.content,
                    dbid: self.dbid(),
                    flushed: self.inner.wal.flushed_lsn(),
                    replayed: replay_lsn,
                });
        }
        SegmentResponse::Replication(ReplicationInfo {
            role: state.role,
            flushed: self.inner.wal.flushed_lsn(),
            mirror_connected: state.role == Role::Primary && state.sender.pair.connected,
            mirror_caught_up: state.role == Role::Primary && self.mirror_in_sync(&state.sender),
            mirror_flushed: self.inner.sync.get().mirror_flushed,
            replay_lsn,
            recovering: state.recovering,
        })
    }
}

/// The acting primary's WAL summary up to `upto` and its WAL history (system identifier).
async fn source_summary(
    conn: &mut Connection,
    primary: &str,
    upto: Lsn,
    wal_timeout: std::time::Duration,
) -> Result<(WalSummary, Option<u64>), String> {
    match conn
        .call(&SegmentRequest::WalSummary { upto }, wal_timeout)
        .await
    {
        Ok(SegmentResponse::WalSummary {
            flushed,
            crcs,
            system_id,
        }) => Ok((WalSummary { flushed, crcs }, system_id)),
        Ok(SegmentResponse::Error(e)) => Err(format!("acting primary {primary} refused: {e}")),
        other => Err(format!(
            "acting primary {primary} did not send its WAL summary: {other:?}"
        )),
    }
}
