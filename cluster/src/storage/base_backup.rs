//! Base backups: a consistent copy of an instance's files, taken while it serves, and laid
//! down on an empty data directory, from which [`Engine::open`] recovers and WAL streaming
//! continues (what `pg_basebackup` is to a Postgres standby).

use crate::io::points::FaultPoint;
use crate::io::{runtime, Disk};
use crate::wal::{WAL_DIR, WAL_PATH};

use super::cache::TableFile;
use super::control::CONTROL_DIR;
use super::{Engine, Lsn, StorageError, TableKind};

/// Every file of an instance at one WAL position.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BaseBackup {
    /// `(path, contents)`, control file included.
    pub files: Vec<(String, Vec<u8>)>,
    /// The WAL in the backup ends here; streaming continues from it.
    pub wal_end: Lsn,
}

/// The directories a backup copies.
fn backup_dirs() -> [&'static str; 4] {
    [
        CONTROL_DIR,
        WAL_DIR,
        TableFile::dir(TableKind::Heap),
        TableFile::dir(TableKind::AppendOptimized),
    ]
}

impl Engine {
    /// Takes a base backup: a checkpoint (every block durable, the control file's redo point
    /// moved), then a copy of every file, the WAL cut at its flushed end, all under the
    /// caller's engine lock so no write lands in between. Only flushed WAL is copied, so a
    /// standby never holds records its source could lose.
    pub async fn base_backup(&mut self) -> Result<BaseBackup, StorageError> {
        self.checkpoint().await?;
        let wal_end = self.wal.flushed_lsn();
        let disk = self.disk.clone();
        let mut files = Vec::new();
        for dir in backup_dirs() {
            let names = disk
                .list(dir)
                .map_err(|source| StorageError::io("list", dir, source))?;
            for name in names {
                let path = format!("{dir}/{name}");
                let len = if path == WAL_PATH {
                    wal_end
                } else {
                    disk.len(&path)
                        .map_err(|source| StorageError::io("stat", &path, source))?
                };
                let bytes = disk
                    .read_at(&path, 0, len as usize)
                    .map_err(|source| StorageError::io("read", &path, source))?;
                files.push((path, bytes));
            }
        }
        Ok(BaseBackup { files, wal_end })
    }
}

/// Lays `backup` down on `disk` durably. The caller opens an [`Engine`] on the disk afterwards;
/// recovery replays from the backup's redo point.
///
/// The control file's presence says the directory is complete ([`present`]), so it is the one
/// file whose durable state orders everything: any old one is removed durably first (a
/// directory emptied without its removals synced, then a power loss, would otherwise bring an
/// older instance's control file back beside half a backup), every other file and directory
/// entry is made durable next, and the control file is written and synced last.
pub async fn restore(disk: &dyn Disk, backup: &BaseBackup) -> Result<(), StorageError> {
    for dir in backup_dirs() {
        disk.create_dir(dir)
            .map_err(|source| StorageError::io("create", dir, source))?;
    }
    let control_path = super::control::CONTROL_PATH;
    let control_dir = super::control::CONTROL_DIR;
    if disk.exists(control_path) {
        disk.remove(control_path)
            .map_err(|source| StorageError::io("remove", control_path, source))?;
    }
    sync_dir(disk, control_dir).await?;
    let (control, rest): (Vec<_>, Vec<_>) = backup
        .files
        .iter()
        .partition(|(path, _)| path == control_path);
    for (path, bytes) in rest {
        write_synced(disk, path, bytes).await?;
    }
    for dir in backup_dirs() {
        sync_dir(disk, dir).await?;
    }
    sync_dir(disk, "").await?;
    runtime::fault_point(FaultPoint::BaseBackupMidway).await;
    for (path, bytes) in control {
        write_synced(disk, path, bytes).await?;
    }
    sync_dir(disk, control_dir).await
}

async fn sync_dir(disk: &dyn Disk, dir: &str) -> Result<(), StorageError> {
    disk.sync_dir(dir)
        .await
        .map_err(|source| StorageError::io("sync", dir, source))
}

/// Writes `bytes` as the whole of `path` and syncs it.
async fn write_synced(disk: &dyn Disk, path: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let io = |op| move |source| StorageError::io(op, path, source);
    if disk.exists(path) {
        disk.truncate(path, 0).map_err(io("truncate"))?;
    } else {
        disk.create(path).map_err(io("create"))?;
    }
    disk.write_at(path, 0, bytes).map_err(io("write"))?;
    disk.sync(path).await.map_err(io("sync"))
}

/// Whether `disk` holds a complete data directory (a restored backup, or an instance that ran).
pub fn present(disk: &dyn Disk) -> bool {
    disk.exists(super::control::CONTROL_PATH)
}
