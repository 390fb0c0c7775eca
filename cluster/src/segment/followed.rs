//! The newest configuration epoch an instance follows, kept in `global/followed_epoch` each
//! time it enters a new coordinator generation (see [`crate::model::catalog::epoch`]), so that an
//! instance restarted after an activation still refuses the coordinator the activation
//! deposed. Within one generation the epoch lives in memory only: a restarted instance follows
//! its coordinator's next request, as before generations existed.

use crate::io::Disk;
use crate::storage::small_file::{self, SmallFileError};
use crate::storage::StorageError;

const DIR: &str = "global";
const PATH: &str = "global/followed_epoch";

/// The epoch kept, or 0 for an instance that never followed a later generation.
pub fn load(disk: &dyn Disk) -> Result<u64, StorageError> {
    match small_file::read(disk, PATH) {
        Ok(Some(body)) => body
            .as_slice()
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| StorageError::CorruptControl { path: PATH.into() }),
        Ok(None) => Ok(0),
        Err(SmallFileError::Corrupt { path }) => Err(StorageError::CorruptControl { path }),
        Err(SmallFileError::Io(e)) => Err(e),
    }
}

/// Keeps `epoch` durably.
pub async fn store(disk: &dyn Disk, epoch: u64) -> Result<(), StorageError> {
    small_file::replace(disk, DIR, PATH, &epoch.to_le_bytes()).await
}
