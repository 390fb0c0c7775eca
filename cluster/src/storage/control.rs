//! The control file, `global/control`: where redo starts, which tables exist, and which
//! transactions are prepared but unresolved as of that point.
//!
//! Format: `[crc32c: u32 LE][len: u32 LE][body: postcard]`. It is replaced atomically: written
//! to `global/control.tmp`, synced, renamed over the old one, and the directory synced, so a
//! crash leaves either the old or the new file, never a mix.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::io::Disk;

use super::{Lsn, StorageError, TableDef, TableId, Write, Xid};

pub const CONTROL_DIR: &str = "global";
pub const CONTROL_PATH: &str = "global/control";
const CONTROL_TMP_PATH: &str = "global/control.tmp";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    /// Redo starts here: every change before it is in the synced table files.
    pub redo_lsn: Lsn,
    pub tables: Vec<TableDef>,
    /// How many blocks each table file held, all written and synced, at the checkpoint. A
    /// block past this was first written after it, so redo from `redo_lsn` can rebuild it
    /// whole if a crash left it torn.
    pub checkpoint_blocks: BTreeMap<TableId, u32>,
    /// Prepared transactions unresolved at `redo_lsn`, with their writes.
    pub prepared: BTreeMap<Xid, Vec<Write>>,
}

impl Control {
    fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        let body = postcard::to_allocvec(self).expect("control file serializes");
        let mut out = Vec::with_capacity(body.len() + 8);
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Control> {
        let crc = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
        let len = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
        let body = bytes.get(8..8 + len)?;
        if bytes.len() != 8 + len || crc32c::crc32c(body) != crc {
            return None;
        }
        postcard::from_bytes(body).ok()
    }

    /// Reads the control file; `None` if there is none (an instance never initialized).
    pub fn read(disk: &dyn Disk) -> Result<Option<Control>, StorageError> {
        if !disk.exists(CONTROL_PATH) {
            return Ok(None);
        }
        let io = |op| move |source| StorageError::io(op, CONTROL_PATH, source);
        let len = disk.len(CONTROL_PATH).map_err(io("stat"))?;
        let bytes = disk
            .read_at(CONTROL_PATH, 0, len as usize)
            .map_err(io("read"))?;
        Control::decode(&bytes)
            .map(Some)
            .ok_or_else(|| StorageError::CorruptControl {
                path: CONTROL_PATH.to_string(),
            })
    }

    /// Replaces the control file durably.
    pub async fn write(&self, disk: &dyn Disk) -> Result<(), StorageError> {
        let tmp = CONTROL_TMP_PATH;
        let io = |op| move |source| StorageError::io(op, tmp, source);
        if disk.exists(tmp) {
            disk.truncate(tmp, 0).map_err(io("truncate"))?;
        } else {
            disk.create(tmp).map_err(io("create"))?;
        }
        disk.write_at(tmp, 0, &self.encode()).map_err(io("write"))?;
        disk.sync(tmp).await.map_err(io("sync"))?;
        disk.rename(tmp, CONTROL_PATH).map_err(io("rename"))?;
        disk.sync_dir(CONTROL_DIR)
            .await
            .map_err(|source| StorageError::io("sync", CONTROL_DIR, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::TableKind;

    #[test]
    fn control_round_trips_and_rejects_damage() {
        let control = Control {
            redo_lsn: 4242,
            tables: vec![TableDef {
                id: 1,
                name: "t".into(),
                kind: TableKind::Heap,
                schema: None,
            }],
            checkpoint_blocks: BTreeMap::from([(1, 3)]),
            prepared: BTreeMap::from([(9, vec![Write::Delete { table: 1, key: 2 }])]),
        };
        let bytes = control.encode();
        assert_eq!(Control::decode(&bytes), Some(control));
        for at in 0..bytes.len() {
            let mut copy = bytes.clone();
            copy[at] ^= 1;
            assert_eq!(Control::decode(&copy), None, "flip at byte {at}");
        }
        assert_eq!(Control::decode(&bytes[..bytes.len() - 1]), None);
    }
}
