//! Turning logical writes into physiological records (planning), and applying a committed
//! batch of records to blocks. Planning reads only in-memory metadata and changes nothing, so
//! a refused write leaves the engine as it was. Applying is shared by commit and redo.

use std::collections::BTreeMap;

use super::cache::BlockId;
use super::page::{tuple_size, Page, TUPLE_SPACE};
use super::table::{Slot, Table};
use super::{Engine, Key, Lsn, Record, StorageError, TableId, TableKind, Value, Write, Xid};

/// A view of the tables' metadata with a batch's earlier writes layered on top.
struct Planner<'a> {
    tables: &'a BTreeMap<TableId, Table>,
    slots: BTreeMap<(TableId, Key), Option<Slot>>,
    free: BTreeMap<(TableId, u32), usize>,
    nblocks: BTreeMap<TableId, u32>,
}

impl<'a> Planner<'a> {
    fn new(tables: &'a BTreeMap<TableId, Table>) -> Planner<'a> {
        Planner {
            tables,
            slots: BTreeMap::new(),
            free: BTreeMap::new(),
            nblocks: BTreeMap::new(),
        }
    }

    fn table(&self, id: TableId) -> Result<&'a Table, StorageError> {
        self.tables.get(&id).ok_or(StorageError::UnknownTable(id))
    }

    fn slot(&self, table: &Table, key: Key) -> Option<Slot> {
        match self.slots.get(&(table.def.id, key)) {
            Some(slot) => *slot,
            None => table.index.get(&key).copied(),
        }
    }

    fn free(&self, table: &Table, block: u32) -> usize {
        match self.free.get(&(table.def.id, block)) {
            Some(free) => *free,
            None => table
                .free
                .get(block as usize)
                .copied()
                .unwrap_or(TUPLE_SPACE),
        }
    }

    fn nblocks(&self, table: &Table) -> u32 {
        self.nblocks
            .get(&table.def.id)
            .copied()
            .unwrap_or(table.nblocks())
    }

    fn set_free(&mut self, table: &Table, block: u32, free: usize) {
        self.free.insert((table.def.id, block), free);
    }

    /// Claims `size` bytes in a block chosen by the table's placement rule.
    fn place(&mut self, table: &Table, size: usize) -> u32 {
        let nblocks = self.nblocks(table);
        let block = match table.def.kind {
            // Heap: the first block with room, so space freed by deletes is reused.
            TableKind::Heap => (0..nblocks).find(|&b| self.free(table, b) >= size),
            // Append-optimized: only the last block, so files are written block by block.
            TableKind::AppendOptimized => nblocks
                .checked_sub(1)
                .filter(|&last| self.free(table, last) >= size),
        };
        let block = block.unwrap_or_else(|| {
            self.nblocks.insert(table.def.id, nblocks + 1);
            nblocks
        });
        let free = self.free(table, block);
        self.set_free(table, block, free - size);
        block
    }

    /// Validates one write against the table and the batch so far, and plans its records.
    fn plan(&mut self, xid: Xid, write: &Write, out: &mut Vec<Record>) -> Result<(), StorageError> {
        let table = self.table(write.table())?;
        let key = write.key();
        let slot = self.slot(table, key);
        let refuse = |action| StorageError::AppendOnly {
            table: table.def.name.clone(),
            key,
            action,
        };
        match (write, table.def.kind) {
            (Write::Delete { .. }, TableKind::AppendOptimized) => Err(refuse("deleted")),
            (Write::Put { .. }, TableKind::AppendOptimized) if slot.is_some() => {
                Err(refuse("overwritten"))
            }
            (Write::Delete { .. }, TableKind::Heap) => {
                if let Some(old) = slot {
                    out.push(self.vacate(xid, table, key, old));
                }
                Ok(())
            }
            (Write::Put { value, .. }, _) => {
                let size = tuple_size(value.len());
                if size > TUPLE_SPACE {
                    return Err(StorageError::TupleTooLarge {
                        table: table.def.name.clone(),
                        key,
                        size,
                        max: TUPLE_SPACE,
                    });
                }
                let block = self.place_put(xid, table, key, size, slot, out);
                out.push(put_record(xid, table, block, key, value.clone()));
                Ok(())
            }
        }
    }

    /// Frees a row's space and plans its delete record.
    fn vacate(&mut self, xid: Xid, table: &Table, key: Key, old: Slot) -> Record {
        let free = self.free(table, old.block);
        self.set_free(table, old.block, free + old.size);
        self.slots.insert((table.def.id, key), None);
        Record::HeapDelete {
            xid,
            table: table.def.id,
            block: old.block,
            key,
        }
    }

    /// Chooses the block for a put of `size` bytes (planning a delete first if the row moves).
    fn place_put(
        &mut self,
        xid: Xid,
        table: &Table,
        key: Key,
        size: usize,
        slot: Option<Slot>,
        out: &mut Vec<Record>,
    ) -> u32 {
        let block = match slot {
            // An update stays in its block when the new row fits there.
            Some(old) if self.free(table, old.block) + old.size >= size => {
                let free = self.free(table, old.block);
                self.set_free(table, old.block, free + old.size - size);
                old.block
            }
            Some(old) => {
                out.push(self.vacate(xid, table, key, old));
                self.place(table, size)
            }
            None => self.place(table, size),
        };
        self.slots
            .insert((table.def.id, key), Some(Slot { block, size }));
        block
    }
}

fn put_record(xid: Xid, table: &Table, block: u32, key: Key, value: Value) -> Record {
    let table_id = table.def.id;
    match table.def.kind {
        TableKind::Heap => Record::HeapPut {
            xid,
            table: table_id,
            block,
            key,
            value,
        },
        TableKind::AppendOptimized => Record::AoAppend {
            xid,
            table: table_id,
            block,
            key,
            value,
        },
    }
}

/// The block a data record changes.
fn record_block(record: &Record) -> Option<(TableId, u32)> {
    match record {
        Record::HeapPut { table, block, .. }
        | Record::HeapDelete { table, block, .. }
        | Record::AoAppend { table, block, .. } => Some((*table, *block)),
        _ => None,
    }
}

/// A data record that does not fit the block it names: the WAL disagrees with the pages.
#[derive(Debug)]
pub struct Misfit;

impl Engine {
    /// Validates `writes` and turns them into data records, changing nothing.
    pub(crate) fn plan(&self, xid: Xid, writes: &[Write]) -> Result<Vec<Record>, StorageError> {
        let mut planner = Planner::new(&self.tables);
        let mut records = Vec::new();
        for write in writes {
            planner.plan(xid, write, &mut records)?;
        }
        Ok(records)
    }

    /// Reads and pins the existing blocks a batch changes, so that applying it cannot fail on
    /// I/O. Blocks past a table's end are created when the batch is applied.
    pub(crate) fn load_batch(&mut self, records: &[Record]) -> Result<(), StorageError> {
        let flushed = self.wal.flushed_lsn();
        for (table_id, block) in records.iter().filter_map(record_block) {
            let table = self
                .tables
                .get(&table_id)
                .ok_or(StorageError::UnknownTable(table_id))?;
            if block < table.nblocks() {
                let id = (table.file, block);
                if let Err(err) = self.cache.load_pinned(&*self.disk, flushed, id) {
                    self.cache.unpin_all();
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// Applies a committed batch whose commit record ends at `commit_end`. Every block gets
    /// page LSN `commit_end`, so the whole transaction's WAL is durable before any of its
    /// blocks may reach disk. A block whose page LSN is already there holds the transaction
    /// (redo after a crash), so only the index and free space are brought along.
    pub(crate) fn apply_batch(
        &mut self,
        records: &[Record],
        commit_end: Lsn,
    ) -> Result<(), Misfit> {
        let mut apply: BTreeMap<BlockId, bool> = BTreeMap::new();
        let mut result = Ok(());
        for record in records {
            let Some((table_id, block)) = record_block(record) else {
                continue;
            };
            let table = self
                .tables
                .get_mut(&table_id)
                .expect("loaded batch names known tables");
            let id = (table.file, block);
            if block >= table.nblocks() {
                for new in table.nblocks()..=block {
                    self.cache.insert_new((table.file, new), Page::default());
                }
                table.grow_to(block);
            }
            let changes = match apply.get(&id) {
                Some(changes) => *changes,
                None => {
                    let changes = self.cache.page(id).lsn < commit_end;
                    apply.insert(id, changes);
                    changes
                }
            };
            if changes {
                let page = self.cache.page_mut(id);
                if apply_record(page, record).is_err() {
                    result = Err(Misfit);
                }
                page.lsn = commit_end;
            }
            index_record(table, record);
            table.note_free(block, self.cache.page(id));
        }
        self.cache.unpin_all();
        result
    }
}

fn apply_record(page: &mut Page, record: &Record) -> Result<(), Misfit> {
    match record {
        Record::HeapPut { key, value, .. } | Record::AoAppend { key, value, .. } => {
            if !page.fits(*key, value.len()) {
                return Err(Misfit);
            }
            page.put(*key, value.clone());
        }
        Record::HeapDelete { key, .. } => {
            page.remove(*key);
        }
        _ => {}
    }
    Ok(())
}

/// Keeps the index in step with a record whether or not its block needed the change: the last
/// record touching a key decides where it lives.
fn index_record(table: &mut Table, record: &Record) {
    match record {
        Record::HeapPut {
            block, key, value, ..
        }
        | Record::AoAppend {
            block, key, value, ..
        } => {
            let slot = Slot {
                block: *block,
                size: tuple_size(value.len()),
            };
            table.index.insert(*key, slot);
        }
        Record::HeapDelete { key, .. } => {
            table.index.remove(key);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::TableDef;

    fn tables() -> BTreeMap<TableId, Table> {
        let heap = TableDef {
            id: 1,
            name: "heap".into(),
            kind: TableKind::Heap,
            schema: None,
        };
        let ao = TableDef {
            id: 2,
            name: "ao".into(),
            kind: TableKind::AppendOptimized,
            schema: None,
        };
        BTreeMap::from([(1, Table::empty(heap)), (2, Table::empty(ao))])
    }

    fn put(table: TableId, key: Key, len: usize) -> Write {
        Write::Put {
            table,
            key,
            value: vec![7; len],
        }
    }

    fn plan(
        tables: &BTreeMap<TableId, Table>,
        writes: &[Write],
    ) -> Result<Vec<Record>, StorageError> {
        let mut planner = Planner::new(tables);
        let mut out = Vec::new();
        for write in writes {
            planner.plan(1, write, &mut out)?;
        }
        Ok(out)
    }

    fn blocks(records: &[Record]) -> Vec<(TableId, u32)> {
        records.iter().filter_map(record_block).collect()
    }

    #[test]
    fn heap_rows_go_to_the_first_block_with_room() {
        let tables = tables();
        // Two 3 KiB rows fill most of a block; the third opens block 1; the small fourth
        // still fits in block 0.
        let writes = [
            put(1, 1, 3000),
            put(1, 2, 3000),
            put(1, 3, 3000),
            put(1, 4, 100),
        ];
        let records = plan(&tables, &writes).unwrap();
        assert_eq!(blocks(&records), vec![(1, 0), (1, 0), (1, 1), (1, 0)]);
    }

    #[test]
    fn a_heap_update_that_no_longer_fits_moves_with_a_delete_and_a_put() {
        let tables = tables();
        let writes = [put(1, 1, 4050), put(1, 2, 4050), put(1, 1, 4200)];
        let records = plan(&tables, &writes).unwrap();
        assert_eq!(blocks(&records), vec![(1, 0), (1, 0), (1, 0), (1, 1)]);
        assert!(matches!(
            records[2],
            Record::HeapDelete {
                key: 1,
                block: 0,
                ..
            }
        ));
        // In place when it fits.
        let records = plan(&tables, &[put(1, 1, 4000), put(1, 1, 10)]).unwrap();
        assert_eq!(blocks(&records), vec![(1, 0), (1, 0)]);
    }

    #[test]
    fn append_optimized_rows_only_append_and_refuse_changes() {
        let tables = tables();
        let writes = [
            put(2, 1, 3000),
            put(2, 2, 3000),
            put(2, 3, 3000),
            put(2, 4, 100),
        ];
        let records = plan(&tables, &writes).unwrap();
        assert_eq!(blocks(&records), vec![(2, 0), (2, 0), (2, 1), (2, 1)]);
        let again = plan(&tables, &[put(2, 5, 1), put(2, 5, 1)]).unwrap_err();
        assert!(
            matches!(again, StorageError::AppendOnly { key: 5, .. }),
            "{again}"
        );
        let delete = plan(&tables, &[Write::Delete { table: 2, key: 1 }]).unwrap_err();
        assert!(
            matches!(delete, StorageError::AppendOnly { .. }),
            "{delete}"
        );
    }

    #[test]
    fn oversized_rows_and_unknown_tables_are_refused() {
        let tables = tables();
        let big = plan(&tables, &[put(1, 1, TUPLE_SPACE)]).unwrap_err();
        assert!(matches!(big, StorageError::TupleTooLarge { .. }), "{big}");
        assert!(plan(&tables, &[put(1, 1, TUPLE_SPACE - 12)]).is_ok());
        let unknown = plan(&tables, &[put(9, 1, 1)]).unwrap_err();
        assert!(
            matches!(unknown, StorageError::UnknownTable(9)),
            "{unknown}"
        );
    }
}
