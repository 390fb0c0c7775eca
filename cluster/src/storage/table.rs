//! Per-table metadata kept in memory: the key index and free space per block, rebuilt at open
//! by scanning the table file, then maintained as records are applied.

use std::collections::BTreeMap;

use crate::io::Disk;

use super::cache::{read_block, write_block, TableFile};
use super::page::{tuple_size, Page, BLOCK_SIZE, TUPLE_SPACE};
use super::{Key, StorageError, TableDef};

/// Where a row lives and how much room it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub block: u32,
    pub size: usize,
}

#[derive(Debug)]
pub struct Table {
    pub def: TableDef,
    pub file: TableFile,
    pub index: BTreeMap<Key, Slot>,
    /// Free bytes in each block; its length is the number of blocks.
    pub free: Vec<usize>,
    /// Blocks the file held at the last checkpoint (see `Control::checkpoint_blocks`).
    pub checkpoint_blocks: u32,
}

impl Table {
    /// A table with no rows and no blocks.
    pub fn empty(def: TableDef) -> Table {
        let file = TableFile {
            id: def.id,
            kind: def.kind,
        };
        Table {
            def,
            file,
            index: BTreeMap::new(),
            free: Vec::new(),
            checkpoint_blocks: 0,
        }
    }

    pub fn nblocks(&self) -> u32 {
        self.free.len() as u32
    }

    /// Rebuilds the index and free space from the table file. A block that is torn or zeroed
    /// past the checkpointed length was never synced, so all its content comes from WAL after
    /// the redo point; it is reset to empty for redo to refill. Damage inside the checkpointed
    /// length is real corruption. So is a block whose page LSN lies beyond `wal_end`, the end
    /// of the recovered WAL: it holds changes whose WAL was lost (the WAL-before-data rule was
    /// broken), which redo could never take out again.
    pub fn load(
        disk: &dyn Disk,
        def: TableDef,
        checkpoint_blocks: u32,
        wal_end: super::Lsn,
        numbered: bool,
    ) -> Result<Table, StorageError> {
        let mut table = Table::empty(def);
        table.checkpoint_blocks = checkpoint_blocks;
        let path = table.file.path();
        let len = disk
            .len(&path)
            .map_err(|source| StorageError::io("stat", &path, source))?;
        let nblocks = len.div_ceil(BLOCK_SIZE as u64) as u32;
        for block in 0..nblocks {
            let page = match read_block(disk, table.file, block, numbered) {
                Ok(page) => page,
                Err(StorageError::Corrupt { .. }) if block >= checkpoint_blocks => {
                    // Written in place without the double-write area: should a crash tear
                    // this write, the block is past the checkpointed length still, and reset
                    // again.
                    let page = Page::default();
                    write_block(disk, table.file, block, &page, numbered)?;
                    page
                }
                Err(err) => return Err(err),
            };
            if page.lsn > wal_end {
                return Err(StorageError::BlockBeyondWal {
                    file: path,
                    block,
                    page_lsn: page.lsn,
                    wal_end,
                });
            }
            // A key found in two blocks (a move whose two pages reached disk at different
            // times) is settled by redo, which replays the move.
            for (key, value) in page.rows() {
                let size = tuple_size(value.len());
                table.index.insert(key, Slot { block, size });
            }
            table.free.push(page.free());
        }
        Ok(table)
    }

    /// Records the free space of a block after a change (adding the block if it is new).
    pub fn note_free(&mut self, block: u32, page: &Page) {
        let block = block as usize;
        if block == self.free.len() {
            self.free.push(page.free());
        } else {
            self.free[block] = page.free();
        }
    }

    /// Extends the table with empty blocks so that `block` exists.
    pub fn grow_to(&mut self, block: u32) {
        while self.nblocks() <= block {
            self.free.push(TUPLE_SPACE);
        }
    }
}
