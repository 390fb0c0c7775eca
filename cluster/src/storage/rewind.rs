//! Rewinding an instance to the point where its WAL and another instance's part ways, so it can
//! follow that instance as a mirror (incremental recovery), or wiping it for a full copy.
//!
//! The WAL is kept whole from LSN 0, so the state at any record boundary can be rebuilt by
//! replaying the WAL up to it. A rewind cuts the WAL at the divergence point and rebuilds the
//! blocks that way: whatever the old blocks held past that point (written back from the cache,
//! or by a checkpoint) is discarded with them. Crash safety: the control file is reset to "redo
//! from 0" before anything is cut, so a crash mid-rewind leaves an instance that recovers to a
//! consistent prefix and can be rewound again.

use crate::io::points::FaultPoint;
use crate::io::runtime;
use crate::wal::reader::{Next, WalReader};
use crate::wal::WAL_PATH;

use super::cache::{BufferCache, TableFile};
use super::control::Control;
use super::{Engine, Lsn, Role, StorageError, TableKind};

/// Removes every file an instance keeps in its data directory, so a fresh instance can start
/// there (a full copy onto a directory that held an older instance).
pub fn wipe_instance_dir(disk: &dyn crate::io::Disk) -> std::io::Result<()> {
    let dirs = [
        "",
        super::control::CONTROL_DIR,
        crate::wal::WAL_DIR,
        TableFile::dir(TableKind::Heap),
        TableFile::dir(TableKind::AppendOptimized),
    ];
    for dir in dirs {
        let Ok(files) = disk.list(dir) else { continue };
        for name in files {
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            if disk.exists(&path) {
                disk.remove(&path)?;
            }
        }
    }
    Ok(())
}

/// The bytes a WAL summary checksums per entry.
pub const WAL_SUMMARY_CHUNK: u64 = 8 << 10;

impl Engine {
    /// A checksum of every [`WAL_SUMMARY_CHUNK`]-byte chunk of the flushed WAL (the last one
    /// may be shorter), and the flushed LSN they cover. Comparing two summaries finds the first
    /// chunk where two WALs differ without shipping the WAL itself.
    /// Covers at most `upto` bytes, so a shorter WAL's last partial chunk compares equal when it
    /// is a prefix.
    pub fn wal_summary(&self, upto: Lsn) -> Result<(Lsn, Vec<u32>), StorageError> {
        let flushed = self.wal.flushed_lsn().min(upto);
        let mut crcs = Vec::new();
        let mut at = 0;
        while at < flushed {
            let len = WAL_SUMMARY_CHUNK.min(flushed - at);
            crcs.push(crc32c::crc32c(&self.wal.read(at, len as usize)?));
            at += len;
        }
        Ok((flushed, crcs))
    }

    /// Raw flushed WAL bytes `[from, from + len)`, clipped to the flushed end.
    pub fn wal_bytes(&self, from: Lsn, len: u64) -> Result<Vec<u8>, StorageError> {
        let flushed = self.wal.flushed_lsn();
        if from >= flushed {
            return Ok(Vec::new());
        }
        self.wal.read(from, len.min(flushed - from) as usize)
    }

    /// The end of the last whole record that lies within the first `common` bytes of the WAL:
    /// where this WAL and one sharing its first `common` bytes part ways.
    pub fn record_boundary_before(&self, common: Lsn) -> Result<Lsn, StorageError> {
        let limit = common.min(self.wal.end_lsn());
        let mut reader = WalReader::new(&*self.disk, 0, limit);
        let mut boundary = 0;
        loop {
            match reader.next_record()? {
                Next::Record { end, .. } => boundary = end,
                Next::Incomplete { .. } | Next::End | Next::Bad { .. } => return Ok(boundary),
            }
        }
    }

    /// Cuts the WAL at `lsn` (a record boundary) and rebuilds every table by replaying the WAL
    /// from its start, so the data is exactly what the WAL up to `lsn` says. `lsn` 0 wipes the
    /// instance (a full copy follows). Afterwards the engine may receive WAL as a replica.
    /// Returns the WAL bytes discarded.
    pub async fn rewind_to(&mut self, lsn: Lsn) -> Result<u64, StorageError> {
        let end = self.cut_wal(lsn).await?;
        for kind in [TableKind::Heap, TableKind::AppendOptimized] {
            let dir = TableFile::dir(kind);
            let files = self
                .disk
                .list(dir)
                .map_err(|source| StorageError::io("list", dir, source))?;
            for name in files {
                let path = format!("{dir}/{name}");
                self.disk
                    .remove(&path)
                    .map_err(|source| StorageError::io("remove", &path, source))?;
            }
            self.disk
                .sync_dir(dir)
                .await
                .map_err(|source| StorageError::io("sync", dir, source))?;
        }
        runtime::fault_point(FaultPoint::RewindMidway).await;
        self.tables.clear();
        self.prepared.clear();
        self.cache =
            BufferCache::new(self.cache.max()).without_doublewrite(!self.cache.doublewrite());
        self.applied_lsn = 0;
        self.role = Role::Undecided;
        self.wal_bytes = 0;
        let redone = self.redo(lsn)?;
        if let Some(bad) = redone.bad {
            return Err(StorageError::CorruptWal { lsn: bad });
        }
        self.check_invariants();
        tracing::info!(rewound_to = lsn, discarded = end - lsn, "storage rewound");
        Ok(end - lsn)
    }

    /// Planted bug `recovery-skips-rewind`: an incremental recovery without its rewind. The WAL
    /// is cut at `lsn` (a record boundary), so a primary's stream lines up with it as if the
    /// two histories matched, but the tables and their blocks (cached and on disk) stay as they
    /// are: whatever this instance applied past `lsn` stays in its data, and blocks stamped
    /// with a later page LSN skip the primary's changes to them. Returns the WAL bytes cut.
    pub async fn cut_wal_keeping_blocks(&mut self, lsn: Lsn) -> Result<u64, StorageError> {
        let end = self.cut_wal(lsn).await?;
        self.applied_lsn = self.applied_lsn.min(lsn);
        self.role = Role::Undecided;
        self.check_invariants();
        tracing::info!(cut_to = lsn, cut = end - lsn, "wal cut, blocks kept");
        Ok(end - lsn)
    }

    /// Cuts the WAL durably at `lsn` (a record boundary), after resetting the control file so
    /// that redo starts from 0 whatever happens next. Returns the WAL's end before the cut.
    async fn cut_wal(&mut self, lsn: Lsn) -> Result<Lsn, StorageError> {
        let end = self.wal.end_lsn();
        if lsn > end {
            return Err(StorageError::FlushBeyondEnd { lsn, end });
        }
        Control::default().write(&*self.disk).await?;
        self.wal.truncate(lsn)?;
        self.disk
            .sync(WAL_PATH)
            .await
            .map_err(|source| StorageError::io("sync", WAL_PATH, source))?;
        Ok(end)
    }
}
