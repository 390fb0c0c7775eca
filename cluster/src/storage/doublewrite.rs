//! The double-write area, `global/doublewrite`: how a table block overwritten in place survives
//! a power loss that tears it.
//!
//! A disk writes an 8 KiB block back in 4 KiB pages, each on its own, so a crash in the middle
//! of an in-place overwrite can leave the block part new, part old: it fails its checksum, and
//! the WAL (logical records, applied to whole blocks) cannot rebuild it. So, as InnoDB's
//! double-write buffer does, every block about to be written in place is first appended here
//! whole and this file synced; only then is the block written at its place. After a crash one
//! of the two copies is whole: recovery ([`restore`]) puts back every block that fails its
//! checksum from its last whole entry here, before anything reads the blocks. Once the table
//! files are synced, the entries are no longer needed and the area is emptied ([`clear`]).
//!
//! Format: fixed-size entries `[crc32c: u32 LE][kind: u8][table: u32 LE][block: u32 LE]` then
//! the block's bytes as written in place (its own checksum included). The entry checksum
//! covers everything after itself. An entry cut short or failing its checksum ends the area:
//! it is a torn tail of an append whose sync never returned, so no in-place write had begun.

use std::collections::BTreeMap;

use crate::io::Disk;

use super::cache::TableFile;
use super::control::CONTROL_DIR;
use super::page::{Page, BLOCK_SIZE};
use super::{StorageError, TableKind};

pub const DOUBLEWRITE_PATH: &str = "global/doublewrite";
const HEADER_LEN: usize = 13;
const ENTRY_LEN: usize = HEADER_LEN + BLOCK_SIZE;

/// A block image on its way to its place: the file, the block number and the encoded bytes.
pub type Image = (TableFile, u32, Vec<u8>);

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> StorageError {
    move |source| StorageError::io(op, DOUBLEWRITE_PATH, source)
}

fn encode(out: &mut Vec<u8>, (file, block, bytes): &Image) {
    debug_assert_eq!(
        bytes.len(),
        BLOCK_SIZE,
        "a double-write entry holds one block"
    );
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(match file.kind {
        TableKind::Heap => 0,
        TableKind::AppendOptimized => 1,
    });
    out.extend_from_slice(&file.id.to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(bytes);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The whole, valid entries at the start of `area`, in order; parsing stops at the first
/// entry cut short or failing its checksum.
fn decode(area: &[u8]) -> Vec<Image> {
    let mut images = Vec::new();
    for entry in area.chunks_exact(ENTRY_LEN) {
        let stored = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
        if stored != crc32c::crc32c(&entry[4..]) {
            break;
        }
        let kind = match entry[4] {
            0 => TableKind::Heap,
            1 => TableKind::AppendOptimized,
            _ => break,
        };
        let id = u32::from_le_bytes([entry[5], entry[6], entry[7], entry[8]]);
        let block = u32::from_le_bytes([entry[9], entry[10], entry[11], entry[12]]);
        images.push((TableFile { id, kind }, block, entry[HEADER_LEN..].to_vec()));
    }
    images
}

/// Makes `images` durable in the area (replacing whatever it held) with one append and one
/// sync. The caller writes them in place only after this returns.
pub async fn write_batch(disk: &dyn Disk, images: &[Image]) -> Result<(), StorageError> {
    if images.is_empty() {
        return Ok(());
    }
    if disk.exists(DOUBLEWRITE_PATH) {
        disk.truncate(DOUBLEWRITE_PATH, 0).map_err(io("truncate"))?;
    } else {
        disk.create(DOUBLEWRITE_PATH).map_err(io("create"))?;
        disk.sync_dir(CONTROL_DIR)
            .await
            .map_err(|source| StorageError::io("sync", CONTROL_DIR, source))?;
    }
    let mut bytes = Vec::with_capacity(images.len() * ENTRY_LEN);
    for image in images {
        encode(&mut bytes, image);
    }
    disk.append(DOUBLEWRITE_PATH, &bytes)
        .map_err(io("append"))?;
    disk.sync(DOUBLEWRITE_PATH).await.map_err(io("sync"))
}

/// Empties the area durably, once every block it holds is synced at its place.
pub async fn clear(disk: &dyn Disk) -> Result<(), StorageError> {
    if !disk.exists(DOUBLEWRITE_PATH) || disk.len(DOUBLEWRITE_PATH).map_err(io("stat"))? == 0 {
        return Ok(());
    }
    disk.truncate(DOUBLEWRITE_PATH, 0).map_err(io("truncate"))?;
    disk.sync(DOUBLEWRITE_PATH).await.map_err(io("sync"))
}

/// Crash recovery, before anything reads a block: every block whose place fails its checksum
/// and that has a whole entry here gets that entry's bytes back at its place (the last entry
/// for a block wins), synced; then the area is emptied. A block at its place that passes is
/// left alone, as is an entry for a file that no longer exists. Returns the blocks restored.
///
/// `numbered`: block checksums cover the block number (off only for a planted bug).
pub async fn restore(disk: &dyn Disk, numbered: bool) -> Result<usize, StorageError> {
    if !disk.exists(DOUBLEWRITE_PATH) {
        return Ok(0);
    }
    let len = disk.len(DOUBLEWRITE_PATH).map_err(io("stat"))?;
    let area = disk
        .read_at(DOUBLEWRITE_PATH, 0, len as usize)
        .map_err(io("read"))?;
    let mut last: BTreeMap<(TableFile, u32), Vec<u8>> = BTreeMap::new();
    for (file, block, bytes) in decode(&area) {
        last.insert((file, block), bytes);
    }
    let mut restored: BTreeMap<String, usize> = BTreeMap::new();
    for ((file, block), bytes) in last {
        let path = file.path();
        let number = numbered.then_some(block);
        if !disk.exists(&path) || Page::decode_numbered(number, &bytes).is_none() {
            continue;
        }
        let offset = block as u64 * BLOCK_SIZE as u64;
        let place = disk
            .read_at(&path, offset, BLOCK_SIZE)
            .map_err(|source| StorageError::io("read", &path, source))?;
        if Page::decode_numbered(number, &place).is_some() {
            continue;
        }
        tracing::warn!(
            path,
            block,
            "torn block restored from the double-write area"
        );
        disk.write_at(&path, offset, &bytes)
            .map_err(|source| StorageError::io("write", &path, source))?;
        *restored.entry(path).or_default() += 1;
    }
    for path in restored.keys() {
        disk.sync(path)
            .await
            .map_err(|source| StorageError::io("sync", path, source))?;
    }
    clear(disk).await?;
    Ok(restored.values().sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::disk::DiskFuture;
    use std::sync::Mutex;

    /// Files in memory; every write is visible at once and `sync` has nothing to do (what
    /// these tests look at is which bytes end up where, not durability).
    #[derive(Default)]
    struct MemDisk(Mutex<BTreeMap<String, Vec<u8>>>);

    impl Disk for MemDisk {
        fn create(&self, path: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().insert(path.into(), Vec::new());
            Ok(())
        }
        fn exists(&self, path: &str) -> bool {
            self.0.lock().unwrap().contains_key(path)
        }
        fn append(&self, path: &str, data: &[u8]) -> std::io::Result<u64> {
            let mut files = self.0.lock().unwrap();
            let file = files.get_mut(path).expect("created");
            file.extend_from_slice(data);
            Ok((file.len() - data.len()) as u64)
        }
        fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> std::io::Result<()> {
            let mut files = self.0.lock().unwrap();
            let file = files.get_mut(path).expect("created");
            let end = offset as usize + data.len();
            if file.len() < end {
                file.resize(end, 0);
            }
            file[offset as usize..end].copy_from_slice(data);
            Ok(())
        }
        fn read_at(&self, path: &str, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
            let files = self.0.lock().unwrap();
            let file = &files[path];
            let start = (offset as usize).min(file.len());
            Ok(file[start..(start + len).min(file.len())].to_vec())
        }
        fn len(&self, path: &str) -> std::io::Result<u64> {
            Ok(self.0.lock().unwrap()[path].len() as u64)
        }
        fn truncate(&self, path: &str, len: u64) -> std::io::Result<()> {
            let mut files = self.0.lock().unwrap();
            files
                .get_mut(path)
                .expect("created")
                .resize(len as usize, 0);
            Ok(())
        }
        fn rename(&self, _: &str, _: &str) -> std::io::Result<()> {
            unimplemented!("not used here")
        }
        fn remove(&self, path: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().remove(path);
            Ok(())
        }
        fn create_dir(&self, _: &str) -> std::io::Result<()> {
            Ok(())
        }
        fn list(&self, _: &str) -> std::io::Result<Vec<String>> {
            unimplemented!("not used here")
        }
        fn sync<'a>(&'a self, _: &'a str) -> DiskFuture<'a> {
            Box::pin(async { Ok(()) })
        }
        fn sync_dir<'a>(&'a self, _: &'a str) -> DiskFuture<'a> {
            Box::pin(async { Ok(()) })
        }
    }

    const FILE: TableFile = TableFile {
        id: 7,
        kind: TableKind::Heap,
    };

    fn page(lsn: u64, fill: u8) -> Page {
        let mut page = Page::default();
        page.lsn = lsn;
        page.put(1, vec![fill; 6000]);
        page
    }

    /// Runs a future whose every await is ready at once (the [`MemDisk`]'s).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::pin!(f).poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("a MemDisk future never waits"),
        }
    }

    /// A disk holding `FILE` with two blocks, `old` at block 1.
    fn disk_with(old: &Page) -> MemDisk {
        let disk = MemDisk::default();
        disk.create_dir(CONTROL_DIR).unwrap();
        disk.create_dir("base").unwrap();
        disk.create(&FILE.path()).unwrap();
        disk.write_at(&FILE.path(), 0, &page(1, 9).encode(0))
            .unwrap();
        disk.write_at(&FILE.path(), BLOCK_SIZE as u64, &old.encode(1))
            .unwrap();
        disk
    }

    fn block(disk: &MemDisk, n: u32) -> Option<Page> {
        let bytes = disk
            .read_at(&FILE.path(), n as u64 * BLOCK_SIZE as u64, BLOCK_SIZE)
            .unwrap();
        Page::decode(n, &bytes)
    }

    #[test]
    fn a_block_torn_at_its_place_is_restored_from_its_last_entry() {
        let (old, older, new) = (page(5, 1), page(3, 3), page(8, 2));
        let disk = disk_with(&old);
        let entries = [(FILE, 1, older.encode(1)), (FILE, 1, new.encode(1))];
        block_on(write_batch(&disk, &entries)).unwrap();
        // Power lost mid-overwrite: the first 4 KiB page new, the second old.
        let mut torn = old.encode(1);
        torn[..4096].copy_from_slice(&new.encode(1)[..4096]);
        disk.write_at(&FILE.path(), BLOCK_SIZE as u64, &torn)
            .unwrap();
        assert_eq!(block(&disk, 1), None);
        assert_eq!(block_on(restore(&disk, true)).unwrap(), 1);
        assert_eq!(block(&disk, 1), Some(new));
        assert_eq!(
            disk.len(DOUBLEWRITE_PATH).unwrap(),
            0,
            "the area is emptied"
        );
    }

    #[test]
    fn a_torn_tail_of_the_area_is_ignored_and_the_whole_entries_before_it_kept() {
        let (old, new) = (page(5, 1), page(8, 2));
        let disk = disk_with(&old);
        let entries = [(FILE, 1, new.encode(1)), (FILE, 0, page(9, 4).encode(0))];
        block_on(write_batch(&disk, &entries)).unwrap();
        disk.truncate(DOUBLEWRITE_PATH, (ENTRY_LEN + 4100) as u64)
            .unwrap();
        // Block 1 is torn, block 0 (whose entry is cut short) fails too: only block 1 returns.
        let mut torn = old.encode(1);
        torn[4096..].copy_from_slice(&new.encode(1)[4096..]);
        disk.write_at(&FILE.path(), BLOCK_SIZE as u64, &torn)
            .unwrap();
        disk.write_at(&FILE.path(), 0, &[0xee; 100]).unwrap();
        assert_eq!(block_on(restore(&disk, true)).unwrap(), 1);
        assert_eq!(block(&disk, 1), Some(new));
        assert_eq!(block(&disk, 0), None, "no whole entry: the damage stays");
    }

    #[test]
    fn a_garbage_area_restores_nothing() {
        let old = page(5, 1);
        let disk = disk_with(&old);
        disk.create(DOUBLEWRITE_PATH).unwrap();
        disk.append(DOUBLEWRITE_PATH, &[0x5a; ENTRY_LEN + 10])
            .unwrap();
        assert_eq!(block_on(restore(&disk, true)).unwrap(), 0);
        assert_eq!(block(&disk, 1), Some(old));
    }

    #[test]
    fn an_intact_block_at_its_place_is_left_alone() {
        let (old, new) = (page(5, 1), page(8, 2));
        let disk = disk_with(&old);
        // The entry was made durable, but the in-place write never reached the disk.
        block_on(write_batch(&disk, &[(FILE, 1, new.encode(1))])).unwrap();
        assert_eq!(block_on(restore(&disk, true)).unwrap(), 0);
        assert_eq!(block(&disk, 1), Some(old));
    }
}
