//! The simulated disk: one per host, held by the harness so that it outlives a host crash.
//!
//! It keeps two views of every file: what the host sees (every write) and what is durable (the
//! content as of the last completed `sync`). Directory entries are durable as of the last
//! `sync_dir` of their directory. [`SimDisk::crash`] throws away everything not durable, and can
//! leave a torn tail: a prefix of the unsynced bytes appended after the durable end survives,
//! as it can on a real disk that persisted some sectors before power was lost.
//!
//! Write-back: like a kernel flushing dirty pages whenever it likes, a crash may also keep some
//! unsynced `write_at`s, each 4 KiB page of a written extent whole or not at all, so a block
//! overwritten in place can come back torn, part new and part old (past the durable end the file
//! grows to hold it, any gap reading as zeros). The durability contract never promised they are lost, and a storage engine that
//! relies on their loss (a block written before the WAL covering it is durable) is caught.
//!
//! Faults on demand: a full disk (`ENOSPC` on writes that grow a file) and corrupted bytes;
//! media faults beyond a clean power loss (an fsync that fails once, a torn tail of garbage, a
//! misdirected write) live in [`media`].

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::io::disk::{parent_dir, Disk, DiskFuture};

use crate::config::disk_speed::{DiskSpeed, IoQueue};
mod media;

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// `(offset, len)` of every `write_at` since the last `sync` began.
    unsynced_writes: std::collections::BTreeSet<(u64, usize)>,
    /// `data` and `durable` agree before this offset, as far as writes since the last `sync`
    /// began are concerned: a sync copies only from here (a WAL grows by appends, and copying
    /// the whole file on every fsync made the simulator quadratic in it).
    dirty_from: usize,
    /// Syncs of this file under way; with more than one, a sync copies the whole file.
    syncing: u32,
}

impl State {
    /// Records a change of `name` in the namespace the host sees; returns its number.
    fn name_changed(&mut self, name: &str) -> u64 {
        self.name_changes += 1;
        self.changed.insert(name.to_string(), self.name_changes);
        self.name_changes
    }
}

impl Inode {
    fn dirty(&mut self, from: usize) {
        self.dirty_from = self.dirty_from.min(from);
    }
}

#[derive(Debug, Default)]
struct State {
    next_inode: u64,
    inodes: BTreeMap<u64, Inode>,
    /// The namespace the host sees.
    names: BTreeMap<String, u64>,
    /// The namespace that survives a crash.
    durable_names: BTreeMap<String, u64>,
    /// Counts changes to the namespace; each change of a name (create, rename, remove) takes
    /// the next number.
    name_changes: u64,
    /// The number of the last change of each name the host sees or removed.
    changed: BTreeMap<String, u64>,
    /// The number of the change each durable name's entry records, so a directory sync that
    /// started before a later one never undoes what the later one made durable.
    durable_changed: BTreeMap<String, u64>,
    dirs: std::collections::BTreeSet<String>,
    /// Capacity in bytes summed over all files' visible content; `None` is unlimited.
    capacity: Option<u64>,
    /// Incremented on every crash; a sync in flight across a crash does not complete.
    generation: u64,
    stats: DiskStats,
    /// Media faults armed on this disk (see [`media`]).
    media: media::Media,
}

/// Counters a benchmark or test can read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub bytes_written: u64,
    pub syncs: u64,
    pub crashes: u64,
}

/// The unit in which the kernel writes dirty file content back: an unsynced overwrite survives
/// a crash page by page, each page whole or not at all.
pub const PAGE_SIZE: usize = 4096;

/// `start..end` cut at every multiple of [`PAGE_SIZE`].
fn pages(start: usize, end: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let piece_end = ((at / PAGE_SIZE + 1) * PAGE_SIZE).min(end);
        let piece = (at, piece_end);
        at = piece_end;
        Some(piece)
    })
}

/// How much of the unsynced tail of a file may survive a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TornTail {
    /// Nothing unsynced survives.
    None,
    /// The first `n` unsynced bytes appended after the durable end survive.
    Keep(usize),
}

/// A simulated disk. Cheap to clone (a handle to shared state).
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
    sync_latency: Option<(Duration, Duration)>,
    /// The device time reads and writes take, paid at the next sync or settle
    /// (`disk_speed`); `None`: reads and writes are free.
    io: Option<Arc<IoQueue>>,
}

impl SimDisk {
    pub fn new() -> SimDisk {
        let disk = SimDisk::default();
        disk.state.lock().unwrap().dirs.insert(String::new());
        disk
    }

    /// Every `sync` and `sync_dir` takes a time drawn from `[min, max]` (simulated time).
    /// Only usable inside a madsim runtime.
    pub fn with_sync_latency(mut self, min: Duration, max: Duration) -> SimDisk {
        self.sync_latency = Some((min, max));
        self
    }

    /// The host lost power: everything not durable is gone. `torn` picks, per file, how much of
    /// an unsynced appended tail survives.
    pub fn crash(&self, torn: impl FnMut(&str, usize) -> TornTail) {
        self.crash_with_writeback(torn, |_, _, _| false);
    }

    /// [`SimDisk::crash`], where `writeback(path, offset, len)` also decides, for each
    /// [`PAGE_SIZE`]-aligned piece of each unsynced `write_at` extent, whether the kernel had
    /// written it back: an 8 KiB block overwritten in place can come back half new, half old.
    pub fn crash_with_writeback(
        &self,
        mut torn: impl FnMut(&str, usize) -> TornTail,
        mut writeback: impl FnMut(&str, u64, usize) -> bool,
    ) {
        self.forget_queued_io();
        let mut st = self.state.lock().unwrap();
        st.generation += 1;
        st.stats.crashes += 1;
        st.names = st.durable_names.clone();
        st.changed = st.durable_changed.clone();
        let live: std::collections::BTreeSet<u64> = st.names.values().copied().collect();
        let names: Vec<(String, u64)> = st.names.iter().map(|(n, i)| (n.clone(), *i)).collect();
        st.inodes.retain(|id, _| live.contains(id));
        for (name, id) in names {
            let inode = st.inodes.get_mut(&id).expect("named inode exists");
            let durable_len = inode.durable.len();
            let appended = inode.data.len().saturating_sub(durable_len);
            // Only bytes beyond the durable end that extend a durable prefix can be a torn tail.
            let keep = if appended > 0 && inode.data[..durable_len] == inode.durable[..] {
                match torn(&name, appended) {
                    TornTail::None => 0,
                    TornTail::Keep(n) => n.min(appended),
                }
            } else {
                0
            };
            let mut survived = inode.durable.clone();
            // `data` may be shorter than `durable` (a truncate not yet synced, which the crash
            // undoes): then nothing was appended and no tail survives.
            if keep > 0 {
                survived.extend_from_slice(&inode.data[durable_len..durable_len + keep]);
            }
            for (offset, len) in std::mem::take(&mut inode.unsynced_writes) {
                let (start, end) = (offset as usize, offset as usize + len);
                if end > inode.data.len() {
                    continue;
                }
                for (start, end) in pages(start, end) {
                    if !writeback(&name, start as u64, end - start) {
                        continue;
                    }
                    // Written back past the durable end, the file grows; a gap reads as zeros.
                    if survived.len() < end {
                        survived.resize(end, 0);
                    }
                    survived[start..end].copy_from_slice(&inode.data[start..end]);
                }
            }
            inode.dirty_from = survived.len();
            inode.syncing = 0;
            inode.data = survived.clone();
            inode.durable = survived;
        }
    }

    /// Writes a whole file, durable at once with its directory entry (its directories made), as
    /// a tool that wrote and synced it before anything else ran there (`init` laying out an
    /// instance's directory, a verb making a new mirror's).
    pub fn install(&self, path: &str, bytes: &[u8]) {
        let path = path.trim_matches('/');
        let mut st = self.state.lock().unwrap();
        let mut dir = parent_dir(path);
        loop {
            st.dirs.insert(dir.to_string());
            if dir.is_empty() {
                break;
            }
            dir = parent_dir(dir);
        }
        let id = match st.names.get(path) {
            Some(id) => *id,
            None => {
                let id = st.next_inode;
                st.next_inode += 1;
                st.names.insert(path.to_string(), id);
                id
            }
        };
        st.durable_names.insert(path.to_string(), id);
        let change = st.name_changed(path);
        st.durable_changed.insert(path.to_string(), change);
        st.inodes.insert(
            id,
            Inode {
                data: bytes.to_vec(),
                durable: bytes.to_vec(),
                dirty_from: bytes.len(),
                ..Inode::default()
            },
        );
    }

    /// Every file and directory under `dir` gone for good, durable or not (an instance's
    /// directory deleted, or its mount lost); `""` empties the whole disk (a disk replaced).
    pub fn remove_tree(&self, dir: &str) {
        let dir = dir.trim_matches('/');
        let under = |name: &str| {
            dir.is_empty()
                || name == dir
                || name.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
        };
        let mut st = self.state.lock().unwrap();
        st.names.retain(|n, _| !under(n));
        st.durable_names.retain(|n, _| !under(n));
        st.changed.retain(|n, _| !under(n));
        st.durable_changed.retain(|n, _| !under(n));
        let live: std::collections::BTreeSet<u64> = st
            .names
            .values()
            .chain(st.durable_names.values())
            .copied()
            .collect();
        st.inodes.retain(|id, _| live.contains(id));
        st.dirs.retain(|d| !under(d) || d.is_empty());
    }

    /// Makes every write from now on that grows a file fail once the disk holds `bytes`.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state.lock().unwrap().capacity = bytes;
    }

    /// Flips bits of a file's durable and visible content at `offset` (a disk that returns bad
    /// data). Returns false if the file is shorter than `offset + 1`.
    pub fn corrupt(&self, path: &str, offset: u64, xor: u8) -> bool {
        let mut st = self.state.lock().unwrap();
        let Some(&id) = st.names.get(path) else {
            return false;
        };
        let inode = st.inodes.get_mut(&id).unwrap();
        let off = offset as usize;
        if off >= inode.data.len() {
            return false;
        }
        inode.data[off] ^= xor;
        inode.dirty(off);
        if off < inode.durable.len() {
            inode.durable[off] ^= xor;
        }
        true
    }

    /// Bytes the visible files hold.
    pub fn used_bytes(&self) -> u64 {
        self.state.lock().unwrap().used()
    }

    /// Every file's visible and durable lengths, sorted by name.
    pub fn durable_files(&self) -> Vec<(String, u64)> {
        let st = self.state.lock().unwrap();
        st.names
            .iter()
            .map(|(n, id)| (n.clone(), st.inodes[id].durable.len() as u64))
            .collect()
    }

    /// How many bytes of the file at `path` survive a crash: its synced content, if its name
    /// is durable (`None` if a crash would leave no file there).
    /// The bytes `[offset, offset + len)` of `path` as a process would read them now (fewer
    /// where the file is shorter), for the checkers: unlike a read through [`Disk`], it costs
    /// no device time and counts in no statistics, so judging leaves the run as it was.
    pub fn peek_at(&self, path: &str, offset: u64, len: usize) -> Option<Vec<u8>> {
        let st = self.state.lock().unwrap();
        let id = st.names.get(path.trim_matches('/'))?;
        let data = &st.inodes.get(id)?.data;
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(len).min(data.len());
        Some(data[start..end].to_vec())
    }

    pub fn durable_len(&self, path: &str) -> Option<u64> {
        let st = self.state.lock().unwrap();
        let id = st.durable_names.get(path.trim_matches('/'))?;
        st.inodes.get(id).map(|i| i.durable.len() as u64)
    }

    pub fn stats(&self) -> DiskStats {
        self.state.lock().unwrap().stats
    }

    /// The visible files, sorted, with their lengths (for tests and debugging).
    pub fn files(&self) -> Vec<(String, u64)> {
        let st = self.state.lock().unwrap();
        st.names
            .iter()
            .map(|(n, id)| (n.clone(), st.inodes[id].data.len() as u64))
            .collect()
    }

    fn not_found(path: &str) -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, format!("no such file: {path}"))
    }

    async fn latency(&self) {
        self.pay_queued_io().await;
        if let Some((min, max)) = self.sync_latency {
            let span = (max - min).as_nanos() as u64;
            let extra = if span == 0 {
                0
            } else {
                madsim::rand::random::<u64>() % span
            };
            madsim::time::sleep(min + Duration::from_nanos(extra)).await;
        }
    }
}

/// The disk's speed (`disk_speed`): kept apart from the durability model above.
impl SimDisk {
    /// A disk of the given kind: its fsync latency, and the device time its reads and writes
    /// take, paid at the next sync or settle. Only usable inside a madsim runtime.
    pub fn with_speed(self, speed: DiskSpeed) -> SimDisk {
        let mut disk = self.with_sync_latency(speed.fsync_min, speed.fsync_max);
        disk.io = Some(Arc::new(IoQueue::new(speed)));
        disk
    }

    /// The disk's kind, if it was given one.
    pub fn speed(&self) -> Option<DiskSpeed> {
        self.io.as_ref().map(|q| q.speed())
    }

    fn queue_io(&self, path: &str, offset: u64, len: usize) {
        if let Some(q) = &self.io {
            q.charge(path, offset, len);
        }
    }

    async fn pay_queued_io(&self) {
        if let Some(q) = &self.io {
            let owed = q.take();
            if !owed.is_zero() {
                madsim::time::sleep(owed).await;
            }
        }
    }

    fn forget_queued_io(&self) {
        if let Some(q) = &self.io {
            q.clear();
        }
    }
}

impl State {
    fn used(&self) -> u64 {
        self.names
            .values()
            .map(|id| self.inodes[id].data.len() as u64)
            .sum()
    }

    fn check_space(&self, grow: u64) -> io::Result<()> {
        match self.capacity {
            Some(cap) if grow > 0 && self.used() + grow > cap => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            )),
            _ => Ok(()),
        }
    }

    fn inode(&mut self, path: &str) -> io::Result<&mut Inode> {
        let id = *self
            .names
            .get(path)
            .ok_or_else(|| SimDisk::not_found(path))?;
        Ok(self.inodes.get_mut(&id).expect("named inode exists"))
    }

    fn check_dir(&self, path: &str) -> io::Result<()> {
        let dir = parent_dir(path);
        if self.dirs.contains(dir) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such directory: {dir}"),
            ))
        }
    }
}

impl Disk for SimDisk {
    fn create(&self, path: &str) -> io::Result<()> {
        let mut st = self.state.lock().unwrap();
        st.check_dir(path)?;
        if st.names.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("file exists: {path}"),
            ));
        }
        let id = st.next_inode;
        st.next_inode += 1;
        st.inodes.insert(id, Inode::default());
        st.names.insert(path.to_string(), id);
        st.name_changed(path);
        Ok(())
    }

    fn exists(&self, path: &str) -> bool {
        self.state.lock().unwrap().names.contains_key(path)
    }

    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        let mut st = self.state.lock().unwrap();
        st.check_space(data.len() as u64)?;
        st.stats.bytes_written += data.len() as u64;
        let inode = st.inode(path)?;
        let offset = inode.data.len() as u64;
        inode.dirty(offset as usize);
        inode.data.extend_from_slice(data);
        self.queue_io(path, offset, data.len());
        Ok(offset)
    }

    fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut st = self.state.lock().unwrap();
        let end = offset as usize + data.len();
        let grow = end.saturating_sub(st.inode(path)?.data.len()) as u64;
        st.check_space(grow)?;
        st.stats.bytes_written += data.len() as u64;
        let inode = st.inode(path)?;
        if inode.data.len() < end {
            inode.data.resize(end, 0);
        }
        inode.data[offset as usize..end].copy_from_slice(data);
        inode.dirty(offset as usize);
        inode.unsynced_writes.insert((offset, data.len()));
        self.queue_io(path, offset, data.len());
        Ok(())
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut st = self.state.lock().unwrap();
        let inode = st.inode(path)?;
        let start = (offset as usize).min(inode.data.len());
        let end = (start + len).min(inode.data.len());
        let bytes = inode.data[start..end].to_vec();
        self.queue_io(path, offset, bytes.len());
        Ok(bytes)
    }

    fn len(&self, path: &str) -> io::Result<u64> {
        Ok(self.state.lock().unwrap().inode(path)?.data.len() as u64)
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        let mut st = self.state.lock().unwrap();
        let inode = st.inode(path)?;
        inode.data.resize(len as usize, 0);
        inode.dirty(len as usize);
        inode
            .unsynced_writes
            .retain(|(offset, n)| offset + *n as u64 <= len);
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut st = self.state.lock().unwrap();
        st.check_dir(to)?;
        let id = st
            .names
            .remove(from)
            .ok_or_else(|| SimDisk::not_found(from))?;
        st.names.insert(to.to_string(), id);
        st.name_changed(from);
        st.name_changed(to);
        Ok(())
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        let mut st = self.state.lock().unwrap();
        st.names
            .remove(path)
            .ok_or_else(|| SimDisk::not_found(path))?;
        st.name_changed(path);
        Ok(())
    }

    fn create_dir(&self, dir: &str) -> io::Result<()> {
        // Directories themselves are treated as durable at once (created at instance init,
        // before anything depends on them).
        let mut st = self.state.lock().unwrap();
        let mut acc = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            st.dirs.insert(acc.clone());
        }
        Ok(())
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let st = self.state.lock().unwrap();
        if !st.dirs.contains(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such directory: {dir}"),
            ));
        }
        Ok(st
            .names
            .keys()
            .filter(|n| parent_dir(n) == dir)
            .map(|n| n.rsplit('/').next().unwrap_or(n).to_string())
            .collect())
    }

    fn sync<'a>(&'a self, path: &'a str) -> DiskFuture<'a> {
        Box::pin(async move {
            // fsync makes durable what was written before the call.
            let (generation, from, tail, written, id) = {
                let mut st = self.state.lock().unwrap();
                let id = *st.names.get(path).ok_or_else(|| SimDisk::not_found(path))?;
                let generation = st.generation;
                let inode = st.inode(path)?;
                // Alone, this sync finds `durable` as it is now when it completes, so it copies
                // only what changed since the last sync began.
                let from = if inode.syncing == 0 {
                    inode
                        .dirty_from
                        .min(inode.durable.len())
                        .min(inode.data.len())
                } else {
                    0
                };
                inode.syncing += 1;
                inode.dirty_from = inode.data.len();
                let tail = inode.data[from..].to_vec();
                (generation, from, tail, inode.unsynced_writes.clone(), id)
            };
            self.latency().await;
            let mut st = self.state.lock().unwrap();
            if st.generation != generation {
                return Err(io::Error::other("host crashed during fsync"));
            }
            if let Some(err) = st.fail_sync_if_armed(path, id) {
                return Err(err);
            }
            st.stats.syncs += 1;
            if let Some(inode) = st.inodes.get_mut(&id) {
                inode.syncing = inode.syncing.saturating_sub(1);
                inode.durable.truncate(from);
                inode.durable.extend_from_slice(&tail);
                inode.unsynced_writes.retain(|w| !written.contains(w));
            }
            Ok(())
        })
    }

    fn settle(&self) -> DiskFuture<'_> {
        Box::pin(async move {
            self.pay_queued_io().await;
            Ok(())
        })
    }

    fn sync_dir<'a>(&'a self, dir: &'a str) -> DiskFuture<'a> {
        Box::pin(async move {
            // Every name of the directory as it is now, removed ones included, with the
            // change that made it so.
            let (generation, entries) = {
                let st = self.state.lock().unwrap();
                let entries: Vec<(String, u64, Option<u64>)> = st
                    .changed
                    .iter()
                    .filter(|(n, _)| parent_dir(n) == dir)
                    .map(|(n, change)| (n.clone(), *change, st.names.get(n).copied()))
                    .collect();
                (st.generation, entries)
            };
            self.latency().await;
            let mut st = self.state.lock().unwrap();
            if st.generation != generation {
                return Err(io::Error::other("host crashed during fsync"));
            }
            st.stats.syncs += 1;
            // What a sync that completed meanwhile made durable may be newer than what this
            // one saw: only older entries are replaced.
            for (name, change, id) in entries {
                if st.durable_changed.get(&name).is_some_and(|d| *d >= change) {
                    continue;
                }
                match id {
                    Some(id) => st.durable_names.insert(name.clone(), id),
                    None => st.durable_names.remove(&name),
                };
                st.durable_changed.insert(name, change);
            }
            Ok(())
        })
    }
}

/// One instance's data directory on a host's disk: every path is taken relative to `root`.
/// Several instances share a host's [`SimDisk`], so a host crash or a full disk hits them all.
pub struct SubDisk {
    disk: SimDisk,
    root: String,
}

impl SubDisk {
    pub fn new(disk: SimDisk, root: &str) -> SubDisk {
        let root = root.trim_matches('/').to_string();
        disk.create_dir(&root)
            .expect("the simulated disk creates directories");
        SubDisk { disk, root }
    }

    fn path(&self, rel: &str) -> String {
        // Every disk operation joins a path: plain appends, not the formatting machinery.
        let mut path = String::with_capacity(self.root.len() + 1 + rel.len());
        path.push_str(&self.root);
        if !rel.is_empty() {
            path.push('/');
            path.push_str(rel);
        }
        path
    }
}

impl Disk for SubDisk {
    fn create(&self, path: &str) -> io::Result<()> {
        self.disk.create(&self.path(path))
    }
    fn exists(&self, path: &str) -> bool {
        self.disk.exists(&self.path(path))
    }
    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        self.disk.append(&self.path(path), data)
    }
    fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        self.disk.write_at(&self.path(path), offset, data)
    }
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.disk.read_at(&self.path(path), offset, len)
    }
    fn len(&self, path: &str) -> io::Result<u64> {
        self.disk.len(&self.path(path))
    }
    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.disk.truncate(&self.path(path), len)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.disk.rename(&self.path(from), &self.path(to))
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        self.disk.remove(&self.path(path))
    }
    fn create_dir(&self, dir: &str) -> io::Result<()> {
        self.disk.create_dir(&self.path(dir))
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.disk.list(&self.path(dir))
    }
    fn sync<'a>(&'a self, path: &'a str) -> DiskFuture<'a> {
        Box::pin(async move { self.disk.sync(&self.path(path)).await })
    }
    fn sync_dir<'a>(&'a self, dir: &'a str) -> DiskFuture<'a> {
        Box::pin(async move { self.disk.sync_dir(&self.path(dir)).await })
    }
    fn settle(&self) -> DiskFuture<'_> {
        self.disk.settle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        madsim::runtime::Runtime::new().block_on(f)
    }

    #[test]
    fn crash_keeps_only_synced_bytes_and_synced_names() {
        let disk = SimDisk::new();
        disk.create_dir("wal").unwrap();
        disk.create("wal/log").unwrap();
        disk.append("wal/log", b"durable").unwrap();
        block_on(disk.sync("wal/log")).unwrap();
        // The name is not durable until its directory is synced.
        disk.crash(|_, _| TornTail::None);
        assert!(!disk.exists("wal/log"));

        disk.create("wal/log").unwrap();
        disk.append("wal/log", b"durable").unwrap();
        block_on(disk.sync("wal/log")).unwrap();
        block_on(disk.sync_dir("wal")).unwrap();
        disk.append("wal/log", b"-lost").unwrap();
        disk.crash(|_, _| TornTail::None);
        assert_eq!(disk.read_at("wal/log", 0, 100).unwrap(), b"durable");
    }

    #[test]
    fn a_torn_tail_keeps_a_prefix_of_the_unsynced_append() {
        let disk = SimDisk::new();
        disk.create("f").unwrap();
        block_on(disk.sync_dir("")).unwrap();
        disk.append("f", b"abc").unwrap();
        block_on(disk.sync("f")).unwrap();
        disk.append("f", b"defgh").unwrap();
        disk.crash(|_, unsynced| {
            assert_eq!(unsynced, 5);
            TornTail::Keep(2)
        });
        assert_eq!(disk.read_at("f", 0, 100).unwrap(), b"abcde");
    }

    #[test]
    fn a_truncate_not_synced_is_undone_by_a_crash() {
        let disk = SimDisk::new();
        disk.create("f").unwrap();
        block_on(disk.sync_dir("")).unwrap();
        disk.write_at("f", 0, &[1; 8192]).unwrap();
        block_on(disk.sync("f")).unwrap();
        disk.truncate("f", 0).unwrap();
        disk.append("f", &[2; 100]).unwrap();
        disk.crash_with_writeback(|_, _| TornTail::Keep(100), |_, _, _| true);
        assert_eq!(disk.read_at("f", 0, 8192).unwrap(), vec![1; 8192]);
        assert_eq!(disk.len("f").unwrap(), 8192);
    }

    #[test]
    fn overwrites_not_synced_revert_and_full_disk_refuses_growth() {
        let disk = SimDisk::new();
        disk.create("f").unwrap();
        block_on(disk.sync_dir("")).unwrap();
        disk.write_at("f", 0, &[1; 8]).unwrap();
        block_on(disk.sync("f")).unwrap();
        disk.write_at("f", 0, &[2; 8]).unwrap();
        disk.crash(|_, _| TornTail::Keep(100));
        assert_eq!(disk.read_at("f", 0, 8).unwrap(), vec![1; 8]);
        disk.set_capacity(Some(10));
        assert_eq!(
            disk.append("f", &[0; 3]).unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
        disk.write_at("f", 0, &[3; 8]).unwrap();
    }

    #[test]
    fn a_crash_may_keep_whole_unsynced_overwrites_it_is_told_were_written_back() {
        let disk = SimDisk::new();
        disk.create("f").unwrap();
        block_on(disk.sync_dir("")).unwrap();
        disk.write_at("f", 0, &[1; 16]).unwrap();
        block_on(disk.sync("f")).unwrap();
        disk.write_at("f", 0, &[2; 8]).unwrap();
        disk.write_at("f", 8, &[3; 8]).unwrap();
        // Past the durable end, after a gap.
        disk.write_at("f", 24, &[4; 8]).unwrap();
        let mut asked = Vec::new();
        disk.crash_with_writeback(
            |_, _| TornTail::None,
            |path, offset, len| {
                asked.push((path.to_string(), offset, len));
                offset != 0
            },
        );
        assert_eq!(
            asked,
            vec![("f".into(), 0, 8), ("f".into(), 8, 8), ("f".into(), 24, 8)]
        );
        let mut expected = vec![1; 8];
        expected.extend([3; 8]);
        expected.extend([0; 8]);
        expected.extend([4; 8]);
        assert_eq!(disk.read_at("f", 0, 100).unwrap(), expected);
        // A synced overwrite is no longer a candidate.
        disk.write_at("f", 0, &[5; 8]).unwrap();
        block_on(disk.sync("f")).unwrap();
        disk.crash_with_writeback(|_, _| TornTail::None, |_, _, _| panic!("nothing unsynced"));
        assert_eq!(disk.read_at("f", 0, 8).unwrap(), vec![5; 8]);
    }

    #[test]
    fn an_unsynced_8k_overwrite_can_come_back_torn_page_by_page() {
        let disk = SimDisk::new();
        disk.create("f").unwrap();
        block_on(disk.sync_dir("")).unwrap();
        disk.write_at("f", 0, &[1; 3 * PAGE_SIZE]).unwrap();
        block_on(disk.sync("f")).unwrap();
        // An 8 KiB block at an offset that is not page-aligned spans three pages.
        disk.write_at("f", 2048, &[2; 8192]).unwrap();
        let mut asked = Vec::new();
        disk.crash_with_writeback(
            |_, _| TornTail::None,
            |_, offset, len| {
                asked.push((offset, len));
                offset == 2048
            },
        );
        assert_eq!(asked, vec![(2048, 2048), (4096, 4096), (8192, 2048)]);
        let back = disk.read_at("f", 0, 3 * PAGE_SIZE).unwrap();
        assert_eq!(back[..2048], [1; 2048]);
        assert_eq!(back[2048..4096], [2; 2048]);
        assert_eq!(back[4096..], [1; 2 * PAGE_SIZE]);
    }

    #[test]
    fn renames_become_durable_with_the_directory() {
        let disk = SimDisk::new();
        disk.create("control.tmp").unwrap();
        disk.append("control.tmp", b"v2").unwrap();
        block_on(disk.sync("control.tmp")).unwrap();
        disk.rename("control.tmp", "control").unwrap();
        block_on(disk.sync_dir("")).unwrap();
        disk.crash(|_, _| TornTail::None);
        assert_eq!(disk.list("").unwrap(), vec!["control".to_string()]);
        assert_eq!(disk.read_at("control", 0, 10).unwrap(), b"v2");
    }

    /// Standard seed 427: a directory sync (a checkpoint's) was in flight when a rename in the
    /// same directory (the instance's followed epoch) was made durable by a second directory
    /// sync that completed first; the first, completing, put back the entry it had seen, and
    /// the host's crash brought the old file back.
    #[test]
    fn a_directory_sync_that_completes_last_never_undoes_a_later_one() {
        use std::future::Future;
        use std::task::Poll;
        let replace = |disk: &SimDisk, body: &[u8]| {
            disk.create("epoch.tmp").unwrap();
            disk.append("epoch.tmp", body).unwrap();
            disk.rename("epoch.tmp", "epoch").unwrap();
        };
        block_on(async {
            let disk = SimDisk::new()
                .with_sync_latency(Duration::from_millis(10), Duration::from_millis(10));
            replace(&disk, b"v1");
            disk.sync("epoch").await.unwrap();
            disk.sync_dir("").await.unwrap();
            replace(&disk, b"v2");
            disk.sync("epoch").await.unwrap();
            // The slow sync sees v2's entry, then waits.
            let mut early = Box::pin(disk.sync_dir(""));
            std::future::poll_fn(|cx| {
                assert!(early.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            replace(&disk, b"v3");
            disk.sync("epoch").await.unwrap();
            disk.sync_dir("").await.unwrap();
            early.await.unwrap();
            disk.crash(|_, _| TornTail::None);
            assert_eq!(disk.read_at("epoch", 0, 10).unwrap(), b"v3");
        });
    }
}
