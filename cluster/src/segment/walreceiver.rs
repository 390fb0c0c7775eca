//! The mirror's side of replication: connects to the primary, writes and flushes the WAL it
//! receives, reports its flushed position (the primary's commits wait on it), and replays.
//! Also promotion: the mirror becomes the primary.

use std::time::Duration;

use tracing::{info, warn, Instrument};

use super::{role_file, Instance};
use crate::io::net::{Backoff, Connection, NetError};
use crate::io::points::FaultPoint;
use crate::io::runtime::{self, timeout};
use crate::model::catalog::Role;
use crate::model::observe::Fact;
use crate::storage::StorageError;
use crate::wal::Lsn;
use crate::wire::{SegmentRequest, SegmentResponse, WalFeedback, WalMessage};

enum StreamEnd {
    Net(NetError),
    Refused(String),
    Storage(StorageError),
}

impl Instance {
    pub(super) fn start_receiver(&self) {
        let Some(primary) = self.inner.cfg.peer_addr.clone() else {
            return;
        };
        let task = runtime::spawn(self.clone().receive_loop(primary).in_current_span());
        if let Some(old) = self.inner.state.lock().unwrap().receiver.replace(task) {
            old.abort();
        }
    }

    pub(super) async fn receive_loop(self, primary: String) {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            backoff.wait().await;
            match self.receive_stream(&primary).await {
                StreamEnd::Storage(e) => {
                    self.storage_fault(&e);
                    return;
                }
                StreamEnd::Refused(reason) => {
                    warn!(%reason, "primary refused replication");
                    backoff.failed();
                    runtime::sleep(Duration::from_secs(5)).await;
                }
                StreamEnd::Net(e) => {
                    tracing::debug!(error = %e, "replication stream ended");
                    backoff.failed();
                }
            }
        }
    }

    async fn receive_stream(&self, primary: &str) -> StreamEnd {
        let wal_timeout = self.inner.cfg.wal_timeout;
        let mut conn = match Connection::connect(primary, wal_timeout).await {
            Ok(conn) => conn,
            Err(e) => return StreamEnd::Net(e),
        };
        // WAL, and the epoch its stream carries, come only from another segment instance.
        match conn.peer_identity() {
            crate::io::auth::PeerIdentity::Segment { dbid } if dbid != self.dbid() => {}
            other => {
                return StreamEnd::Refused(format!(
                    "{primary} answers as {other}, not as this instance's primary: no WAL is taken from it"
                ))
            }
        }
        let from = self.inner.wal.flushed_lsn();
        if let Err(e) = conn
            .send(&SegmentRequest::StartReplication {
                mirror_dbid: self.dbid(),
                from,
                system_id: self.system_id(),
            })
            .await
        {
            return StreamEnd::Net(e);
        }
        info!(primary, from, "streaming from primary");
        runtime::fault_point(FaultPoint::RecoveryReconnected).await;
        let give_up_after = self.replication_rules().give_up_after();
        loop {
            let msg: WalMessage = match timeout(give_up_after, conn.recv()).await {
                Ok(Ok(msg)) => msg,
                Ok(Err(e)) => return StreamEnd::Net(e),
                Err(_) => {
                    return StreamEnd::Net(NetError::Timeout {
                        peer: primary.to_string(),
                        after: give_up_after,
                    })
                }
            };
            let feedback = match msg {
                WalMessage::Data { start, bytes }
                    if self.inner.cfg.bugs.mirror_acks_large_write_before_fsync
                        && bytes.len() >= crate::model::bugs::LARGE_WAL_MESSAGE =>
                {
                    // Planted bug: report a large message flushed once it is written, then
                    // flush it.
                    let end = start + bytes.len() as Lsn;
                    if let Err(e) = self.inner.engine.lock().await.receive_wal(start, &bytes) {
                        return StreamEnd::Storage(e);
                    }
                    let early = WalFeedback {
                        flushed: end,
                        replayed: self.inner.engine.lock().await.replay_lsn(),
                    };
                    if let Err(e) = conn.send(&early).await {
                        return StreamEnd::Net(e);
                    }
                    runtime::fault_point(FaultPoint::FlushFeedbackSent).await;
                    match self.flush_and_replay(end).await {
                        Ok(feedback) => feedback,
                        Err(e) => return StreamEnd::Storage(e),
                    }
                }
                WalMessage::Data { start, bytes } => {
                    let feedback = match self.write_received(start, &bytes).await {
                        Ok(feedback) => feedback,
                        Err(e) => return StreamEnd::Storage(e),
                    };
                    if let Err(e) = conn.send(&feedback).await {
                        return StreamEnd::Net(e);
                    }
                    runtime::fault_point(FaultPoint::FlushFeedbackSent).await;
                    continue;
                }
                WalMessage::Start { system_id, epoch } => {
                    match self.take_history(system_id).await {
                        Ok(Some(refusal)) => return StreamEnd::Refused(refusal),
                        Ok(None) => {}
                        Err(e) => return StreamEnd::Storage(e),
                    }
                    if let Err(e) = self.follow(epoch).await {
                        return StreamEnd::Storage(e);
                    }
                    continue;
                }
                WalMessage::Keepalive { epoch, .. } => {
                    if let Err(e) = self.follow(epoch).await {
                        return StreamEnd::Storage(e);
                    }
                    WalFeedback {
                        flushed: self.inner.wal.flushed_lsn(),
                        replayed: self.inner.engine.lock().await.replay_lsn(),
                    }
                }
                WalMessage::Refused { reason } => return StreamEnd::Refused(reason),
            };
            self.inner.cfg.observe.report(Fact::WalPositions {
                content: self.inner.cfg.content,
                dbid: self.dbid(),
                flushed: feedback.flushed,
                replayed: feedback.replayed,
            });
            if let Err(e) = conn.send(&feedback).await {
                return StreamEnd::Net(e);
            }
        }
    }

    /// Checks the primary's WAL history against this instance's: a new mirror (no history,
    /// no WAL) takes it on, durably, before it writes a byte of it; another history is a
    /// refusal (`Some(why)`).
    async fn take_history(&self, system_id: u64) -> Result<Option<String>, StorageError> {
        match self.system_id() {
            Some(ours) if ours == system_id => Ok(None),
            Some(ours) => Ok(Some(format!(
                "the primary holds another WAL history (system identifier {system_id:016x}, this instance's is {ours:016x}); recover this instance with a full copy (recoverseg -F)"
            ))),
            None if self.inner.wal.flushed_lsn() > 0 => Ok(Some(
                "this instance has WAL but no system identifier; recover it with a full copy (recoverseg -F)".into(),
            )),
            None => {
                self.set_system_id(Some(system_id)).await?;
                info!(system_id = format!("{system_id:016x}"), "took on the primary's WAL history");
                Ok(None)
            }
        }
    }

    /// Write, flush, then report: the primary's commit waits on the flushed position we send,
    /// so it must never run ahead of what is durable here.
    async fn write_received(&self, start: Lsn, bytes: &[u8]) -> Result<WalFeedback, StorageError> {
        let end = start + bytes.len() as Lsn;
        self.inner.engine.lock().await.receive_wal(start, bytes)?;
        let flushed = if self.inner.cfg.bugs.mirror_acks_unflushed_wal {
            // Planted bug: report this message as flushed, having flushed only what came
            // before it.
            self.inner.wal.flush_to(start).await?;
            end
        } else {
            self.inner.wal.flush_to(end).await?
        };
        runtime::fault_point(FaultPoint::FsyncBeforeReplay).await;
        let replayed = self.inner.engine.lock().await.replay()?;
        Ok(WalFeedback { flushed, replayed })
    }

    /// Flushes received WAL up to `end` and replays it (planted bug
    /// `mirror-acks-large-write-before-fsync`, after its early report).
    async fn flush_and_replay(&self, end: Lsn) -> Result<WalFeedback, StorageError> {
        let flushed = self.inner.wal.flush_to(end).await?;
        runtime::fault_point(FaultPoint::FsyncBeforeReplay).await;
        let replayed = self.inner.engine.lock().await.replay()?;
        Ok(WalFeedback { flushed, replayed })
    }

    /// PROMOTE from the prober. Only a mirror acts on it; anywhere else it is ignored, so a
    /// repeated request is harmless.
    pub(super) async fn promote(&self) -> SegmentResponse {
        {
            // Checked and claimed at once: two requests must not both pass while the first
            // is still finishing recovery.
            let mut state = self.inner.state.lock().unwrap();
            if state.recovering && state.role == Role::Mirror {
                drop(state);
                warn!("refusing promote: a recovery as a mirror has not finished its rewind");
                return SegmentResponse::Error(crate::wire::DbError::Failed(
                    "cannot promote: a recovery as a mirror began here and its rewind is not \
                     durable, so this directory's WAL may lack records its primary \
                     acknowledged (recover it again with recoverseg)"
                        .to_string(),
                ));
            }
            if state.role != Role::Mirror || state.promoting {
                let under_way = state.promoting;
                drop(state);
                if under_way {
                    info!("ignoring promote request: a promotion is under way");
                } else {
                    info!("ignoring promote request: not a mirror");
                }
                return SegmentResponse::Ok;
            }
            state.promoting = true;
            if let Some(receiver) = state.receiver.take() {
                receiver.abort();
            }
        }
        self.inner.cfg.observe.report(Fact::PromotionBegun {
            content: self.inner.cfg.content,
            dbid: self.dbid(),
        });
        match self.finish_recovery().await {
            Ok(end) => {
                let mut state = self.inner.state.lock().unwrap();
                state.role = Role::Primary;
                state.promoting = false;
                tracing::Span::current().record("role", "p");
                // The new primary has no mirror yet: it does not wait for one.
                self.inner.sync.modify(|s| s.syncrep = false);
                drop(state);
                // The instance's ids ride on the line itself, for readers that see no spans.
                info!(
                    dbid = self.dbid(),
                    content = self.inner.cfg.content,
                    end_lsn = end,
                    "promoted: now the primary"
                );
                self.inner.cfg.observe.report(Fact::Promoted {
                    content: self.inner.cfg.content,
                    dbid: self.dbid(),
                    epoch: self.epoch(),
                    end_lsn: end,
                });
                SegmentResponse::Ok
            }
            Err(e) => {
                self.inner.state.lock().unwrap().promoting = false;
                let reason = self.storage_fault(&e);
                SegmentResponse::Error(crate::wire::DbError::Failed(reason))
            }
        }
    }

    /// Replays everything received, cuts any torn tail, and records the new role durably before
    /// accepting a single write as primary.
    async fn finish_recovery(&self) -> Result<Lsn, StorageError> {
        let mut engine = self.inner.engine.lock().await;
        let end = if self.inner.cfg.bugs.promotion_ends_at_last_commit {
            // Planted bug: whatever follows the last commit is cut, a prepare included.
            engine.end_at_last_commit()?
        } else {
            engine.end_of_valid_wal()?
        };
        self.inner.wal.flush_to(end).await?;
        runtime::fault_point(FaultPoint::PromotionMidReplay).await;
        engine.replay()?;
        role_file::store(&*self.inner.disk, Role::Primary).await?;
        Ok(end)
    }
}
