//! The instance's role, kept in its data directory so a restarted instance comes back in the
//! role it last had (a promoted mirror stays a primary), and whether a recovery as a mirror
//! (`recoverseg`) was begun and not finished.
//!
//! A recovery records the mirror role before it knows where its WAL and the primary's part
//! ways; until its rewind is done, the WAL may hold records the primary never had. Like a
//! directory pg_rewind was interrupted in, such a directory must not stream from its own WAL
//! end: the file says "recovering" until the rewind is durable, and an instance that starts
//! with it waits for the next recovery instead of replicating.

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

/// What the role file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The instance serves in this role.
    Role(Role),
    /// A mirror whose recovery began and did not finish: its WAL may have diverged from its
    /// primary's, so it must be rewound (recovered again) before it streams.
    Recovering,
}

impl Stored {
    pub fn role(self) -> Role {
        match self {
            Stored::Role(role) => role,
            Stored::Recovering => Role::Mirror,
        }
    }

    fn text(self) -> &'static [u8] {
        match self {
            Stored::Role(Role::Primary) => b"primary\n",
            Stored::Role(Role::Mirror) => b"mirror\n",
            Stored::Recovering => b"recovering\n",
        }
    }
}

pub async fn load_or_init(disk: &dyn Disk, initial: Role) -> Result<Stored, StorageError> {
    if disk.exists(ROLE_FILE) {
        let bytes = disk
            .read_at(ROLE_FILE, 0, 64)
            .map_err(|e| io_err("read", ROLE_FILE, e))?;
        return [
            Stored::Role(Role::Primary),
            Stored::Role(Role::Mirror),
            Stored::Recovering,
        ]
        .into_iter()
        .find(|stored| stored.text() == bytes.as_slice())
        .ok_or_else(|| {
            io_err(
                "parse",
                ROLE_FILE,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "role file holds none of \"primary\", \"mirror\", \"recovering\"",
                ),
            )
        });
    }
    store(disk, initial).await?;
    Ok(Stored::Role(initial))
}

/// Records the role durably: written aside, synced, renamed over, directory synced.
pub async fn store(disk: &dyn Disk, role: Role) -> Result<(), StorageError> {
    store_state(disk, Stored::Role(role)).await
}

/// Records that a recovery as a mirror has begun (see the module doc); [`store`] with
/// [`Role::Mirror`] records that it is done.
pub async fn store_recovering(disk: &dyn Disk) -> Result<(), StorageError> {
    store_state(disk, Stored::Recovering).await
}

async fn store_state(disk: &dyn Disk, stored: Stored) -> Result<(), StorageError> {
    let text = stored.text();
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
