//! The 8 KiB block format shared by heap and append-optimized tables.
//!
//! `[page_lsn: u64 LE][crc32c: u32 LE][tuple count: u32 LE]` then tuples sorted by key, each
//! `[key: i64 LE][value len: u32 LE][value]`, then zeros. The checksum covers the block's own
//! number (as PostgreSQL's page checksum does) and every byte of the block except itself,
//! padding included, so any flipped bit is caught on read, and so is a valid block that a
//! misdirected write left at another block's place.

use std::collections::BTreeMap;

use super::{Key, Lsn, Value};

pub use crate::model::data::BLOCK_SIZE;
const HEADER_LEN: usize = 16;
const TUPLE_HEADER_LEN: usize = 12;
/// Bytes available to tuples in an empty block: the largest tuple that fits.
pub const TUPLE_SPACE: usize = BLOCK_SIZE - HEADER_LEN;

/// The bytes a row takes in a block.
pub fn tuple_size(value_len: usize) -> usize {
    TUPLE_HEADER_LEN + value_len
}

/// A decoded block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The end LSN of the commit record of the last transaction that changed this block.
    pub lsn: Lsn,
    tuples: BTreeMap<Key, Value>,
    /// Bytes taken by tuples.
    used: usize,
}

impl Page {
    pub fn free(&self) -> usize {
        TUPLE_SPACE - self.used
    }

    pub fn get(&self, key: Key) -> Option<&Value> {
        self.tuples.get(&key)
    }

    /// Whether `key` can take a value of `value_len` bytes here (replacing its current value).
    pub fn fits(&self, key: Key, value_len: usize) -> bool {
        let freed = self.tuples.get(&key).map_or(0, |v| tuple_size(v.len()));
        tuple_size(value_len) <= self.free() + freed
    }

    /// Inserts or replaces a row. The caller checked [`Page::fits`].
    pub fn put(&mut self, key: Key, value: Value) {
        assert!(self.fits(key, value.len()), "tuple placed in a full block");
        self.used += tuple_size(value.len());
        if let Some(old) = self.tuples.insert(key, value) {
            self.used -= tuple_size(old.len());
        }
    }

    pub fn remove(&mut self, key: Key) -> bool {
        match self.tuples.remove(&key) {
            Some(old) => {
                self.used -= tuple_size(old.len());
                true
            }
            None => false,
        }
    }

    pub fn rows(&self) -> impl Iterator<Item = (Key, &Value)> {
        self.tuples.iter().map(|(k, v)| (*k, v))
    }

    /// The bytes of this page as block number `number` of its file.
    #[cfg(test)]
    pub fn encode(&self, number: u32) -> Vec<u8> {
        self.encode_numbered(Some(number))
    }

    /// The bytes of this page, its checksum covering `number` if given (`None`: the planted
    /// bug `page-checksum-skips-block-number`).
    pub fn encode_numbered(&self, number: Option<u32>) -> Vec<u8> {
        let mut block = vec![0u8; BLOCK_SIZE];
        block[0..8].copy_from_slice(&self.lsn.to_le_bytes());
        block[12..16].copy_from_slice(&(self.tuples.len() as u32).to_le_bytes());
        let mut at = HEADER_LEN;
        for (key, value) in &self.tuples {
            block[at..at + 8].copy_from_slice(&key.to_le_bytes());
            block[at + 8..at + 12].copy_from_slice(&(value.len() as u32).to_le_bytes());
            block[at + 12..at + 12 + value.len()].copy_from_slice(value);
            at += tuple_size(value.len());
        }
        let crc = block_crc(number, &block);
        block[8..12].copy_from_slice(&crc.to_le_bytes());
        block
    }

    /// Decodes block number `number` read from disk; `None` if it is short, fails its
    /// checksum (a flipped bit, or another block's content) or its layout is inconsistent.
    #[cfg(test)]
    pub fn decode(number: u32, block: &[u8]) -> Option<Page> {
        Page::decode_numbered(Some(number), block)
    }

    /// [`Page::decode`], the checksum covering `number` if given.
    pub fn decode_numbered(number: Option<u32>, block: &[u8]) -> Option<Page> {
        if block.len() != BLOCK_SIZE {
            return None;
        }
        let stored = u32::from_le_bytes(block[8..12].try_into().ok()?);
        if stored != block_crc(number, block) {
            return None;
        }
        let lsn = u64::from_le_bytes(block[0..8].try_into().ok()?);
        let count = u32::from_le_bytes(block[12..16].try_into().ok()?) as usize;
        let mut page = Page {
            lsn,
            ..Page::default()
        };
        let mut at = HEADER_LEN;
        let mut last: Option<Key> = None;
        for _ in 0..count {
            let header = block.get(at..at + TUPLE_HEADER_LEN)?;
            let key = i64::from_le_bytes(header[0..8].try_into().ok()?);
            let len = u32::from_le_bytes(header[8..12].try_into().ok()?) as usize;
            let value = block.get(at + TUPLE_HEADER_LEN..at + TUPLE_HEADER_LEN + len)?;
            if last.is_some_and(|prev| prev >= key) {
                return None;
            }
            last = Some(key);
            page.tuples.insert(key, value.to_vec());
            page.used += tuple_size(len);
            at += tuple_size(len);
        }
        Some(page)
    }
}

fn block_crc(number: Option<u32>, block: &[u8]) -> u32 {
    let seed = number.map_or(0, |n| crc32c::crc32c(&n.to_le_bytes()));
    let head = crc32c::crc32c_append(seed, &block[0..8]);
    crc32c::crc32c_append(head, &block[12..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Page {
        let mut page = Page {
            lsn: 77,
            ..Page::default()
        };
        page.put(5, vec![1; 100]);
        page.put(-3, vec![]);
        page.put(9, vec![2; 3000]);
        page
    }

    #[test]
    fn blocks_round_trip_and_encode_deterministically() {
        let page = sample();
        let block = page.encode(3);
        assert_eq!(block.len(), BLOCK_SIZE);
        assert_eq!(Page::decode(3, &block), Some(page.clone()));
        assert_eq!(block, page.clone().encode(3));
        let keys: Vec<Key> = page.rows().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![-3, 5, 9]);
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let block = sample().encode(0);
        for at in (0..BLOCK_SIZE)
            .step_by(97)
            .chain([8, 11, 12, BLOCK_SIZE - 1])
        {
            let mut copy = block.clone();
            copy[at] ^= 0x04;
            assert_eq!(Page::decode(0, &copy), None, "flip at byte {at}");
        }
    }

    #[test]
    fn zeroed_and_short_blocks_are_rejected() {
        assert_eq!(Page::decode(0, &[0; BLOCK_SIZE]), None);
        assert_eq!(Page::decode(0, &sample().encode(0)[..BLOCK_SIZE - 1]), None);
    }

    #[test]
    fn a_valid_block_read_at_another_block_number_is_refused_as_a_misdirected_write() {
        let block = sample().encode(4);
        assert_eq!(Page::decode(4, &block), Some(sample()));
        assert_eq!(Page::decode(5, &block), None);
        assert_eq!(Page::decode(0, &block), None);
    }

    #[test]
    fn free_space_accounts_for_replacement() {
        let mut page = Page::default();
        assert!(page.fits(1, TUPLE_SPACE - TUPLE_HEADER_LEN));
        assert!(!page.fits(1, TUPLE_SPACE - TUPLE_HEADER_LEN + 1));
        page.put(1, vec![0; TUPLE_SPACE - TUPLE_HEADER_LEN]);
        assert_eq!(page.free(), 0);
        assert!(!page.fits(2, 0));
        assert!(page.fits(1, 10));
        page.put(1, vec![0; 10]);
        assert_eq!(page.free(), TUPLE_SPACE - tuple_size(10));
        assert!(page.remove(1));
        assert_eq!(page.free(), TUPLE_SPACE);
    }
}
