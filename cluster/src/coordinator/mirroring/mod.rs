//! The coordinator's side of mirroring its catalog to the standby (seed 000, "Using Master
//! Mirroring"):
//!
//! - [`link`]: the mirroring state the coordinator reports (Not Configured / Synchronized / Not
//!   Synchronized, with the time of the last change and the error) and the wait that keeps
//!   catalog changes off the segments until the standby has flushed them.
//! - [`sender`]: the standby verbs the coordinator answers, and the catalog stream: a base
//!   backup of the catalog, then the WAL recorded meanwhile, then the continuous stream.
//!
//! This module also defines the stream's timing and framing, which the receiving side
//! (`crate::standby`) follows.

pub mod link;
pub mod sender;

use std::time::Duration;

use crate::storage::base_backup::BaseBackup;
use crate::wal::Lsn;
use crate::wire::standby::CatalogStream;

pub use link::StandbyLink;

/// How long either side of the catalog stream waits for the other before it counts the
/// stream as broken (a keepalive goes every third of it).
pub const STANDBY_WAL_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest backup chunk in one frame.
pub const BACKUP_CHUNK_BYTES: usize = 1 << 20;

/// A base backup as the frames that carry it (an empty file is one empty chunk).
pub fn backup_frames(backup: BaseBackup) -> Vec<CatalogStream> {
    let mut frames = Vec::new();
    for (path, bytes) in backup.files {
        if bytes.is_empty() {
            frames.push(CatalogStream::BackupChunk { path, bytes });
            continue;
        }
        for chunk in bytes.chunks(BACKUP_CHUNK_BYTES) {
            frames.push(CatalogStream::BackupChunk {
                path: path.clone(),
                bytes: chunk.to_vec(),
            });
        }
    }
    frames.push(CatalogStream::BackupEnd {
        wal_end: backup.wal_end,
    });
    frames
}

/// Reassembles [`backup_frames`]' chunks, one at a time.
#[derive(Debug, Default)]
pub struct BackupAssembly {
    files: Vec<(String, Vec<u8>)>,
}

impl BackupAssembly {
    pub fn chunk(&mut self, path: String, bytes: Vec<u8>) {
        match self.files.last_mut() {
            Some((last, data)) if *last == path => data.extend_from_slice(&bytes),
            _ => self.files.push((path, bytes)),
        }
    }

    pub fn finish(self, wal_end: Lsn) -> BaseBackup {
        BaseBackup {
            files: self.files,
            wal_end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_survives_chunking() {
        let backup = BaseBackup {
            files: vec![
                ("global/control".into(), vec![1, 2, 3]),
                (
                    "pg_wal/wal".into(),
                    (0..BACKUP_CHUNK_BYTES * 2 + 5).map(|i| i as u8).collect(),
                ),
                ("base/100".into(), Vec::new()),
            ],
            wal_end: 77,
        };
        let frames = backup_frames(backup.clone());
        assert_eq!(frames.len(), 1 + 3 + 1 + 1);
        let mut assembly = BackupAssembly::default();
        for frame in frames {
            match frame {
                CatalogStream::BackupChunk { path, bytes } => assembly.chunk(path, bytes),
                CatalogStream::BackupEnd { wal_end } => {
                    assert_eq!(assembly.finish(wal_end), backup);
                    return;
                }
                CatalogStream::Wal(_) => unreachable!(),
            }
        }
        panic!("no end frame");
    }
}
