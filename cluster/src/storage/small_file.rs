//! Small files an instance replaces whole: its identity, the role it last had, the newest
//! configuration epoch it followed. Each is `[crc32c: u32 LE][len: u32 LE][body]`, written to a
//! temporary name, synced, renamed over the old one, and its directory synced, so a crash
//! leaves the old file or the new one, never a mix, and a flipped bit is found, never believed.

use crate::io::Disk;

use super::StorageError;

/// `body` as the file holds it.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn unframe(bytes: &[u8]) -> Option<&[u8]> {
    let crc = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
    let len = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
    let body = bytes.get(8..8usize.checked_add(len)?)?;
    (bytes.len() == 8 + len && crc32c::crc32c(body) == crc).then_some(body)
}

/// Reads `path`: `Ok(None)` if there is no such file, `Err(Corrupt)` if it fails its checksum.
pub fn read(disk: &dyn Disk, path: &str) -> Result<Option<Vec<u8>>, SmallFileError> {
    if !disk.exists(path) {
        return Ok(None);
    }
    let io = |op| move |source| SmallFileError::Io(StorageError::io(op, path, source));
    let len = disk.len(path).map_err(io("stat"))?;
    if len > 1 << 20 {
        return Err(SmallFileError::Corrupt {
            path: path.to_string(),
        });
    }
    let bytes = disk.read_at(path, 0, len as usize).map_err(io("read"))?;
    unframe(&bytes)
        .map(|body| Some(body.to_vec()))
        .ok_or_else(|| SmallFileError::Corrupt {
            path: path.to_string(),
        })
}

/// Replaces `path` (in directory `dir`, `""` for the root) with `body`, durably.
pub async fn replace(
    disk: &dyn Disk,
    dir: &str,
    path: &str,
    body: &[u8],
) -> Result<(), StorageError> {
    let tmp = format!("{path}.tmp");
    if !dir.is_empty() {
        disk.create_dir(dir)
            .map_err(|source| StorageError::io("mkdir", dir, source))?;
    }
    if disk.exists(&tmp) {
        disk.remove(&tmp)
            .map_err(|source| StorageError::io("remove", &tmp, source))?;
    }
    let tmp_path = tmp.as_str();
    let io = |op| move |source| StorageError::io(op, tmp_path, source);
    disk.create(&tmp).map_err(io("create"))?;
    disk.append(&tmp, &frame(body)).map_err(io("write"))?;
    disk.sync(&tmp).await.map_err(io("fsync"))?;
    disk.rename(&tmp, path)
        .map_err(|source| StorageError::io("rename", path, source))?;
    disk.sync_dir(dir)
        .await
        .map_err(|source| StorageError::io("fsync", dir, source))
}

#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    #[error(transparent)]
    Io(StorageError),
    #[error("{path} fails its checksum")]
    Corrupt { path: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_body_round_trips_and_any_damage_is_refused() {
        let bytes = frame(b"mirror");
        assert_eq!(unframe(&bytes), Some(&b"mirror"[..]));
        for at in 0..bytes.len() {
            let mut copy = bytes.clone();
            copy[at] ^= 0x10;
            assert_eq!(unframe(&copy), None, "flip at byte {at}");
        }
        assert_eq!(unframe(&bytes[..bytes.len() - 1]), None);
        assert_eq!(unframe(&[0xff; 8]), None, "a huge declared length");
    }
}
