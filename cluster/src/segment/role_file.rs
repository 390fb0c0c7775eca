//! The instance's role, kept in its data directory so a restarted instance comes back in the
//! role it last had (a promoted mirror stays a primary).

use crate::io::Disk;
use crate::model::catalog::Role;
use crate::storage::StorageError;

const ROLE_FILE: &str = "global/role";
const ROLE_TMP: &str = "global/role.tmp";

fn io_err(op: &'static str, path: &str, source: std::io::Error) -> StorageError {
    StorageError::Io {
        op,
        path: path.to_string(),
        source,
    }
}

pub async fn load_or_init(disk: &dyn Disk, initial: Role) -> Result<Role, StorageError> {
    if disk.exists(ROLE_FILE) {
        let bytes = disk
            .read_at(ROLE_FILE, 0, 64)
            .map_err(|e| io_err("read", ROLE_FILE, e))?;
        return match bytes.as_slice() {
            b"primary\n" => Ok(Role::Primary),
            b"mirror\n" => Ok(Role::Mirror),
            _ => Err(io_err(
                "parse",
                ROLE_FILE,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "role file holds neither \"primary\" nor \"mirror\"",
                ),
            )),
        };
    }
    store(disk, initial).await?;
    Ok(initial)
}

/// Records the role durably: written aside, synced, renamed over, directory synced.
pub async fn store(disk: &dyn Disk, role: Role) -> Result<(), StorageError> {
    let text: &[u8] = match role {
        Role::Primary => b"primary\n",
        Role::Mirror => b"mirror\n",
    };
    disk.create_dir("global")
        .map_err(|e| io_err("mkdir", "global", e))?;
    if disk.exists(ROLE_TMP) {
        disk.remove(ROLE_TMP)
            .map_err(|e| io_err("remove", ROLE_TMP, e))?;
    }
    disk.create(ROLE_TMP)
        .map_err(|e| io_err("create", ROLE_TMP, e))?;
    disk.append(ROLE_TMP, text)
        .map_err(|e| io_err("write", ROLE_TMP, e))?;
    disk.sync(ROLE_TMP)
        .await
        .map_err(|e| io_err("fsync", ROLE_TMP, e))?;
    disk.rename(ROLE_TMP, ROLE_FILE)
        .map_err(|e| io_err("rename", ROLE_FILE, e))?;
    disk.sync_dir("global")
        .await
        .map_err(|e| io_err("fsync", "global", e))
}
