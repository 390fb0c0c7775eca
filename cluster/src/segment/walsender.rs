//! The primary's side of replication: streams flushed WAL to the mirror and tracks how far the
//! mirror has flushed, driving the replication machine ([`crate::protocol::replication`]) under
//! the segment's rules. The mirror counts as in sync (streaming) once it has caught up with the
//! primary's flushed WAL; from then on, in synchronous mode, no commit is acknowledged before
//! the mirror has it.

use tracing::{info, warn, Instrument};

use super::Instance;
use crate::io::net::{Connection, FrameWriter};
use crate::io::runtime::{self, timeout, Instant, JoinHandle};
use crate::model::catalog::{Dbid, Role};
use crate::model::observe::Fact;
use crate::protocol::replication::{Next, Outgoing, Rules};
use crate::wal::Lsn;
use crate::wire::{WalFeedback, WalMessage};

const MAX_CHUNK_BYTES: usize = 128 * 1024;

impl Instance {
    pub(super) async fn stream_wal(
        self,
        mut conn: Connection,
        mirror_dbid: Dbid,
        from: Lsn,
        mirror_system_id: Option<u64>,
    ) {
        let flushed = self.inner.wal.flushed_lsn();
        let system_id = self.system_id();
        let refusal = if self.role() != Role::Primary {
            Some(format!("dbid {} is not a primary", self.dbid()))
        } else if from > flushed {
            Some(format!("mirror dbid {mirror_dbid} asks for WAL from {from}, ahead of the primary's flushed {flushed}: it needs recovery"))
        } else {
            history_refusal(self.dbid(), system_id, mirror_dbid, mirror_system_id, from)
        };
        if let Some(reason) = refusal {
            warn!(mirror_dbid, %reason, "replication refused");
            let _ = conn.send(&WalMessage::Refused { reason }).await;
            return;
        }
        let rules = self.replication_rules();
        let generation = self.inner.state.lock().unwrap().sender.pair.connect(&rules);
        self.inner.sync.modify(|s| s.mirror_flushed = from);
        info!(mirror_dbid, from, "mirror connected: catching up");
        let (peer, identity) = (conn.peer().to_string(), conn.peer_identity());
        let Connection {
            mut reader,
            mut writer,
            ..
        } = conn;
        let start = WalMessage::Start {
            system_id: system_id.expect("checked: a primary that streams has a history"),
            epoch: self.epoch(),
        };
        if writer.send(&start).await.is_err() {
            let mut state = self.inner.state.lock().unwrap();
            if state.sender.pair.disconnect(generation) {
                state.sender.last_disconnect = Instant::now();
            }
            return;
        }
        let feedback = {
            let inst = self.clone();
            let give_up_after = rules.give_up_after();
            runtime::spawn(
                async move {
                    loop {
                        let msg: WalFeedback = match timeout(give_up_after, reader.recv()).await {
                            Ok(Ok(msg)) => msg,
                            _ => return,
                        };
                        // A mirror flushes only what this primary wrote: a claim past its WAL's
                        // end would release commits the mirror does not hold. The stream ends.
                        let end = inst.inner.wal.end_lsn();
                        if msg.flushed > end {
                            warn!(
                                %peer,
                                %identity,
                                flushed = msg.flushed,
                                end,
                                "mirror feedback claims WAL past this primary's end: ignored, the stream ends"
                            );
                            return;
                        }
                        inst.mirror_flushed(&rules, generation, msg.flushed);
                    }
                }
                .in_current_span(),
            )
        };
        self.send_wal(&mut writer, &feedback, &rules, from).await;
        feedback.abort();
        let mut state = self.inner.state.lock().unwrap();
        if state.sender.pair.disconnect(generation) {
            state.sender.last_disconnect = Instant::now();
            info!(mirror_dbid, "mirror disconnected");
            if self.inner.cfg.bugs.syncrep_off_without_marking_mirror_down {
                // Planted bug: the real primary keeps waiting until the prober marks the mirror
                // down in the catalog; only then may it acknowledge commits the mirror lacks.
                self.inner.sync.modify(|s| s.syncrep = false);
            }
        }
    }

    /// Sends flushed WAL from `from`, and keepalives while there is none, until the mirror
    /// is given up (`feedback` ended), the connection breaks or the WAL cannot be read.
    async fn send_wal(
        &self,
        writer: &mut FrameWriter,
        feedback: &JoinHandle<()>,
        rules: &Rules,
        from: Lsn,
    ) {
        let mut out = Outgoing::starting_at(from);
        loop {
            if feedback.is_finished() {
                return;
            }
            let flushed = self.inner.wal.flushed_lsn();
            let msg = match out.next(flushed) {
                Next::Send { from, .. } => {
                    let read = self
                        .inner
                        .engine
                        .lock()
                        .await
                        .read_wal(from, MAX_CHUNK_BYTES);
                    let bytes = match read {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            self.storage_fault(&e);
                            return;
                        }
                    };
                    let start = out.sending(bytes.len());
                    WalMessage::Data { start, bytes }
                }
                Next::Idle => {
                    let more = self.inner.wal.wait_flushed_beyond(out.sent);
                    let _ = timeout(rules.keepalive_every(), more).await;
                    if out.more_than_sent(self.inner.wal.flushed_lsn()) {
                        continue;
                    }
                    // The WAL may have been cut meanwhile (a demotion's rewind): never claim
                    // more than is flushed now.
                    WalMessage::Keepalive {
                        flushed: flushed.min(self.inner.wal.flushed_lsn()),
                        epoch: self.epoch(),
                    }
                }
            };
            if self.role() != Role::Primary {
                // Demoted while waiting: a mirror ships nothing to its former mirror.
                return;
            }
            let end = match &msg {
                WalMessage::Data { start, bytes } => start + bytes.len() as Lsn,
                WalMessage::Keepalive { flushed, .. } => *flushed,
                _ => out.sent,
            };
            self.inner.cfg.observe.report(Fact::WalShipped {
                content: self.inner.cfg.content,
                dbid: self.dbid(),
                end,
            });
            if writer.send(&msg).await.is_err() {
                return;
            }
        }
    }

    fn mirror_flushed(&self, rules: &Rules, generation: u64, lsn: Lsn) {
        let mut state = self.inner.state.lock().unwrap();
        if !state.sender.pair.current(generation) {
            return;
        }
        let primary_flushed = self.inner.wal.flushed_lsn();
        if state
            .sender
            .pair
            .feedback(rules, generation, lsn, primary_flushed)
        {
            info!(lsn, "mirror caught up: streaming, in sync");
        }
        drop(state);
        self.inner
            .sync
            .modify(|s| s.mirror_flushed = s.mirror_flushed.max(lsn));
    }
}

/// Why a mirror may not stream from a primary of history `ours`: it holds another history, or
/// none but asks from past the start; `None` when it may.
fn history_refusal(
    dbid: Dbid,
    ours: Option<u64>,
    mirror_dbid: Dbid,
    theirs: Option<u64>,
    from: Lsn,
) -> Option<String> {
    match (ours, theirs) {
        (None, _) => Some(format!(
            "dbid {dbid} has no WAL history (system identifier) to stream"
        )),
        (Some(a), Some(b)) if a != b => Some(format!(
            "mirror dbid {mirror_dbid} holds another WAL history (system identifier {b:016x}, the primary's is {a:016x}): it shares nothing with this primary; recover it with a full copy (recoverseg -F)"
        )),
        (Some(_), None) if from > 0 => Some(format!(
            "mirror dbid {mirror_dbid} has WAL up to {from} but no system identifier; recover it with a full copy (recoverseg -F)"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::history_refusal;

    #[test]
    fn only_a_mirror_of_the_same_history_or_a_new_one_from_the_start_may_stream() {
        assert_eq!(history_refusal(2, Some(7), 3, Some(7), 900), None);
        assert_eq!(history_refusal(2, Some(7), 3, None, 0), None);
        let other = history_refusal(2, Some(7), 3, Some(8), 900).unwrap();
        assert!(
            other.contains("another WAL history") && other.contains("-F"),
            "{other}"
        );
        assert!(history_refusal(2, Some(7), 3, None, 900).is_some());
        assert!(history_refusal(2, None, 3, None, 0).is_some());
    }
}
