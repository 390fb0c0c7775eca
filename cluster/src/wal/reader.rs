//! Sequential reading of WAL records from the disk, in bounded chunks.

use super::StorageError;
use crate::io::Disk;

use super::record::{decode_frame, Frame, FRAME_HEADER_LEN};
use super::{Lsn, Record, WAL_PATH};

/// How much WAL one disk read fetches when the next frame is smaller.
const READ_CHUNK: usize = 64 << 10;

/// What the reader found at its position.
#[derive(Debug)]
pub enum Next {
    Record {
        lsn: Lsn,
        record: Record,
        end: Lsn,
    },
    /// The frame at `lsn` continues past the read limit.
    Incomplete {
        lsn: Lsn,
    },
    /// The frame at `lsn` is whole but fails its checksum or does not decode.
    Bad {
        lsn: Lsn,
    },
    /// The position is exactly the limit.
    End,
}

/// Reads frames from `pg_wal/wal` between a start LSN and a limit.
pub struct WalReader<'a> {
    disk: &'a dyn Disk,
    pos: Lsn,
    limit: Lsn,
    buf: Vec<u8>,
    /// The LSN of `buf[0]`.
    buf_start: Lsn,
}

impl<'a> WalReader<'a> {
    pub fn new(disk: &'a dyn Disk, from: Lsn, limit: Lsn) -> WalReader<'a> {
        WalReader {
            disk,
            pos: from,
            limit,
            buf: Vec::new(),
            buf_start: from,
        }
    }

    /// The LSN of the next frame.
    pub fn position(&self) -> Lsn {
        self.pos
    }

    /// Reads the next frame. After `Incomplete`, `Bad` or `End` the position stays put.
    pub fn next_record(&mut self) -> Result<Next, StorageError> {
        if self.pos >= self.limit {
            return Ok(Next::End);
        }
        let mut need = FRAME_HEADER_LEN;
        loop {
            let have = self.fill(need)?;
            let from = (self.pos - self.buf_start) as usize;
            match decode_frame(self.pos, &self.buf[from..from + have]) {
                Frame::Complete { record, end } => {
                    let lsn = self.pos;
                    self.pos = end;
                    return Ok(Next::Record { lsn, record, end });
                }
                Frame::Bad => return Ok(Next::Bad { lsn: self.pos }),
                Frame::Incomplete { need: wanted } => {
                    let wanted = wanted.unwrap_or(FRAME_HEADER_LEN);
                    // Ask again only if the last read delivered all it was asked for and the
                    // header now tells us the frame is longer; otherwise the bytes end here.
                    if have >= need && wanted > need {
                        need = wanted;
                        continue;
                    }
                    return Ok(Next::Incomplete { lsn: self.pos });
                }
            }
        }
    }

    /// Makes at least `need` bytes from the position available in `buf`, or as many as
    /// the limit and the file allow; returns how many are available.
    fn fill(&mut self, need: usize) -> Result<usize, StorageError> {
        let consumed = (self.pos - self.buf_start) as usize;
        let buffered_end = self.buf_start + self.buf.len() as u64;
        if self.buf.len() - consumed < need && buffered_end < self.limit {
            // Drop what was read only when reading more: once per chunk, not once per record.
            self.buf.drain(..consumed);
            self.buf_start = self.pos;
            let want = need.max(READ_CHUNK) - self.buf.len();
            let len = want.min((self.limit - buffered_end) as usize);
            let bytes = self
                .disk
                .read_at(WAL_PATH, buffered_end, len)
                .map_err(|source| StorageError::io("read", WAL_PATH, source))?;
            self.buf.extend_from_slice(&bytes);
        }
        Ok(self.buf.len() - (self.pos - self.buf_start) as usize)
    }
}
