//! Carrying out the media faults on an instance's files: an `fsync` that fails once, a torn
//! WAL tail of garbage, a bit flipped in the middle of the durable WAL or in a small
//! checksummed file, and a misdirected write (a valid block or record at the wrong offset).
//! The disk side is [`crate::world::disk::SimDisk`]'s media faults; here the world picks the
//! file and the place from the fault's `pick`.
//!
//! A damaged file nobody reads stays latent, and a latent WAL record is dangerous here: a
//! segment's full recovery streams its primary's whole WAL from LSN 0 (it has no base backup
//! from a checkpoint, as `pg_basebackup` is), so a corrupt record in old WAL of the copy that
//! survives poisons every later full copy of the content. The nemesis therefore kills the
//! instance with the damage and restarts it at the heal, so that recovery finds it while its
//! partner is still a good copy.

use rand_chacha::rand_core::Rng;
use tracing::info;

use cluster::storage::BLOCK_SIZE;
use cluster::wal::record::{decode_frame, Frame};
use cluster::wal::WAL_PATH;

use crate::world::disk::{SimDisk, TornTail};
use crate::world::standby_host::STANDBY_DATADIR;
use crate::world::World;

/// How many of the last durable WAL records a flip or a misdirected write may land in: recent
/// ones, which crash recovery reads again.
const RECENT_RECORDS: usize = 64;

/// The `(start, end)` of every whole record in `wal`, from its start.
pub fn wal_frames(wal: &[u8]) -> Vec<(usize, usize)> {
    let mut frames = Vec::new();
    let mut at = 0usize;
    while let Frame::Complete { end, .. } = decode_frame(at as u64, &wal[at..]) {
        frames.push((at, end as usize));
        at = end as usize;
    }
    frames
}

impl World {
    /// The host and the data directory (with a trailing `/`) of instance `dbid`.
    fn place_of(&self, dbid: u16) -> (SimDisk, String) {
        let seg = self
            .segments
            .iter()
            .find(|s| s.dbid == dbid)
            .expect("known dbid");
        let dir = format!("{}/", seg.datadir.trim_matches('/'));
        (self.hosts[&seg.hostname].disk.clone(), dir)
    }

    fn content_of(&self, dbid: u16) -> cluster::model::catalog::Content {
        self.segments
            .iter()
            .find(|s| s.dbid == dbid)
            .expect("known dbid")
            .content
    }

    /// The next `fsync` of one of the instance's files fails once; with `tables`, of one of
    /// its heap table files (a checkpoint's).
    pub(crate) fn fail_next_fsync(&mut self, dbid: u16, tables: bool) {
        let (disk, dir) = self.place_of(dbid);
        if tables {
            disk.fail_next_sync(&format!("{dir}base/"));
            info!(dbid, "the next fsync of a heap table file will fail");
        } else {
            disk.fail_next_sync(&dir);
            info!(dbid, "the next fsync in the data directory will fail");
        }
    }

    /// Power loss with torn tails, where the last bytes of each torn WAL tail are garbage.
    pub(crate) fn kill_host_garbage(&mut self, name: &str) {
        let disk = self.hosts[name].disk.clone();
        let wal_suffix = format!("/{WAL_PATH}");
        let tails: Vec<(String, u64)> = disk
            .unsynced_tails()
            .into_iter()
            .filter(|(path, _)| path.ends_with(&wal_suffix))
            .collect();
        self.kill_host_with(name, |rng, unsynced| {
            TornTail::Keep(1 + (rng.next_u64() % unsynced.max(1) as u64) as usize)
        });
        for (path, durable_end) in tails {
            let len = disk.durable_len(&path).unwrap_or(0);
            if len <= durable_end {
                continue;
            }
            let garbage_len = 1 + self.rng.next_u64() % (len - durable_end);
            let mut garbage = vec![0u8; garbage_len as usize];
            self.rng.fill_bytes(&mut garbage);
            disk.overwrite_durable(&path, len - garbage_len, &garbage);
            info!(
                path,
                at = len - garbage_len,
                garbage_len,
                "torn wal tail ends in garbage"
            );
        }
        info!(
            host = name,
            "power lost in the middle of writes: tails torn into garbage"
        );
    }

    /// Flips one bit in a recent durable WAL record of the instance that another durable
    /// record follows.
    pub(crate) fn flip_wal_bit(&mut self, dbid: u16, pick: u64) {
        let (disk, dir) = self.place_of(dbid);
        match flip_wal_bit_in(&disk, &dir, pick) {
            Some((path, offset)) => info!(
                dbid,
                path, offset, "bit flipped in the middle of the durable wal"
            ),
            None => info!(
                dbid,
                "wal bit flip: no durable wal record followed by another"
            ),
        }
    }

    /// Flips one bit of one of the instance's small checksummed files (not its tables, not
    /// its WAL, not a temporary file, not the double-write area of table blocks).
    pub(crate) fn flip_control_bit(&mut self, dbid: u16, pick: u64) {
        let (disk, dir) = self.place_of(dbid);
        let Some((path, offset)) = flip_small_file_bit_in(&disk, &dir, pick) else {
            info!(dbid, "control bit flip: no small file on disk yet");
            return;
        };
        // An append-optimized table file is among the candidates: damage to note.
        let content = self.content_of(dbid);
        self.damage
            .note(content, path.strip_prefix(&dir).unwrap_or(&path));
        info!(dbid, path, offset, "bit flipped in a small file");
    }

    /// The catalog bit flip: the process of the coordinator host holding the copy (the acting
    /// coordinator's, or with `standby` the other coordinator host's, where a standby runs)
    /// dies, one bit of its catalog flips (`pick` chooses a recent WAL record, a small file or
    /// a catalog table block, trying the next place where there is none), and the process is
    /// started again at once, to find the damage as it starts.
    pub(crate) fn flip_catalog_bit(&mut self, standby: bool, pick: u64) {
        // The planner keeps the fault only before the schedule touches the coordinator pair,
        // but a fault point may have crashed one of its hosts already.
        if self.coordinator_pair_touched {
            info!("catalog bit flip skipped: the coordinator pair was touched before, its copies may differ");
            return;
        }
        let acting = self.acting.host.clone();
        let host = if standby {
            let Some(host) = self.coordinator_hosts().into_iter().find(|h| *h != acting) else {
                info!("catalog bit flip: no standby host");
                return;
            };
            host
        } else {
            acting
        };
        // The first coordinator keeps its catalog at the root of `mdw`'s disk; a standby, and a
        // coordinator activated from one, in the standby's data directory.
        let dir = if standby {
            format!("{}/", STANDBY_DATADIR.trim_matches('/'))
        } else {
            self.acting.datadir.clone()
        };
        let disk = self.hosts[&host].disk.clone();
        if !self.hosts[&host].up || !disk.durable_files().iter().any(|(n, _)| in_dir(&dir, n)) {
            info!(host, "catalog bit flip: no catalog on a running host there");
            return;
        }
        let mut flipped = None;
        for place in 0..3 {
            flipped = match (pick + place) % 3 {
                0 => flip_wal_bit_in(&disk, &dir, pick >> 2).inspect(|(path, offset)| {
                    let mask = 1u8 << (((pick >> 2) >> 8) % 8);
                    self.catalog_wal_flips
                        .push((host.clone(), path.clone(), *offset, mask));
                }),
                1 => flip_small_file_bit_in(&disk, &dir, pick >> 2),
                _ => flip_table_bit_in(&disk, &dir, pick >> 2),
            };
            if let Some((path, _)) = &flipped {
                if path.starts_with(&format!("{dir}base/")) {
                    self.damage
                        .note(-1, path.strip_prefix(&dir).unwrap_or(path));
                }
                break;
            }
        }
        let Some((path, offset)) = flipped else {
            info!(host, "catalog bit flip: nothing durable to damage yet");
            return;
        };
        info!(host, path, offset, standby, "bit flipped in a catalog");
        self.restart_coordinator_process(&host);
    }

    /// A valid block or record of the instance lands where another one was: a durable table
    /// block copied over another block of its file, or a durable WAL record over a later one.
    pub(crate) fn misdirect_write(&mut self, dbid: u16, pick: u64) {
        let (disk, dir) = self.place_of(dbid);
        let done = if pick.is_multiple_of(2) {
            misdirect_block(&disk, &dir, pick >> 1)
        } else {
            misdirect_record(&disk, &dir, pick >> 1)
        };
        if let Some((path, ..)) = done.as_ref().filter(|_| pick.is_multiple_of(2)) {
            let content = self.content_of(dbid);
            self.damage
                .note(content, path.strip_prefix(&dir).unwrap_or(path));
        }
        match done {
            Some((path, from, to)) => {
                info!(
                    dbid,
                    path, from, to, "misdirected write: a copy landed at the wrong offset"
                )
            }
            None => info!(dbid, "misdirected write: nothing on disk to misplace yet"),
        }
    }
}

/// Whether the file `name` lies in the data directory `dir` (`""`: the disk's root, which
/// holds no other data directory's files, those under `data/`).
fn in_dir(dir: &str, name: &str) -> bool {
    name.starts_with(dir) && (!dir.is_empty() || !name.starts_with("data/"))
}

/// Flips one bit in a recent durable WAL record under `dir` that another durable record
/// follows; the file and offset flipped.
fn flip_wal_bit_in(disk: &SimDisk, dir: &str, pick: u64) -> Option<(String, u64)> {
    let path = format!("{dir}{WAL_PATH}");
    let wal = disk.durable_content(&path).unwrap_or_default();
    let frames = wal_frames(&wal);
    if frames.len() < 2 {
        return None;
    }
    let candidates = &frames[..frames.len() - 1];
    let recent = &candidates[candidates.len().saturating_sub(RECENT_RECORDS)..];
    let (start, end) = recent[(pick % recent.len() as u64) as usize];
    let offset = start + ((pick >> 16) % (end - start) as u64) as usize;
    let byte = wal[offset] ^ (1u8 << ((pick >> 8) % 8));
    disk.overwrite_durable(&path, offset as u64, &[byte]);
    Some((path, offset as u64))
}

/// Flips one bit of one of the small checksummed files under `dir` (not a table, not the
/// WAL, not a temporary file, not the double-write area); the file and offset flipped.
fn flip_small_file_bit_in(disk: &SimDisk, dir: &str, pick: u64) -> Option<(String, u64)> {
    let files: Vec<(String, u64)> = disk
        .durable_files()
        .into_iter()
        .filter(|(n, len)| {
            let rel = n.strip_prefix(dir).unwrap_or("");
            in_dir(dir, n)
                && !rel.is_empty()
                && *len > 0
                && !rel.starts_with("base/")
                && !rel.starts_with("pg_wal/")
                && !rel.ends_with(".tmp")
                && rel != "global/doublewrite"
        })
        .collect();
    let (path, len) = files.get((pick % files.len().max(1) as u64) as usize)?;
    let offset = (pick >> 16) % len;
    let content = disk.durable_content(path)?;
    let byte = content.get(offset as usize)?;
    disk.overwrite_durable(path, offset, &[byte ^ (1u8 << ((pick >> 8) % 8))]);
    Some((path.clone(), offset))
}

/// Flips one bit in a durable block of a table file under `dir`; the file and offset.
fn flip_table_bit_in(disk: &SimDisk, dir: &str, pick: u64) -> Option<(String, u64)> {
    let base = format!("{dir}base/");
    let files: Vec<(String, u64)> = disk
        .durable_files()
        .into_iter()
        .filter(|(n, len)| n.starts_with(&base) && *len > 0)
        .collect();
    let (path, len) = files.get((pick % files.len().max(1) as u64) as usize)?;
    let offset = (pick >> 16) % len;
    disk.corrupt(path, offset, 1u8 << ((pick >> 8) % 8));
    Some((path.clone(), offset))
}

/// Copies a durable block of a table file of `dir` over another block of the same file.
fn misdirect_block(disk: &SimDisk, dir: &str, pick: u64) -> Option<(String, u64, u64)> {
    let base = format!("{dir}base/");
    let files: Vec<(String, u64)> = disk
        .durable_files()
        .into_iter()
        .filter(|(n, len)| n.starts_with(&base) && *len >= 2 * BLOCK_SIZE as u64)
        .collect();
    let (path, len) = files.get((pick % files.len().max(1) as u64) as usize)?;
    let blocks = len / BLOCK_SIZE as u64;
    let from = (pick >> 16) % blocks;
    let to = (from + 1 + (pick >> 32) % (blocks - 1)) % blocks;
    let content = disk.durable_content(path)?;
    let at = |b: u64| (b as usize * BLOCK_SIZE)..((b as usize + 1) * BLOCK_SIZE);
    let block = content.get(at(from))?.to_vec();
    disk.overwrite_durable(path, to * BLOCK_SIZE as u64, &block)
        .then(|| {
            (
                path.clone(),
                from * BLOCK_SIZE as u64,
                to * BLOCK_SIZE as u64,
            )
        })
}

/// Copies a recent durable WAL record of `dir` over the start of a later one, a whole record
/// still following the damage.
fn misdirect_record(disk: &SimDisk, dir: &str, pick: u64) -> Option<(String, u64, u64)> {
    let path = format!("{dir}{WAL_PATH}");
    let wal = disk.durable_content(&path)?;
    let frames = wal_frames(&wal);
    let last_start = frames.last()?.0;
    let recent = &frames[frames.len().saturating_sub(RECENT_RECORDS)..];
    let (from_start, from_end) = recent[(pick % recent.len() as u64) as usize];
    let record = &wal[from_start..from_end];
    // A later record whose start the copy can cover while the last record stays whole.
    let targets: Vec<usize> = recent
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| *s != from_start && s + record.len() <= last_start)
        .collect();
    let to = *targets.get(((pick >> 16) % targets.len().max(1) as u64) as usize)?;
    let landed = disk.overwrite_durable(&path, to as u64, record);
    landed.then_some((path, from_start as u64, to as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::wal::record::encode_frame;
    use cluster::wal::Record;

    #[test]
    fn wal_frames_lists_every_whole_record_and_stops_at_a_torn_one() {
        let mut wal = Vec::new();
        let mut lsn = 0;
        for redo_lsn in 0..3 {
            lsn = encode_frame(lsn, &Record::Checkpoint { redo_lsn }, &mut wal);
        }
        let whole = wal.len();
        encode_frame(lsn, &Record::Checkpoint { redo_lsn: 9 }, &mut wal);
        wal.truncate(whole + 3);
        let frames = wal_frames(&wal);
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].0, 0);
        assert_eq!(frames[2].1, whole);
    }
}
