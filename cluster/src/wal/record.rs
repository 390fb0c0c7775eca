//! WAL records and their framing on disk.
//!
//! A frame is `[len: u32 LE][crc32c: u32 LE][body: postcard]`. The checksum covers the record's
//! own LSN (8 bytes LE) followed by the body, so a valid record copied to another offset (a
//! stale block, a misdirected write, a stream resent from the wrong position) fails its check.
//!
//! Records are physiological: data records name the block they change, so redo repeats the
//! placement the primary chose instead of choosing again. A transaction's data records and
//! its `Commit` are appended together at commit time; the `Commit` names where that batch
//! starts, so data records left behind by a batch torn in a crash are never mistaken for part
//! of a later transaction.

use serde::{Deserialize, Serialize};

use super::{Key, Lsn, TableDef, TableId, Value, Write, Xid};

/// Bytes before the body: length and checksum.
pub const FRAME_HEADER_LEN: usize = 8;
/// The largest body a frame may claim. A larger length is a corrupt header, not a record.
pub const RECORD_BODY_MAX: usize = 64 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    CreateTable {
        def: TableDef,
    },
    HeapPut {
        xid: Xid,
        table: TableId,
        block: u32,
        key: Key,
        #[serde(with = "serde_bytes")]
        value: Value,
    },
    HeapDelete {
        xid: Xid,
        table: TableId,
        block: u32,
        key: Key,
    },
    AoAppend {
        xid: Xid,
        table: TableId,
        block: u32,
        key: Key,
        #[serde(with = "serde_bytes")]
        value: Value,
    },
    /// Ends a batch that started at `first_lsn`; the batch's data records take effect.
    Commit {
        xid: Xid,
        first_lsn: Lsn,
    },
    /// The logical writes of a prepared transaction. Placement is chosen when it commits, so
    /// the writes land where there is room at that time.
    Prepare {
        xid: Xid,
        writes: Vec<Write>,
    },
    /// Ends the batch (from `first_lsn`) that applies a prepared transaction.
    CommitPrepared {
        xid: Xid,
        first_lsn: Lsn,
    },
    AbortPrepared {
        xid: Xid,
    },
    /// Informational: a checkpoint with this redo LSN completed (the control file is what
    /// recovery trusts).
    Checkpoint {
        redo_lsn: Lsn,
    },
    /// The table and its rows are gone; its file is removed by the next checkpoint, once the
    /// control file no longer names it. (Last, so the other records keep their encoding.)
    DropTable {
        id: TableId,
    },
}

impl Record {
    /// Whether the record changes a block (and so waits for its batch's commit record).
    pub fn is_data(&self) -> bool {
        matches!(
            self,
            Record::HeapPut { .. } | Record::HeapDelete { .. } | Record::AoAppend { .. }
        )
    }

    /// The transaction a data or transaction-control record belongs to.
    pub fn xid(&self) -> Option<Xid> {
        match self {
            Record::HeapPut { xid, .. }
            | Record::HeapDelete { xid, .. }
            | Record::AoAppend { xid, .. }
            | Record::Commit { xid, .. }
            | Record::Prepare { xid, .. }
            | Record::CommitPrepared { xid, .. }
            | Record::AbortPrepared { xid } => Some(*xid),
            Record::CreateTable { .. } | Record::DropTable { .. } | Record::Checkpoint { .. } => {
                None
            }
        }
    }
}

fn frame_crc(lsn: Lsn, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&lsn.to_le_bytes()), body)
}

/// Appends the frame of `record`, which will sit at `lsn`, to `out`; returns the frame's end LSN.
pub fn encode_frame(lsn: Lsn, record: &Record, out: &mut Vec<u8>) -> Lsn {
    // The body goes straight after room for the header, which is filled in last.
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    crate::io::codec::encode_append(record, out);
    let body = &out[start + FRAME_HEADER_LEN..];
    assert!(body.len() <= RECORD_BODY_MAX, "wal record body too large");
    let (len, crc) = (body.len(), frame_crc(lsn, body));
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    lsn + (FRAME_HEADER_LEN + len) as u64
}

/// What the bytes at an LSN hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole record; the next one starts at `end`.
    Complete { record: Record, end: Lsn },
    /// The bytes stop before the frame does (a torn tail, or a stream still arriving).
    /// `need` is the whole frame's length when the header is readable.
    Incomplete { need: Option<usize> },
    /// A whole frame whose checksum or body is wrong.
    Bad,
}

/// Decodes the frame at `lsn` from `buf`, which holds the bytes starting at `lsn`.
pub fn decode_frame(lsn: Lsn, buf: &[u8]) -> Frame {
    if buf.len() < FRAME_HEADER_LEN {
        return Frame::Incomplete { need: None };
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if len > RECORD_BODY_MAX {
        return Frame::Bad;
    }
    let total = FRAME_HEADER_LEN + len;
    if buf.len() < total {
        return Frame::Incomplete { need: Some(total) };
    }
    let body = &buf[FRAME_HEADER_LEN..total];
    if frame_crc(lsn, body) != crc {
        return Frame::Bad;
    }
    match crate::io::codec::decode::<Record>(body) {
        Ok(record) => Frame::Complete {
            record,
            end: lsn + total as u64,
        },
        Err(_) => Frame::Bad,
    }
}

/// The LSN of the first whole, valid frame that starts after `lsn` in `buf` (which holds the
/// bytes from `lsn`), if any. Recovery asks this where a frame is damaged: a crash leaves
/// garbage only past the last record it wrote, so a valid record further on means the damage
/// is in the middle of the log. The checksum covers each frame's own LSN, so bytes that merely
/// look like a frame at the wrong offset do not count. The frame the damaged header claims
/// to end at is tried first (a flipped bit in a body leaves the length whole).
pub fn next_valid_frame(lsn: Lsn, buf: &[u8]) -> Option<Lsn> {
    let valid_at = |at: usize| {
        at > 0
            && at < buf.len()
            && matches!(
                decode_frame(lsn + at as u64, &buf[at..]),
                Frame::Complete { .. }
            )
    };
    if buf.len() >= FRAME_HEADER_LEN {
        let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
        let claimed = FRAME_HEADER_LEN.saturating_add(len);
        if valid_at(claimed) {
            return Some(lsn + claimed as u64);
        }
    }
    (1..buf.len())
        .find(|at| valid_at(*at))
        .map(|at| lsn + at as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::TableKind;

    fn sample() -> Vec<Record> {
        vec![
            Record::CreateTable {
                def: TableDef {
                    id: 7,
                    name: "orders".into(),
                    kind: TableKind::AppendOptimized,
                    schema: None,
                },
            },
            Record::HeapPut {
                xid: 3,
                table: 7,
                block: 2,
                key: -5,
                value: vec![1, 2, 3],
            },
            Record::Commit {
                xid: 3,
                first_lsn: 0,
            },
            Record::Prepare {
                xid: 4,
                writes: vec![Write::Delete { table: 7, key: 9 }],
            },
        ]
    }

    fn encode_all(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut lsn = 0;
        for record in records {
            lsn = encode_frame(lsn, record, &mut out);
        }
        assert_eq!(lsn, out.len() as u64);
        out
    }

    #[test]
    fn frames_round_trip_in_sequence() {
        let records = sample();
        let bytes = encode_all(&records);
        let mut lsn = 0;
        for expected in &records {
            match decode_frame(lsn, &bytes[lsn as usize..]) {
                Frame::Complete { record, end } => {
                    assert_eq!(&record, expected);
                    lsn = end;
                }
                other => panic!("expected a record at {lsn}, got {other:?}"),
            }
        }
        assert_eq!(lsn, bytes.len() as u64);
    }

    /// A value is encoded as one byte string: the same bytes as a plain sequence of bytes, so
    /// WAL written before values were byte strings still decodes.
    #[test]
    fn a_value_encodes_as_a_length_then_its_bytes() {
        let record = Record::HeapPut {
            xid: 3,
            table: 7,
            block: 2,
            key: -5,
            value: vec![1, 2, 3, 200],
        };
        let body = postcard::to_stdvec(&record).unwrap();
        // variant 1, xid 3, table 7, block 2, key -5 (zigzag 9), then the value: length 4, bytes.
        assert_eq!(body, [1, 3, 7, 2, 9, 4, 1, 2, 3, 200]);
        let plain: (u8, u64, u32, u32, i64, Vec<u8>) = postcard::from_bytes(&body).unwrap();
        assert_eq!(plain.5, [1, 2, 3, 200]);
        assert_eq!(postcard::from_bytes::<Record>(&body).unwrap(), record);
    }

    #[test]
    fn every_torn_prefix_is_incomplete() {
        let records = sample();
        let bytes = encode_all(&records[..1]);
        for cut in 0..bytes.len() {
            assert!(
                matches!(decode_frame(0, &bytes[..cut]), Frame::Incomplete { .. }),
                "prefix of {cut} bytes"
            );
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_body_or_checksum_is_bad() {
        let bytes = encode_all(&sample()[1..2]);
        for at in 4..bytes.len() {
            let mut copy = bytes.clone();
            copy[at] ^= 0x10;
            assert_eq!(decode_frame(0, &copy), Frame::Bad, "flip at byte {at}");
        }
    }

    #[test]
    fn a_record_read_at_the_wrong_lsn_is_bad() {
        let bytes = encode_all(&sample()[1..2]);
        assert!(matches!(decode_frame(0, &bytes), Frame::Complete { .. }));
        assert_eq!(decode_frame(4096, &bytes), Frame::Bad);
    }

    #[test]
    fn a_damaged_record_with_a_valid_one_after_it_is_found_to_be_in_the_middle_of_the_log() {
        let bytes = encode_all(&sample());
        let second = match decode_frame(0, &bytes) {
            Frame::Complete { end, .. } => end,
            other => panic!("{other:?}"),
        };
        // A flipped bit in the first record's body, then in its length.
        for at in [FRAME_HEADER_LEN + 1, 0] {
            let mut copy = bytes.clone();
            copy[at] ^= 0x40;
            assert!(!matches!(decode_frame(0, &copy), Frame::Complete { .. }));
            assert_eq!(
                next_valid_frame(0, &copy),
                Some(second),
                "flip at byte {at}"
            );
        }
    }

    #[test]
    fn a_torn_tail_of_garbage_has_no_valid_record_after_it() {
        let records = sample();
        let bytes = encode_all(&records);
        let mut garbage: Vec<u8> = (0..300u32).map(|i| (i * 7919 % 251) as u8).collect();
        garbage[0..4].copy_from_slice(&20u32.to_le_bytes());
        assert_eq!(next_valid_frame(bytes.len() as u64, &garbage), None);
        // A clean torn prefix of the last record has nothing after it either.
        let last = bytes.len() - 5;
        assert_eq!(next_valid_frame(last as u64, &bytes[last..]), None);
    }

    #[test]
    fn an_absurd_length_is_bad_not_incomplete() {
        let mut bytes = vec![0xff; 8];
        bytes.extend_from_slice(&[0; 16]);
        assert_eq!(decode_frame(0, &bytes), Frame::Bad);
    }
}
