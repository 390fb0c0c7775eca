//! The coordinator's side of master mirroring: the standby verbs it answers, and the catalog
//! stream — a base backup when the standby has nothing, then the WAL recorded meanwhile, then
//! every flushed catalog record as it comes.

use tracing::{info, warn, Instrument};

use super::link::configured_standby;
use super::{backup_frames, CatalogStream, StandbyReply, StandbyRequest, STANDBY_WAL_TIMEOUT};
use crate::coordinator::CatalogStore;
use crate::io::net::Connection;
use crate::io::runtime::{self, timeout};
use crate::model::bugs::PlantedBugs;
use crate::model::catalog::{Dbid, Mode, Role, SegmentConfig, Status};
use crate::wal::Lsn;
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
        let link = store.standby_link().clone();
        let refusal = match configured_standby(&store.snapshot()) {
            Some(row) if row.dbid == dbid => None,
            Some(row) => Some(format!(
                "dbid {dbid} is not the configured standby (that is dbid {})",
                row.dbid
            )),
            None => Some(format!(
                "no standby is configured; dbid {dbid} must be added by init-standby first"
            )),
        };
        let wal = store.wal().await;
        let refusal = refusal.or_else(|| match from {
            Some(from) if from > wal.flushed_lsn() => Some(format!(
                "the standby asks for catalog WAL from {from}, ahead of the coordinator's flushed {}; it needs a new base backup",
                wal.flushed_lsn()
            )),
            _ => None,
        });
        if let Some(reason) = refusal {
            warn!(%reason, "standby replication refused");
            let _ = conn
                .send(&CatalogStream::Wal(WalMessage::Refused { reason }))
                .await;
            return;
        }
        let generation = link.update(|t| t.connected(from.is_none()));
        let mut sent = match from {
            Some(from) => from,
            None => match store.base_backup().await {
                Ok(backup) => {
                    let end = backup.wal_end;
                    info!(wal_end = end, files = backup.files.len(), "sending a base backup of the catalog");
                    for frame in backup_frames(backup) {
                        if let Err(e) = conn.send(&frame).await {
                            end_stream(&store, generation, format!("lost the standby while sending the base backup: {e}"));
                            return;
                        }
                    }
                    end
                }
                Err(e) => {
                    end_stream(&store, generation, format!("base backup failed: {e}"));
                    return;
                }
            },
        };
        info!(from = sent, "standby connected: catching up");
        let Connection {
            mut reader,
            mut writer,
        } = conn;
        let feedback = {
            let link = link.clone();
            runtime::spawn(
                async move {
                    loop {
                        match timeout(STANDBY_WAL_TIMEOUT, reader.recv::<WalFeedback>()).await {
                            Ok(Ok(msg)) => link.update(|t| t.feedback(generation, msg.flushed)),
                            Ok(Err(e)) => return format!("lost the connection to the standby: {e}"),
                            Err(_) => {
                                return format!(
                                    "the standby sent nothing for {STANDBY_WAL_TIMEOUT:?}"
                                )
                            }
                        }
                    }
                }
                .in_current_span(),
            )
        };
        let keepalive = STANDBY_WAL_TIMEOUT / 3;
        let reason = loop {
            if feedback.is_finished() {
                break None;
            }
            let flushed = wal.flushed_lsn();
            // Planted bug: ship what is written but not yet durable here.
            let limit = if bugs.walsender_ships_unflushed_wal {
                wal.end_lsn()
            } else {
                flushed
            };
            let msg = if sent < limit {
                let read = if bugs.walsender_ships_unflushed_wal {
                    let len = (limit - sent).min(MAX_CHUNK_BYTES as Lsn) as usize;
                    wal.read(sent, len).map_err(Into::into)
                } else {
                    store.read_wal(sent, MAX_CHUNK_BYTES).await
                };
                let bytes = match read {
                    Ok(bytes) => bytes,
                    Err(e) => break Some(format!("cannot read the catalog WAL: {e}")),
                };
                let start = sent;
                sent += bytes.len() as Lsn;
                WalMessage::Data { start, bytes }
            } else {
                if link.update(|t| t.caught_up(generation, sent, runtime::unix_time_ms())) {
                    info!(lsn = sent, "standby caught up: synchronized");
                }
                if bugs.walsender_ships_unflushed_wal {
                    // The bug's sender watches the WAL's end, not its flushed position.
                    runtime::sleep(std::time::Duration::from_millis(1)).await;
                    if wal.end_lsn() > sent {
                        continue;
                    }
                } else {
                    let _ = timeout(keepalive, wal.wait_flushed_beyond(sent)).await;
                    if wal.flushed_lsn() > sent {
                        continue;
                    }
                }
                WalMessage::Keepalive {
                    flushed,
                    epoch: store.epoch(),
                }
            };
            if let Err(e) = writer.send(&CatalogStream::Wal(msg)).await {
                break Some(format!("lost the connection to the standby: {e}"));
            }
        };
        let reason = match reason {
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
