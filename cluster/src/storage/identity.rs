//! The identity of a data directory, `identity` at its root, as PostgreSQL's `pg_control`
//! carries a system identifier and Greenplum's instances their dbid: which cluster, which
//! instance (dbid and content), and which WAL history the directory holds.
//!
//! It is written once, when the directory is made: by `init`, by a full recovery (which wipes
//! the directory first) and by the verbs that place a new mirror or standby. An instance reads
//! it before it touches anything and refuses to start on a directory that has none (never
//! initialized, or a disk that came back empty: unmounted, replaced), that fails its checksum,
//! or that belongs to another instance or cluster; nothing is created or changed then. Base
//! backups do not copy it: the copy gets the identity of the instance it becomes.
//!
//! The system identifier names a WAL history. A primary made by `init` starts one; a mirror
//! (or a directory wiped for a full copy) has none until its first stream from WAL position 0,
//! when it takes its primary's. From then on the two must match for the mirror to stream from
//! the primary, and for an incremental recovery to rewind one onto the other: two different
//! histories share nothing, and rewinding one onto the other would discard all of it.

use serde::{Deserialize, Serialize};

use crate::io::Disk;
use crate::model::catalog::{Content, Dbid};

use super::small_file::{self, SmallFileError};
use super::StorageError;

pub const IDENTITY_PATH: &str = "identity";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The cluster the directory belongs to, the same in every instance (chosen by `init`).
    pub cluster_id: u64,
    pub dbid: Dbid,
    pub content: Content,
    /// The WAL history the directory holds; `None` until a new mirror's first copy.
    pub system_id: Option<u64>,
}

/// What an instance expects its directory to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    pub cluster_id: u64,
    /// `None` for a coordinator: an activated standby's directory keeps the standby's dbid.
    pub dbid: Option<Dbid>,
    pub content: Content,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("data directory {dir} has no identity file: it was never initialized, or its disk came back empty (unmounted, replaced); refusing to start, nothing was changed. An instance's data directory is made by init, or by a full recovery from its partner (recoverseg -F)")]
    Missing { dir: String },
    #[error("data directory {dir}: its identity file fails its checksum; refusing to start, nothing was changed")]
    Corrupt { dir: String },
    #[error("data directory {dir} belongs to {found}, not to {expected}; refusing to start, nothing was changed")]
    Foreign {
        dir: String,
        found: String,
        expected: String,
    },
    #[error("data directory {dir}: {source}")]
    Io { dir: String, source: StorageError },
}

fn describe(cluster_id: u64, dbid: Option<Dbid>, content: Content) -> String {
    match dbid {
        Some(dbid) => format!("dbid {dbid} (content {content}) of cluster {cluster_id:016x}"),
        None => format!("content {content} of cluster {cluster_id:016x}"),
    }
}

impl Identity {
    /// Reads the identity of the directory `disk` is rooted at (`dir` names it in errors).
    pub fn read(disk: &dyn Disk, dir: &str) -> Result<Identity, IdentityError> {
        let corrupt = || IdentityError::Corrupt { dir: dir.into() };
        match small_file::read(disk, IDENTITY_PATH) {
            Ok(Some(body)) => postcard::from_bytes(&body).map_err(|_| corrupt()),
            Ok(None) => Err(IdentityError::Missing { dir: dir.into() }),
            Err(SmallFileError::Corrupt { .. }) => Err(corrupt()),
            Err(SmallFileError::Io(source)) => Err(IdentityError::Io {
                dir: dir.into(),
                source,
            }),
        }
    }

    /// Reads the identity and checks it is the one `expected`.
    pub fn read_expected(
        disk: &dyn Disk,
        dir: &str,
        expected: Expected,
    ) -> Result<Identity, IdentityError> {
        let id = Identity::read(disk, dir)?;
        let matches = id.cluster_id == expected.cluster_id
            && id.content == expected.content
            && expected.dbid.is_none_or(|d| d == id.dbid);
        if !matches {
            return Err(IdentityError::Foreign {
                dir: dir.into(),
                found: describe(id.cluster_id, Some(id.dbid), id.content),
                expected: describe(expected.cluster_id, expected.dbid, expected.content),
            });
        }
        Ok(id)
    }

    /// Writes the identity durably (a new directory's first file, or a system identifier
    /// taken on at a mirror's first copy).
    pub async fn write(&self, disk: &dyn Disk) -> Result<(), StorageError> {
        disk.create_dir("")
            .map_err(|source| StorageError::io("mkdir", "", source))?;
        small_file::replace(disk, "", IDENTITY_PATH, &self.body()).await
    }

    /// The file's bytes (for a tool that writes them by other means).
    pub fn encoded(&self) -> Vec<u8> {
        small_file::frame(&self.body())
    }

    fn body(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("an identity always encodes")
    }
}

/// A new identifier (a cluster's, a WAL history's) for `init` and the instances it makes: the
/// time and `salt` mixed, so two made in one millisecond (the contents of one `init`) differ.
/// Taken from the seam's clock, so the simulator's are reproducible.
pub fn new_id(salt: u64) -> u64 {
    let mut z = (crate::io::runtime::unix_time_ms() << 20)
        .wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_names_what_it_is_and_what_was_expected() {
        let found = describe(0xab, Some(3), 0);
        assert_eq!(found, "dbid 3 (content 0) of cluster 00000000000000ab");
        assert_eq!(
            describe(1, None, -1),
            "content -1 of cluster 0000000000000001"
        );
        assert_ne!(new_id(1), new_id(2));
    }
}
