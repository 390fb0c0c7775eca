//! The disk half of the I/O seam.
//!
//! Every byte an instance keeps goes through [`Disk`]. Paths are relative to the instance's
//! data directory root and use `/` as separator. The real implementation is [`RealDisk`]
//! (files with `fsync`); the simulator supplies its own, which keeps only synced bytes when its
//! host crashes. Writes are cheap and synchronous (they land in a page cache); `sync` and
//! `sync_dir` are where durability is bought, they may take time, so they are async.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// The future returned by the durability calls.
pub type DiskFuture<'a> = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>;

/// A directory tree of files addressed by relative path.
///
/// Durability contract (the one real file systems give, and the simulated disk enforces):
/// after a crash a file holds exactly what it held at its last completed [`Disk::sync`], and a
/// directory entry created, renamed or removed exists (or not) as of the last completed
/// [`Disk::sync_dir`] of its parent directory.
pub trait Disk: Send + Sync + 'static {
    /// Creates an empty file. Fails with `AlreadyExists` if it exists.
    fn create(&self, path: &str) -> io::Result<()>;
    /// Whether a file exists.
    fn exists(&self, path: &str) -> bool;
    /// Appends `data` at the end of the file; returns the offset it was written at.
    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64>;
    /// Writes `data` at `offset`, extending the file (with zeros) if needed.
    fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Reads up to `len` bytes at `offset`; the result is shorter only at the end of the file.
    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// The file's length in bytes.
    fn len(&self, path: &str) -> io::Result<u64>;
    /// Cuts the file to `len` bytes.
    fn truncate(&self, path: &str, len: u64) -> io::Result<()>;
    /// Atomically renames a file, replacing any file at `to`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &str) -> io::Result<()>;
    /// Creates a directory and its parents (like `mkdir -p`).
    fn create_dir(&self, dir: &str) -> io::Result<()>;
    /// The names of the files directly inside `dir`, sorted.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
    /// Makes the file's content durable (`fsync`).
    fn sync<'a>(&'a self, path: &'a str) -> DiskFuture<'a>;
    /// Makes the directory's entries durable (`fsync` on the directory).
    fn sync_dir<'a>(&'a self, dir: &'a str) -> DiskFuture<'a>;
    /// Waits until the device has served the reads and writes issued so far. A real disk
    /// serves a read before it returns and keeps writes in the page cache, so there is nothing
    /// to wait for; a disk that accounts device time (the simulator's) charges it here. Long
    /// passes over the disk (crash recovery) call it now and then, so their time shows.
    fn settle(&self) -> DiskFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

/// The parent directory of a relative path (`""` for the root).
pub fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("")
}

/// Files on the local file system under one root directory.
pub struct RealDisk {
    root: PathBuf,
    // Open handles, so that hot paths (WAL append, block writes) do not reopen files.
    files: Mutex<BTreeMap<String, Arc<File>>>,
}

impl RealDisk {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<RealDisk> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(RealDisk {
            root,
            files: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, rel: &str) -> io::Result<PathBuf> {
        if rel.split('/').any(|part| part == "..") || rel.starts_with('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("path {rel:?} leaves the data directory"),
            ));
        }
        Ok(if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        })
    }

    fn handle(&self, rel: &str) -> io::Result<Arc<File>> {
        let mut files = self.files.lock().expect("disk handle table poisoned");
        if let Some(file) = files.get(rel) {
            return Ok(file.clone());
        }
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(self.path(rel)?)?,
        );
        files.insert(rel.to_string(), file.clone());
        Ok(file)
    }

    fn forget(&self, rel: &str) {
        self.files
            .lock()
            .expect("disk handle table poisoned")
            .remove(rel);
    }
}

#[cfg(unix)]
fn pwrite(file: &File, offset: u64, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(data, offset)
}

#[cfg(unix)]
fn pread(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

impl Disk for RealDisk {
    fn create(&self, path: &str) -> io::Result<()> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path(path)?)?;
        self.files
            .lock()
            .expect("disk handle table poisoned")
            .insert(path.to_string(), Arc::new(file));
        Ok(())
    }

    fn exists(&self, path: &str) -> bool {
        self.path(path).map(|p| p.is_file()).unwrap_or(false)
    }

    fn append(&self, path: &str, data: &[u8]) -> io::Result<u64> {
        let file = self.handle(path)?;
        let offset = file.metadata()?.len();
        pwrite(&file, offset, data)?;
        Ok(offset)
    }

    fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        pwrite(&*self.handle(path)?, offset, data)
    }

    fn read_at(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let file = self.handle(path)?;
        let mut buf = vec![0; len];
        let n = pread(&file, offset, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn len(&self, path: &str) -> io::Result<u64> {
        Ok(self.handle(path)?.metadata()?.len())
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.handle(path)?.set_len(len)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from)?, self.path(to)?)?;
        self.forget(from);
        self.forget(to);
        Ok(())
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(path)?)?;
        self.forget(path);
        Ok(())
    }

    fn create_dir(&self, dir: &str) -> io::Result<()> {
        std::fs::create_dir_all(self.path(dir)?)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.path(dir)?)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn sync<'a>(&'a self, path: &'a str) -> DiskFuture<'a> {
        Box::pin(async move {
            let file = self.handle(path)?;
            super::runtime::blocking(move || file.sync_data()).await
        })
    }

    fn sync_dir<'a>(&'a self, dir: &'a str) -> DiskFuture<'a> {
        Box::pin(async move {
            let path = self.path(dir)?;
            super::runtime::blocking(move || File::open(path)?.sync_all()).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> RealDisk {
        let dir =
            std::env::temp_dir().join(format!("hacluster-disk-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        RealDisk::new(dir).unwrap()
    }

    #[test]
    fn append_read_truncate_rename_round_trip() {
        let disk = scratch("roundtrip");
        disk.create_dir("wal").unwrap();
        disk.create("wal/a").unwrap();
        assert_eq!(disk.append("wal/a", b"hello").unwrap(), 0);
        assert_eq!(disk.append("wal/a", b" world").unwrap(), 5);
        assert_eq!(disk.read_at("wal/a", 6, 100).unwrap(), b"world");
        disk.write_at("wal/a", 0, b"J").unwrap();
        disk.truncate("wal/a", 5).unwrap();
        assert_eq!(disk.read_at("wal/a", 0, 100).unwrap(), b"Jello");
        disk.rename("wal/a", "wal/b").unwrap();
        assert!(!disk.exists("wal/a"));
        assert_eq!(disk.list("wal").unwrap(), vec!["b".to_string()]);
        assert_eq!(disk.len("wal/b").unwrap(), 5);
        disk.remove("wal/b").unwrap();
        assert!(disk.list("wal").unwrap().is_empty());
        assert_eq!(
            disk.create("x")
                .and_then(|_| disk.create("x"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::AlreadyExists
        );
    }

    #[test]
    fn paths_cannot_escape_the_root() {
        let disk = scratch("escape");
        assert_eq!(
            disk.create("../evil").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            disk.create("/etc/evil").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
