//! The buffer cache: decoded blocks, bounded by `cache_blocks_max`, evicted least recently used
//! first. A block is checksum-verified every time it is read from disk. Dirty blocks are
//! written only by a checkpoint, through the double-write area; eviction drops clean ones.

use std::collections::BTreeMap;

use crate::io::Disk;

use super::doublewrite::Image;
use super::page::{Page, BLOCK_SIZE};
use super::{Lsn, StorageError, TableId, TableKind};

/// The file a table's blocks live in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableFile {
    pub id: TableId,
    pub kind: TableKind,
}

impl TableFile {
    pub fn dir(kind: TableKind) -> &'static str {
        match kind {
            TableKind::Heap => "base",
            TableKind::AppendOptimized => "ao",
        }
    }

    pub fn path(&self) -> String {
        format!("{}/{}", TableFile::dir(self.kind), self.id)
    }
}

/// A block of a table file.
pub type BlockId = (TableFile, u32);

/// Reads block `block` of `file` from disk and verifies it.
///
/// `numbered`: the checksum covers the block number (off only for the planted bug
/// `page-checksum-skips-block-number`).
pub fn read_block(
    disk: &dyn Disk,
    file: TableFile,
    block: u32,
    numbered: bool,
) -> Result<Page, StorageError> {
    let path = file.path();
    let bytes = disk
        .read_at(&path, block as u64 * BLOCK_SIZE as u64, BLOCK_SIZE)
        .map_err(|source| StorageError::io("read", &path, source))?;
    Page::decode_numbered(numbered.then_some(block), &bytes)
        .ok_or(StorageError::Corrupt { file: path, block })
}

/// Writes a block to its place in the file (no fsync: a checkpoint syncs). Unless the block
/// is one that redo rebuilds whole anyway, its image must be durable in the double-write area
/// first (see [`super::doublewrite`]): a crash can tear an in-place write.
pub fn write_block(
    disk: &dyn Disk,
    file: TableFile,
    block: u32,
    page: &Page,
    numbered: bool,
) -> Result<(), StorageError> {
    write_encoded(
        disk,
        file,
        block,
        &page.encode_numbered(numbered.then_some(block)),
    )
}

/// Writes an encoded block to its place in the file (no fsync).
fn write_encoded(
    disk: &dyn Disk,
    file: TableFile,
    block: u32,
    bytes: &[u8],
) -> Result<(), StorageError> {
    let path = file.path();
    disk.write_at(&path, block as u64 * BLOCK_SIZE as u64, bytes)
        .map_err(|source| StorageError::io("write", &path, source))
}

#[derive(Debug)]
struct Frame {
    page: Page,
    dirty: bool,
    pinned: bool,
    tick: u64,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub blocks_written: u64,
}

#[derive(Debug)]
pub struct BufferCache {
    max: usize,
    frames: BTreeMap<BlockId, Frame>,
    /// Last-use tick -> block; the first entry is the least recently used.
    lru: BTreeMap<u64, BlockId>,
    tick: u64,
    pub stats: CacheStats,
    /// Planted bug: eviction ignores the WAL-before-data rule.
    evict_before_wal_flush: bool,
    /// Block checksums cover the block number (off only for a planted bug).
    numbered: bool,
    /// Dirty blocks reach their place only through the double-write area, so only a
    /// checkpoint writes them (off only for the planted bug `torn-page-unprotected`).
    doublewrite: bool,
}

impl BufferCache {
    pub fn new(max: usize) -> BufferCache {
        BufferCache {
            max: max.max(1),
            frames: BTreeMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            stats: CacheStats::default(),
            evict_before_wal_flush: false,
            numbered: true,
            doublewrite: true,
        }
    }

    /// Planted bug `torn-page-unprotected`: dirty blocks are written in place without their
    /// image in the double-write area first, by eviction as well as by a checkpoint.
    pub fn without_doublewrite(mut self, on: bool) -> BufferCache {
        self.doublewrite = !on;
        self
    }

    /// Whether dirty blocks go through the double-write area.
    pub fn doublewrite(&self) -> bool {
        self.doublewrite
    }

    /// Planted bug `page-checksum-skips-block-number`: block checksums leave out the block
    /// number, so a valid block at another block's place passes.
    pub fn checksums_without_block_number(mut self, on: bool) -> BufferCache {
        self.numbered = !on;
        self
    }

    /// Whether block checksums cover the block number.
    pub fn numbered(&self) -> bool {
        self.numbered
    }

    /// The bound this cache was built with.
    /// Blocks cached now (above [`BufferCache::max`] only while none may go).
    pub fn cached_blocks(&self) -> usize {
        self.frames.len()
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Turns the planted bug `evict-before-wal-flush` on or off.
    pub fn evicting_before_wal_flush(mut self, on: bool) -> BufferCache {
        self.evict_before_wal_flush = on;
        self
    }

    fn touch(&mut self, id: BlockId) {
        let frame = self.frames.get_mut(&id).expect("touched block is cached");
        self.lru.remove(&frame.tick);
        self.tick += 1;
        frame.tick = self.tick;
        self.lru.insert(self.tick, id);
    }

    /// Makes `id` resident (reading and verifying it on a miss) and returns it.
    pub fn read(
        &mut self,
        disk: &dyn Disk,
        flushed: Lsn,
        id: BlockId,
    ) -> Result<&Page, StorageError> {
        self.load(disk, flushed, id)?;
        Ok(&self.frames[&id].page)
    }

    /// Makes `id` resident and keeps it so until [`BufferCache::unpin_all`].
    pub fn load_pinned(
        &mut self,
        disk: &dyn Disk,
        flushed: Lsn,
        id: BlockId,
    ) -> Result<(), StorageError> {
        self.load(disk, flushed, id)?;
        self.frames.get_mut(&id).expect("loaded").pinned = true;
        Ok(())
    }

    fn load(&mut self, disk: &dyn Disk, flushed: Lsn, id: BlockId) -> Result<(), StorageError> {
        // Every access shrinks a cache that grew past its bound while blocks waited for a WAL
        // flush, not only misses, or a workload that keeps hitting would never shrink it.
        let hit = self.frames.contains_key(&id);
        let room = if hit { self.max } else { self.max - 1 };
        self.shrink_to(disk, flushed, room, Some(id))?;
        if hit {
            self.stats.hits += 1;
            self.touch(id);
        } else {
            self.stats.misses += 1;
            let page = read_block(disk, id.0, id.1, self.numbered)?;
            self.insert(id, page, false);
        }
        Ok(())
    }

    /// Adds a block that exists only in memory so far (a new block at the end of a file). It
    /// never evicts, so applying a logged transaction cannot fail; the cache shrinks back on
    /// the next read.
    pub fn insert_new(&mut self, id: BlockId, page: Page) {
        debug_assert!(
            !self.frames.contains_key(&id),
            "new block {id:?} already cached"
        );
        self.insert(id, page, true);
        self.frames.get_mut(&id).expect("inserted").pinned = true;
    }

    fn insert(&mut self, id: BlockId, page: Page, dirty: bool) {
        self.tick += 1;
        self.lru.insert(self.tick, id);
        let frame = Frame {
            page,
            dirty,
            pinned: false,
            tick: self.tick,
        };
        self.frames.insert(id, frame);
    }

    /// A resident page, for reading.
    pub fn page(&self, id: BlockId) -> &Page {
        &self.frames.get(&id).expect("block is resident").page
    }

    /// A resident page, for changing; it becomes dirty.
    pub fn page_mut(&mut self, id: BlockId) -> &mut Page {
        let frame = self.frames.get_mut(&id).expect("block is resident");
        frame.dirty = true;
        &mut frame.page
    }

    /// Drops every block of `file` (a dropped table's), dirty or not: nothing writes them.
    pub fn forget(&mut self, file: TableFile) {
        let ids: Vec<BlockId> = self
            .frames
            .range((file, 0)..=(file, u32::MAX))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let frame = self.frames.remove(&id).expect("listed above");
            self.lru.remove(&frame.tick);
        }
    }

    pub fn unpin_all(&mut self) {
        for frame in self.frames.values_mut() {
            frame.pinned = false;
        }
    }

    /// Evicts down to the bound as far as the WAL-before-data rule allows.
    pub fn shrink(&mut self, disk: &dyn Disk, flushed: Lsn) -> Result<(), StorageError> {
        self.shrink_to(disk, flushed, self.max, None)
    }

    /// Evicts least recently used blocks other than `keep` until at most `target` remain or
    /// no block may go.
    fn shrink_to(
        &mut self,
        disk: &dyn Disk,
        flushed: Lsn,
        target: usize,
        keep: Option<BlockId>,
    ) -> Result<(), StorageError> {
        let numbered = self.numbered;
        while self.frames.len() > target {
            let victim = self.lru.values().copied().find(|id| {
                let frame = &self.frames[id];
                if Some(*id) == keep {
                    return false;
                }
                // WAL before data: a dirty block may reach disk only once the WAL up to its
                // page LSN is durable. Otherwise a crash could leave a block holding changes
                // of a transaction whose commit record is lost, and redo (which only adds
                // committed work) could never take them out again.
                //
                // Torn writes: a dirty block's image must be durable in the double-write area
                // before it is written in place, which takes an fsync this synchronous path
                // cannot wait for. So a dirty block stays (the bound is soft) until the next
                // checkpoint writes it through the area.
                let writable = !self.doublewrite && frame.page.lsn <= flushed;
                !frame.pinned && (!frame.dirty || writable || self.evict_before_wal_flush)
            });
            // Nothing evictable: every block is pinned or waits for a WAL flush. Exceed the
            // bound for now (a soft limit); a later read shrinks the cache again.
            let Some(id) = victim else { break };
            let frame = &self.frames[&id];
            if frame.dirty {
                write_block(disk, id.0, id.1, &frame.page, numbered)?;
                self.stats.blocks_written += 1;
            }
            let frame = self.frames.remove(&id).expect("victim is cached");
            self.lru.remove(&frame.tick);
            self.stats.evictions += 1;
        }
        Ok(())
    }

    /// The encoded image of every dirty block (a checkpoint, after flushing the WAL to its
    /// end), to go to the double-write area and then to [`BufferCache::write_in_place`].
    pub fn dirty_images(&self, flushed: Lsn) -> Vec<Image> {
        let numbered = self.numbered;
        self.frames
            .iter()
            .filter(|(_, f)| f.dirty)
            .map(|(id, frame)| {
                assert!(
                    frame.page.lsn <= flushed,
                    "checkpoint writes block {id:?} with page lsn {} beyond flushed {flushed}",
                    frame.page.lsn
                );
                let bytes = frame.page.encode_numbered(numbered.then_some(id.1));
                (id.0, id.1, bytes)
            })
            .collect()
    }

    /// The encoded image of every dirty block whose changes are all in the WAL flushed up to
    /// `flushed` (a mirror's write-back: it may have applied records not yet flushed).
    pub fn dirty_images_upto(&self, flushed: Lsn) -> Vec<Image> {
        let numbered = self.numbered;
        self.frames
            .iter()
            .filter(|(_, f)| f.dirty && f.page.lsn <= flushed)
            .map(|(id, frame)| {
                let bytes = frame.page.encode_numbered(numbered.then_some(id.1));
                (id.0, id.1, bytes)
            })
            .collect()
    }

    /// Writes `images` (from [`BufferCache::dirty_images`], nothing changed since) at their
    /// places; their blocks are clean from now on.
    pub fn write_in_place(
        &mut self,
        disk: &dyn Disk,
        images: &[Image],
    ) -> Result<(), StorageError> {
        for (file, block, bytes) in images {
            write_encoded(disk, *file, *block, bytes)?;
            if let Some(frame) = self.frames.get_mut(&(*file, *block)) {
                frame.dirty = false;
            }
            self.stats.blocks_written += 1;
        }
        Ok(())
    }
}
