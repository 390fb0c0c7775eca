//! The coordinator's side of master mirroring: the standby verbs it answers, and the catalog
//! stream — a base backup when the standby has nothing, then the WAL recorded meanwhile, then
//! every flushed catalog record as it comes, driving the replication machine
//! ([`crate::protocol::replication`]) under the catalog's rules.

use tracing::{info, warn, Instrument};

use std::sync::Arc;

use super::link::{configured_standby, rules, StandbyLink};
use super::{backup_frames, STANDBY_WAL_TIMEOUT};
use crate::coordinator::{CatalogStore, CatalogStoreError};
use crate::io::net::{Connection, FrameReader, FrameWriter};
use crate::io::runtime::{self, timeout, JoinHandle};
use crate::model::bugs::PlantedBugs;
use crate::model::catalog::{Dbid, Mode, Role, SegmentConfig, Status};
use crate::protocol::replication::{Next, Outgoing};
use crate::wal::{Lsn, Wal};
use crate::wire::standby::{CatalogStream, StandbyReply, StandbyRequest};
use crate::wire::{ClientResponse, DbError, WalFeedback, WalMessage};

const MAX_CHUNK_BYTES: usize = 128 * 1024;

fn refused(msg: String) -> ClientResponse {
    ClientResponse::Error(DbError::Failed(msg))
}

/// Answers a standby verb sent to the active coordinator (`StartReplication` is [`stream`]).
pub async fn handle(
    store: &CatalogStore,
    listen_addr: &str,
    req: StandbyRequest,
) -> ClientResponse {
    match req {
        StandbyRequest::Register {
            coordinator,
            standby,
        } => register(store, coordinator, standby).await,
        StandbyRequest::Status => ClientResponse::Standby(StandbyReply::Status(
            store.mirroring_status().await,
        )),
        StandbyRequest::Activate => refused(format!(
            "the coordinator at {listen_addr} is already the active coordinator; activate-standby runs against the standby"
        )),
        StandbyRequest::StartReplication { .. } => {
            refused("a replication request must be the first on its connection".into())
        }
        StandbyRequest::Unregister { dbid } => unregister(store, listen_addr, dbid).await,
    }
}

/// `init-standby -r`: removes the standby `dbid` from the catalog, under a new epoch with its
/// history line. Its process and data directory are the caller's.
async fn unregister(store: &CatalogStore, listen_addr: &str, dbid: Dbid) -> ClientResponse {
    if let Some(reason) = store.deposed() {
        return refused(format!(
            "the coordinator at {listen_addr} is not the acting coordinator, and removes no standby: {reason}"
        ));
    }
    match store.remove_standby(dbid).await {
        Ok((catalog, row)) => {
            info!(dbid, host = %row.hostname, epoch = catalog.epoch, "standby coordinator removed");
            ClientResponse::Standby(StandbyReply::Unregistered {
                epoch: catalog.epoch,
                standby: row,
            })
        }
        Err(e) => refused(format!("the standby could not be removed: {e}")),
    }
}

/// `init-standby -s`: records the standby (content -1, role m) and, if the catalog lacks it,
/// the coordinator's own row, under a new epoch with their history lines.
async fn register(
    store: &CatalogStore,
    coordinator: SegmentConfig,
    standby: SegmentConfig,
) -> ClientResponse {
    let catalog = store.snapshot();
    if let Some(existing) = configured_standby(&catalog) {
        return refused(format!(
            "a standby coordinator is already configured (dbid {} on host {}, {}); only one standby is allowed",
            existing.dbid,
            existing.hostname,
            existing.endpoint()
        ));
    }
    if standby.endpoint() == coordinator.endpoint() {
        return refused(format!(
            "the standby would listen at {}, where the coordinator does",
            standby.endpoint()
        ));
    }
    let mut rows = Vec::new();
    let acting = catalog
        .segments
        .values()
        .find(|s| s.content == -1 && s.role == Role::Primary && s.status == Status::Up);
    let mut next_dbid = store.next_dbid();
    if acting.is_none() {
        // The coordinator keeps the dbid it was given unless a segment has it.
        let dbid = if catalog.segments.contains_key(&coordinator.dbid) {
            next_dbid
        } else {
            coordinator.dbid
        };
        next_dbid = next_dbid.max(dbid + 1);
        let row = SegmentConfig {
            dbid,
            content: -1,
            role: Role::Primary,
            preferred_role: Role::Primary,
            mode: Mode::NotSynced,
            status: Status::Up,
            ..coordinator
        };
        let desc = format!(
            "initstandby: record the coordinator as dbid {dbid} on host {}",
            row.hostname
        );
        rows.push((row, desc));
    }
    let row = SegmentConfig {
        dbid: next_dbid,
        content: -1,
        role: Role::Mirror,
        preferred_role: Role::Mirror,
        mode: Mode::Synced,
        status: Status::Up,
        ..standby
    };
    let desc = format!(
        "initstandby: add standby coordinator dbid {} on host {} ({})",
        row.dbid,
        row.hostname,
        row.endpoint()
    );
    rows.push((row.clone(), desc));
    match store.record_rows(&rows, false).await {
        Ok(catalog) => {
            info!(dbid = row.dbid, host = %row.hostname, epoch = catalog.epoch, "standby coordinator registered");
            ClientResponse::Standby(StandbyReply::Registered {
                epoch: catalog.epoch,
                standby: row,
            })
        }
        Err(e) => refused(format!("the standby could not be recorded: {e}")),
    }
}

/// Serves one catalog stream to the standby `dbid` until it breaks.
pub async fn stream(
    store: CatalogStore,
    mut conn: Connection,
    dbid: Dbid,
    from: Option<Lsn>,
    bugs: PlantedBugs,
) {
    let span = tracing::info_span!("walsender", standby_dbid = dbid);
    async move {
        let not_the_standby = not_the_standby(&store, dbid);
        let wal = store.wal().await;
        if let Some(reason) = not_the_standby.or_else(|| ahead(&wal, from)) {
            warn!(%reason, "standby replication refused");
            let _ = conn
                .send(&CatalogStream::Wal(WalMessage::Refused { reason }))
                .await;
            return;
        }
        let link = store.standby_link().clone();
        let generation = link.update(|t| t.connected(from.is_none()));
        // A removal committed since the look above (and so missed by its end of the streams)
        // is in the newest catalog.
        if let Some(reason) = not_named(store.latest_standby(), dbid) {
            warn!(%reason, "standby replication refused");
            let _ = conn
                .send(&CatalogStream::Wal(WalMessage::Refused {
                    reason: reason.clone(),
                }))
                .await;
            end_stream(&store, generation, reason);
            return;
        }
        let Some(sent) = starting_point(&store, &mut conn, generation, from).await else {
            return;
        };
        info!(from = sent, "standby connected: catching up");
        let Connection {
            reader, mut writer, ..
        } = conn;
        let feedback = spawn_feedback(link.clone(), generation, reader);
        let sender = Sender {
            store: &store,
            wal: &wal,
            link: &link,
            generation,
            bugs,
        };
        let reason = match sender.send(&mut writer, &feedback, sent).await {
            Some(r) => {
                feedback.abort();
                r
            }
            None => feedback
                .await
                .unwrap_or_else(|_| "the standby stream ended".into()),
        };
        end_stream(&store, generation, reason);
    }
    .instrument(span)
    .await
}

/// Why `dbid` may not stream the catalog: it is not the configured standby.
fn not_the_standby(store: &CatalogStore, dbid: Dbid) -> Option<String> {
    not_named(configured_standby(&store.snapshot()), dbid)
}

/// Why `dbid` may not stream the catalog whose configured standby is `standby`.
fn not_named(standby: Option<SegmentConfig>, dbid: Dbid) -> Option<String> {
    match standby {
        Some(row) if row.dbid == dbid => None,
        Some(row) => Some(format!(
            "dbid {dbid} is not the configured standby (that is dbid {})",
            row.dbid
        )),
        None => Some(format!(
            "no standby is configured; dbid {dbid} must be added by init-standby first"
        )),
    }
}

/// Why a standby asking from `from` may not stream: it is ahead of the coordinator.
fn ahead(wal: &Wal, from: Option<Lsn>) -> Option<String> {
    match from {
        Some(from) if from > wal.flushed_lsn() => Some(format!(
            "the standby asks for catalog WAL from {from}, ahead of the coordinator's flushed {}; it needs a new base backup",
            wal.flushed_lsn()
        )),
        _ => None,
    }
}

/// Where the stream of `generation` starts: at `from`, or, for a standby with nothing, at the
/// end of the base backup sent first. `None` when the stream ended (and was reported so).
async fn starting_point(
    store: &CatalogStore,
    conn: &mut Connection,
    generation: u64,
    from: Option<Lsn>,
) -> Option<Lsn> {
    if let Some(from) = from {
        return Some(from);
    }
    match store.base_backup().await {
        Ok(backup) => {
            let end = backup.wal_end;
            info!(
                wal_end = end,
                files = backup.files.len(),
                "sending a base backup of the catalog"
            );
            for frame in backup_frames(backup) {
                if let Err(e) = conn.send(&frame).await {
                    end_stream(
                        store,
                        generation,
                        format!("lost the standby while sending the base backup: {e}"),
                    );
                    return None;
                }
            }
            Some(end)
        }
        Err(e) => {
            end_stream(store, generation, format!("base backup failed: {e}"));
            None
        }
    }
}

/// Reads the standby's feedback into the link until it falls silent past the catalog's
/// `wal_timeout` or the connection breaks; returns why it stopped.
fn spawn_feedback(
    link: Arc<StandbyLink>,
    generation: u64,
    mut reader: FrameReader,
) -> JoinHandle<String> {
    let give_up_after = rules().give_up_after();
    runtime::spawn(
        async move {
            loop {
                match timeout(give_up_after, reader.recv::<WalFeedback>()).await {
                    Ok(Ok(msg)) => link.update(|t| t.feedback(generation, msg.flushed)),
                    Ok(Err(e)) => return format!("lost the connection to the standby: {e}"),
                    Err(_) => {
                        return format!("the standby sent nothing for {STANDBY_WAL_TIMEOUT:?}")
                    }
                }
            }
        }
        .in_current_span(),
    )
}

/// The catalog stream's sending side: the replication machine's moves, carried out.
struct Sender<'a> {
    store: &'a CatalogStore,
    wal: &'a Wal,
    link: &'a StandbyLink,
    generation: u64,
    bugs: PlantedBugs,
}

impl Sender<'_> {
    /// Sends the catalog WAL from `from` until the standby is given up (`feedback` ended:
    /// `None`) or the stream breaks (`Some(why)`).
    async fn send(
        &self,
        writer: &mut FrameWriter,
        feedback: &JoinHandle<String>,
        from: Lsn,
    ) -> Option<String> {
        let mut out = Outgoing::starting_at(from);
        loop {
            if feedback.is_finished() {
                return None;
            }
            if self.link.removed(self.generation) {
                return Some(
                    "the standby was removed from the catalog (init-standby -r); its stream ends"
                        .into(),
                );
            }
            let flushed = self.wal.flushed_lsn();
            // Planted bug: ship what is written but not yet durable here.
            let limit = if self.bugs.walsender_ships_unflushed_wal {
                self.wal.end_lsn()
            } else {
                flushed
            };
            let msg = match out.next(limit) {
                Next::Send { from, available } => {
                    let bytes = match self.read(from, available).await {
                        Ok(bytes) => bytes,
                        Err(e) => return Some(format!("cannot read the catalog WAL: {e}")),
                    };
                    let start = out.sending(bytes.len());
                    WalMessage::Data { start, bytes }
                }
                Next::Idle => {
                    let now = || runtime::unix_time_ms();
                    let generation = self.generation;
                    if self
                        .link
                        .update(|t| t.caught_up(generation, out.sent, now()))
                    {
                        info!(lsn = out.sent, "standby caught up: synchronized");
                    }
                    if self.more_came(&out).await {
                        continue;
                    }
                    WalMessage::Keepalive {
                        flushed,
                        epoch: self.store.epoch(),
                    }
                }
            };
            if let Err(e) = writer.send(&CatalogStream::Wal(msg)).await {
                return Some(format!("lost the connection to the standby: {e}"));
            }
        }
    }

    /// Reads WAL from `from` for sending, of the `available` bytes.
    async fn read(&self, from: Lsn, available: u64) -> Result<Vec<u8>, CatalogStoreError> {
        if self.bugs.walsender_ships_unflushed_wal {
            // Planted bug: read straight from the log, past its flushed position.
            let len = available.min(MAX_CHUNK_BYTES as Lsn) as usize;
            self.wal.read(from, len).map_err(Into::into)
        } else {
            self.store.read_wal(from, MAX_CHUNK_BYTES).await
        }
    }

    /// An idle sender waits for more WAL (at most a keepalive interval); whether some came.
    async fn more_came(&self, out: &Outgoing) -> bool {
        if self.bugs.walsender_ships_unflushed_wal {
            // The bug's sender watches the WAL's end, not its flushed position.
            runtime::sleep(std::time::Duration::from_millis(1)).await;
            out.more_than_sent(self.wal.end_lsn())
        } else {
            let more = self.wal.wait_flushed_beyond(out.sent);
            let _ = timeout(rules().keepalive_every(), more).await;
            out.more_than_sent(self.wal.flushed_lsn())
        }
    }
}

fn end_stream(store: &CatalogStore, generation: u64, reason: String) {
    let now = runtime::unix_time_ms();
    if store
        .standby_link()
        .update(|t| t.disconnected(generation, reason.clone(), now))
    {
        warn!(%reason, "standby not synchronized");
    } else {
        info!(%reason, "standby stream ended");
    }
}
