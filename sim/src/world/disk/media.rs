//! Media faults beyond a clean power loss, kept apart from the disk's durability model:
//!
//! - an `fsync` that fails once ([`SimDisk::fail_next_sync`]): like Linux after a failed
//!   writeback, the dirty pages are dropped, so the file reads again as it is on the platter
//!   (its last synced content) and a later `fsync` that succeeds proves nothing about them;
//! - bytes overwritten in place, durable at once ([`SimDisk::overwrite_durable`]): a torn tail
//!   of garbage instead of a clean prefix, a flipped bit in any file, a valid block or record
//!   that a misdirected write put at the wrong offset.
//!
//! Every failed `fsync` is counted per file, so a checker can ask whether an instance saw one.

use std::io;

use super::{SimDisk, State};

/// Media faults armed on one disk, and what they did.
#[derive(Debug, Default)]
pub(super) struct Media {
    /// Path prefixes whose next `fsync` fails (each arming fails one `fsync`).
    fail_sync: Vec<String>,
    /// Every file whose `fsync` failed, once per failure.
    failed_syncs: Vec<String>,
}

impl State {
    /// Fails this `sync` of `path` (inode `id`) if a failure is armed for it: the file's dirty
    /// pages are dropped (its content reverts to what is durable) and the caller gets `EIO`.
    pub(super) fn fail_sync_if_armed(&mut self, path: &str, id: u64) -> Option<io::Error> {
        let at = self
            .media
            .fail_sync
            .iter()
            .position(|p| path.starts_with(p.as_str()))?;
        self.media.fail_sync.remove(at);
        self.media.failed_syncs.push(path.to_string());
        if let Some(inode) = self.inodes.get_mut(&id) {
            inode.syncing = inode.syncing.saturating_sub(1);
            inode.data = inode.durable.clone();
            inode.dirty_from = inode.data.len();
            inode.unsynced_writes.clear();
        }
        Some(io::Error::other(format!(
            "fsync of {path} failed: input/output error"
        )))
    }
}

impl SimDisk {
    /// The next `sync` of a file whose path starts with `prefix` fails (once). A directory's
    /// prefix ends with `/`, so that `d/` does not also match `d1/`.
    pub fn fail_next_sync(&self, prefix: &str) {
        let prefix = prefix.trim_start_matches('/').to_string();
        self.state.lock().unwrap().media.fail_sync.push(prefix);
    }

    /// How many `fsync`s of files under `prefix` have failed so far.
    pub fn failed_syncs_under(&self, prefix: &str) -> usize {
        let prefix = prefix.trim_start_matches('/');
        let st = self.state.lock().unwrap();
        st.media
            .failed_syncs
            .iter()
            .filter(|p| p.starts_with(prefix))
            .count()
    }

    /// The durable content of `path`, if its name is durable.
    pub fn durable_content(&self, path: &str) -> Option<Vec<u8>> {
        let st = self.state.lock().unwrap();
        let id = st.durable_names.get(path.trim_matches('/'))?;
        st.inodes.get(id).map(|i| i.durable.clone())
    }

    /// Overwrites `bytes` at `offset` of `path`, in its durable and its visible content alike
    /// (the medium now holds them, whatever was written). Only within the durable length;
    /// returns false (and changes nothing) otherwise.
    pub fn overwrite_durable(&self, path: &str, offset: u64, bytes: &[u8]) -> bool {
        let mut st = self.state.lock().unwrap();
        let Some(&id) = st.durable_names.get(path.trim_matches('/')) else {
            return false;
        };
        let Some(inode) = st.inodes.get_mut(&id) else {
            return false;
        };
        let (start, end) = (offset as usize, offset as usize + bytes.len());
        if end > inode.durable.len() || end > inode.data.len() {
            return false;
        }
        inode.durable[start..end].copy_from_slice(bytes);
        inode.data[start..end].copy_from_slice(bytes);
        inode.dirty(start);
        true
    }

    /// Files whose visible content runs past their durable end, with that durable end: the
    /// ones a power loss may leave with a torn tail.
    pub fn unsynced_tails(&self) -> Vec<(String, u64)> {
        let st = self.state.lock().unwrap();
        st.durable_names
            .iter()
            .filter_map(|(name, id)| {
                let inode = st.inodes.get(id)?;
                (inode.data.len() > inode.durable.len())
                    .then(|| (name.clone(), inode.durable.len() as u64))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::disk::TornTail;
    use cluster::io::disk::Disk;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        madsim::runtime::Runtime::new().block_on(f)
    }

    #[test]
    fn a_failed_fsync_drops_the_dirty_pages_and_a_later_fsync_does_not_bring_them_back() {
        let disk = SimDisk::new();
        disk.create_dir("d").unwrap();
        disk.create("d/wal").unwrap();
        block_on(disk.sync_dir("d")).unwrap();
        disk.append("d/wal", b"durable").unwrap();
        block_on(disk.sync("d/wal")).unwrap();
        disk.append("d/wal", b"-dropped").unwrap();
        disk.fail_next_sync("d/");
        assert!(block_on(disk.sync("d/wal")).is_err());
        assert_eq!(disk.failed_syncs_under("d/"), 1);
        assert_eq!(disk.failed_syncs_under("e/"), 0);
        // The retry succeeds, and the dropped bytes are not there to be made durable.
        block_on(disk.sync("d/wal")).unwrap();
        assert_eq!(disk.read_at("d/wal", 0, 100).unwrap(), b"durable");
        disk.crash(|_, _| TornTail::None);
        assert_eq!(disk.read_at("d/wal", 0, 100).unwrap(), b"durable");
    }

    #[test]
    fn an_overwrite_of_durable_bytes_survives_a_crash_and_past_the_durable_end_is_refused() {
        let disk = SimDisk::new();
        disk.create("f").unwrap();
        block_on(disk.sync_dir("")).unwrap();
        disk.append("f", b"abcdef").unwrap();
        block_on(disk.sync("f")).unwrap();
        disk.append("f", b"gh").unwrap();
        assert_eq!(disk.unsynced_tails(), vec![("f".to_string(), 6)]);
        assert!(disk.overwrite_durable("f", 2, b"XY"));
        assert!(!disk.overwrite_durable("f", 5, b"XY"));
        disk.crash(|_, _| TornTail::None);
        assert_eq!(disk.durable_content("f").unwrap(), b"abXYef");
    }
}
