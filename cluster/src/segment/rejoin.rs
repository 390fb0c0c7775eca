//! Recovery of an instance as the mirror of an acting primary (`recoverseg`): the instance stops
//! serving as a primary (commits waiting on it fail), records its new role, finds where its
//! WAL and the primary's part ways, rewinds its storage there (or wipes it for a full copy),
//! and streams from the primary: Resynchronizing, then Synchronized once it has caught up.
//! Also the primary's side of that comparison, and replication positions for `state`.

use tracing::{info, Instrument};

use super::{role_file, Instance};
use crate::io::net::Connection;
use crate::model::catalog::Role;
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
    pub(super) async fn rejoin(&self, primary: String, full: bool) -> SegmentResponse {
        if primary == self.inner.cfg.listen_addr {
            return failed(format!(
                "dbid {} may not be recovered from itself",
                self.dbid()
            ));
        }
        // Ask the source first: refusing leaves this instance as it was.
        let wal_timeout = self.inner.cfg.wal_timeout;
        let mut conn = match Connection::connect(&primary, wal_timeout).await {
            Ok(conn) => conn,
            Err(e) => return failed(format!("cannot reach the acting primary {primary}: {e}")),
        };
        let local_flushed = self.inner.wal.flushed_lsn();
        let (source_flushed, source_crcs, source_history) = match conn
            .call(
                &SegmentRequest::WalSummary {
                    upto: local_flushed,
                },
                wal_timeout,
            )
            .await
        {
            Ok(SegmentResponse::WalSummary {
                flushed,
                crcs,
                system_id,
            }) => (flushed, crcs, system_id),
            Ok(SegmentResponse::Error(e)) => {
                return failed(format!("acting primary {primary} refused: {e}"))
            }
            other => {
                return failed(format!(
                    "acting primary {primary} did not send its WAL summary: {other:?}"
                ))
            }
        };
        if !full {
            if let Some(refusal) =
                incremental_refusal(self.dbid(), self.system_id(), &primary, source_history)
            {
                return failed(refusal);
            }
        }
        // Stop acting as a primary: new work is refused, and commits waiting for a mirror
        // wake up, see the role, and fail instead of being acknowledged.
        {
            let mut state = self.inner.state.lock().unwrap();
            state.role = Role::Mirror;
            if let Some(receiver) = state.receiver.take() {
                receiver.abort();
            }
        }
        tracing::Span::current().record("role", "m");
        self.inner.sync.modify(|s| s.syncrep = false);
        if let Err(e) = role_file::store(&*self.inner.disk, Role::Mirror).await {
            return failed(self.storage_fault(&e));
        }
        let mut engine = self.inner.engine.lock().await;
        let mut compare_bytes = source_crcs.len() as u64 * 4;
        let divergence = if full {
            0
        } else {
            let (local_flushed, local_crcs) = match engine.wal_summary(local_flushed) {
                Ok(s) => s,
                Err(e) => return failed(self.storage_fault(&e)),
            };
            let same_chunks = source_crcs
                .iter()
                .zip(&local_crcs)
                .take_while(|(a, b)| a == b)
                .count() as u64;
            let both = source_flushed.min(local_flushed);
            let mut common = (same_chunks * WAL_SUMMARY_CHUNK).min(both);
            if common < both {
                let req = SegmentRequest::ReadWal {
                    from: common,
                    len: WAL_SUMMARY_CHUNK,
                };
                let theirs = match conn.call(&req, wal_timeout).await {
                    Ok(SegmentResponse::WalBytes(bytes)) => bytes,
                    other => {
                        return failed(format!(
                            "acting primary {primary} did not send WAL at {common}: {other:?}"
                        ))
                    }
                };
                compare_bytes += theirs.len() as u64;
                let ours = match engine.wal_bytes(common, WAL_SUMMARY_CHUNK) {
                    Ok(b) => b,
                    Err(e) => return failed(self.storage_fault(&e)),
                };
                common += ours.iter().zip(&theirs).take_while(|(a, b)| a == b).count() as Lsn;
            }
            match engine.record_boundary_before(common) {
                Ok(lsn) => lsn,
                Err(e) => return failed(self.storage_fault(&e)),
            }
        };
        if !full && divergence == 0 && local_flushed > 0 {
            // Same history, yet not one record in common: rewinding would discard everything
            // this instance holds, not a diverged tail.
            return failed(format!(
                "dbid {} shares no WAL with the acting primary {primary} ({local_flushed} bytes                  of its own would be discarded); incremental recovery refused; a full copy                  (recoverseg -F) replaces it",
                self.dbid()
            ));
        }
        let rewind = if !full && self.inner.cfg.bugs.recovery_skips_rewind {
            engine.cut_wal_keeping_blocks(divergence).await
        } else {
            engine.rewind_to(divergence).await
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
            source_flushed,
        })
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

    pub(super) async fn replication_status(&self) -> SegmentResponse {
        let replay_lsn = self.inner.engine.lock().await.replay_lsn();
        let state = self.inner.state.lock().unwrap();
        SegmentResponse::Replication(ReplicationInfo {
            role: state.role,
            flushed: self.inner.wal.flushed_lsn(),
            mirror_connected: state.role == Role::Primary && state.sender.connected,
            mirror_caught_up: state.role == Role::Primary && self.mirror_in_sync(&state.sender),
            mirror_flushed: self.inner.sync.get().mirror_flushed,
            replay_lsn,
        })
    }
}

/// Why incremental recovery may not rewind dbid `dbid` (history `ours`) onto the acting
/// primary at `primary` (history `theirs`); `None` when it may.
///
/// The rule: both must hold the same WAL history (system identifier). A rewind keeps the WAL
/// the two share and discards only this instance's diverged tail; two histories made apart (a
/// primary that started again on an empty directory and began its own, say) share nothing,
/// and rewinding one onto the other would discard everything it holds. The identifier is
/// exact where a rule on checkpoints is not: a tail may hold a checkpoint record legitimately
/// (one written just before a failover), and a foreign history may have checkpoints where
/// this one has.
fn incremental_refusal(
    dbid: crate::model::catalog::Dbid,
    ours: Option<u64>,
    primary: &str,
    theirs: Option<u64>,
) -> Option<String> {
    match (ours, theirs) {
        (Some(a), Some(b)) if a == b => None,
        (None, _) => None,
        (Some(a), b) => Some(format!(
            "dbid {dbid} holds another WAL history than the acting primary {primary} (system              identifier {a:016x}, the primary's {}): an incremental rewind would discard all of              it, not a diverged tail; refused. A full copy (recoverseg -F) replaces it with the              primary's",
            b.map(|b| format!("{b:016x}"))
                .unwrap_or_else(|| "none".into())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::incremental_refusal;

    #[test]
    fn an_incremental_rewind_needs_the_same_history() {
        assert_eq!(incremental_refusal(2, Some(5), "p:1", Some(5)), None);
        assert_eq!(
            incremental_refusal(2, None, "p:1", Some(5)),
            None,
            "a new mirror has no history to lose"
        );
        let refusal = incremental_refusal(2, Some(5), "p:1", Some(6)).unwrap();
        assert!(
            refusal.contains("another WAL history") && refusal.contains("-F"),
            "{refusal}"
        );
        assert!(incremental_refusal(2, Some(5), "p:1", None).is_some());
    }
}
