//! [`Wal`]: appends to `pg_wal/wal` and group commit.
//!
//! Appends are plain writes into the page cache under a short std mutex. Durability is bought
//! by [`Wal::flush_to`]: one `fsync` at a time, each covering everything written before it
//! started, so commits that arrive while an `fsync` is in flight share the next one.

use std::sync::{Arc, Mutex};

use crate::io::points::FaultPoint;
use crate::io::runtime;
use crate::io::sync::Watch;

use super::StorageError;
use crate::io::Disk;

use super::Lsn;

/// The directory holding the WAL.
pub const WAL_DIR: &str = "pg_wal";
/// The WAL: one file, whose byte offsets are LSNs.
pub const WAL_PATH: &str = "pg_wal/wal";

#[derive(Debug)]
struct WalState {
    /// Bytes written (the next append's LSN).
    end: Lsn,
    /// Bytes known durable.
    flushed: Lsn,
    /// While an `fsync` is in flight: the end it covers, lowered by any truncation meanwhile,
    /// so the flush never claims bytes that were cut and rewritten after it started.
    syncing_upto: Option<Lsn>,
    /// Set when an `fsync` failed. The kernel may have dropped the unsynced pages, so a later
    /// `fsync` that succeeds proves nothing; every later flush fails (the instance must restart
    /// and recover from what is really on disk).
    failed: Option<String>,
}

impl WalState {
    fn check(&self) {
        debug_assert!(
            self.flushed <= self.end,
            "wal flushed beyond its end: {self:?}"
        );
    }
}

/// The shared WAL handle. Cheap to share as `Arc<Wal>`; flushing needs no engine lock.
pub struct Wal {
    disk: Arc<dyn Disk>,
    state: Mutex<WalState>,
    /// One `fsync` at a time; waiters re-check after taking it and usually find their LSN
    /// already covered.
    sync_lock: tokio::sync::Mutex<()>,
    flushed_tx: Watch<Lsn>,
    /// Planted bug (off by default): a flush claims the end as it is when the fsync returns.
    covers_later_appends: bool,
    /// Planted bug (off by default): a failed `fsync` is retried, and the flush carries on
    /// when the retry succeeds.
    retry_failed_fsync: bool,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("state", &self.state).finish()
    }
}

impl Wal {
    /// A handle on an existing WAL file whose first `end` bytes are valid and durable.
    pub(crate) fn new(disk: Arc<dyn Disk>, end: Lsn) -> Wal {
        let flushed_tx = Watch::new(end);
        Wal {
            disk,
            state: Mutex::new(WalState {
                end,
                flushed: end,
                syncing_upto: None,
                failed: None,
            }),
            sync_lock: tokio::sync::Mutex::new(()),
            flushed_tx,
            covers_later_appends: false,
            retry_failed_fsync: false,
        }
    }

    /// Planted bug `wal-flush-covers-later-appends` when `on`: each flush claims as durable
    /// what was appended while its fsync ran.
    pub(crate) fn covering_later_appends(mut self, on: bool) -> Wal {
        self.covers_later_appends = on;
        self
    }

    /// Planted bug `fsync-error-retried`: a failed `fsync` is retried instead of failing the
    /// WAL for good.
    pub(crate) fn retrying_failed_fsync(mut self, on: bool) -> Wal {
        self.retry_failed_fsync = on;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WalState> {
        self.state.lock().expect("wal state poisoned")
    }

    /// The LSN the next record will be written at.
    pub fn end_lsn(&self) -> Lsn {
        self.lock().end
    }

    /// Everything before this LSN is durable.
    pub fn flushed_lsn(&self) -> Lsn {
        self.lock().flushed
    }

    /// Waits until the flushed LSN moves past `lsn`; returns it (walsenders wait on this).
    pub async fn wait_flushed_beyond(&self, lsn: Lsn) -> Lsn {
        self.flushed_tx.wait_until(|flushed| *flushed > lsn).await
    }

    /// Makes the WAL durable at least up to `lsn`; returns the flushed LSN.
    pub async fn flush_to(&self, lsn: Lsn) -> Result<Lsn, StorageError> {
        if let Some(flushed) = self.covered(lsn)? {
            return Ok(flushed);
        }
        let _one_sync = self.sync_lock.lock().await;
        // The fsync we waited behind may have covered us.
        if let Some(flushed) = self.covered(lsn)? {
            return Ok(flushed);
        }
        let upto = {
            let mut st = self.lock();
            if lsn > st.end {
                return Err(StorageError::FlushBeyondEnd { lsn, end: st.end });
            }
            st.syncing_upto = Some(st.end);
            st.end
        };
        runtime::fault_point(FaultPoint::WalWrittenBeforeFsync).await;
        let mut result = self.disk.sync(WAL_PATH).await;
        if result.is_err() && self.retry_failed_fsync {
            tracing::warn!("wal fsync failed; retrying");
            result = self.disk.sync(WAL_PATH).await;
        }
        let flushed = {
            let mut st = self.lock();
            let mut covered = st.syncing_upto.take().unwrap_or(upto);
            if self.covers_later_appends {
                covered = st.end;
            }
            if let Err(source) = result {
                st.failed = Some(source.to_string());
                return Err(StorageError::io("sync", WAL_PATH, source));
            }
            st.flushed = st.flushed.max(covered);
            st.check();
            // Published under the state lock, so a concurrent truncation's lower value is
            // never overwritten by this older, higher one.
            self.flushed_tx.set(st.flushed);
            st.flushed
        };
        if flushed < lsn {
            // A mirror cut the WAL below `lsn` while this flush was in flight.
            return Err(StorageError::FlushBeyondEnd {
                lsn,
                end: self.end_lsn(),
            });
        }
        Ok(flushed)
    }

    fn covered(&self, lsn: Lsn) -> Result<Option<Lsn>, StorageError> {
        let st = self.lock();
        if let Some(reason) = &st.failed {
            return Err(StorageError::WalFailed {
                reason: reason.clone(),
            });
        }
        Ok((st.flushed >= lsn).then_some(st.flushed))
    }

    /// Appends `bytes`, which were framed for `start`; `start` must be the current end.
    pub(crate) fn append_at(&self, start: Lsn, bytes: &[u8]) -> Result<Lsn, StorageError> {
        let mut st = self.lock();
        assert_eq!(st.end, start, "wal appended at a stale end");
        match self.disk.append(WAL_PATH, bytes) {
            Ok(offset) if offset == start => {
                st.end = start + bytes.len() as u64;
                st.check();
                Ok(st.end)
            }
            Ok(offset) => {
                // Someone else wrote the file; framing is for `start`, so the bytes are
                // useless elsewhere. Cut them off and refuse.
                let _ = self.disk.truncate(WAL_PATH, start);
                Err(StorageError::WalOffset {
                    expected: start,
                    got: offset,
                })
            }
            Err(source) => {
                // A partial append (a full disk) must not leave garbage where the next
                // record goes.
                let _ = self.disk.truncate(WAL_PATH, start);
                Err(StorageError::io("append", WAL_PATH, source))
            }
        }
    }

    /// Cuts the WAL to `lsn` (a torn tail, or a mirror's re-sent stream).
    pub(crate) fn truncate(&self, lsn: Lsn) -> Result<(), StorageError> {
        let mut st = self.lock();
        debug_assert!(lsn <= st.end, "wal truncated beyond its end");
        self.disk
            .truncate(WAL_PATH, lsn)
            .map_err(|source| StorageError::io("truncate", WAL_PATH, source))?;
        st.end = lsn;
        st.syncing_upto = st.syncing_upto.map(|upto| upto.min(lsn));
        let lowered = st.flushed > lsn;
        st.flushed = st.flushed.min(lsn);
        st.check();
        if lowered {
            self.flushed_tx.set(st.flushed);
        }
        Ok(())
    }

    /// Reads raw WAL bytes `[from, from + len)`.
    /// Reads `len` bytes of WAL from `from`; every caller asks only for bytes the log holds
    /// (below its end or its flushed position), so a shorter read means the file lost them
    /// (pages the kernel dropped after a failed fsync) and is an error, never an empty answer
    /// a walsender would send again and again.
    pub(crate) fn read(&self, from: Lsn, len: usize) -> Result<Vec<u8>, StorageError> {
        let bytes = self
            .disk
            .read_at(WAL_PATH, from, len)
            .map_err(|source| StorageError::io("read", WAL_PATH, source))?;
        if bytes.len() < len {
            return Err(StorageError::WalShort {
                from,
                wanted: len,
                got: bytes.len(),
            });
        }
        Ok(bytes)
    }

    /// Writes bytes streamed from a primary at `start`. Bytes already present and equal are
    /// skipped, so a re-send after a lost acknowledgement changes nothing; the WAL is cut only
    /// where the stream differs, and never below `replayed` (those records are applied).
    pub(crate) fn receive(
        &self,
        start: Lsn,
        bytes: &[u8],
        replayed: Lsn,
    ) -> Result<(), StorageError> {
        let end = self.end_lsn();
        if start > end {
            return Err(StorageError::WalGap {
                expected: end,
                got: start,
            });
        }
        let overlap = ((end - start) as usize).min(bytes.len());
        let present = self.read(start, overlap)?;
        let same = present
            .iter()
            .zip(&bytes[..overlap])
            .take_while(|(a, b)| a == b)
            .count();
        if same < overlap {
            let at = start + same as u64;
            if at < replayed {
                return Err(StorageError::WalDiverged {
                    lsn: at,
                    replay_lsn: replayed,
                });
            }
            self.truncate(at)?;
            self.append_at(at, &bytes[same..])?;
        } else if bytes.len() > overlap {
            self.append_at(end, &bytes[overlap..])?;
        }
        Ok(())
    }
}
