//! The cluster secret file, `cluster.secret` beside the cluster file: `init-local` writes it
//! (mode 0600), and every hacluster process that opens or accepts a connection loads it and
//! installs its credentials first. A file that is missing, or that group or others may read
//! or write, is refused: the secret is what keeps strangers out of the cluster.
//!
//! Rotation without downtime: `rotate-secret` writes a new secret as `current` and keeps the
//! old one as `previous`. A process holding both accepts peers that hold either, so processes
//! restarted one at a time (`restart`, or one by one) keep talking to those not yet restarted.
//! Once every process runs with the new file, `rotate-secret --finish` drops `previous`, and
//! processes restarted after that accept only the new secret.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use cluster::io::auth::{self, Credentials, Keys, PeerIdentity, Secret};

pub const FILE_NAME: &str = "cluster.secret";
/// Where a secret file is named when the verb has no cluster file (`--coordinator` verbs).
pub const ENV: &str = "HACLUSTER_SECRET";

/// The secret file beside a cluster file.
pub fn beside(cluster: &Path) -> PathBuf {
    cluster.with_file_name(FILE_NAME)
}

/// Writes a new secret file for `cluster_id` (refusing to overwrite one).
pub fn create(path: &Path, cluster_id: u64) -> anyhow::Result<()> {
    write(path, cluster_id, &Keys::single(Secret::generate()), true)
}

fn write(path: &Path, cluster_id: u64, keys: &Keys, new: bool) -> anyhow::Result<()> {
    let tmp = path.with_extension("secret.tmp");
    let target = if new { path } else { &tmp };
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .with_context(|| format!("cannot create the cluster secret file {}", target.display()))?;
    f.write_all(auth::secret_file_text(cluster_id, keys).as_bytes())?;
    f.sync_all()?;
    if !new {
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
    }
    Ok(())
}

/// Reads a secret file, refusing one that is missing or open to group or others.
pub fn load(path: &Path) -> anyhow::Result<(u64, Keys)> {
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "cannot read the cluster secret {}: every hacluster process needs the cluster's \
             secret file ({FILE_NAME}, written by init-local beside the cluster file; verbs \
             given only --coordinator take it from --secret or ${ENV})",
            path.display()
        )
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "the cluster secret {} has mode {mode:03o}: it must be readable and writable by its \
             owner alone (chmod 600 {})",
            path.display(),
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the cluster secret {}", path.display()))?;
    auth::parse_secret_file(&text)
        .map_err(|e| anyhow::anyhow!("the cluster secret {}: {e}", path.display()))
}

/// Loads the secret file and installs this process's credentials as `identity`.
pub fn install(path: &Path, identity: PeerIdentity) -> anyhow::Result<()> {
    let (cluster_id, keys) = load(path)?;
    auth::install(Credentials {
        cluster_id,
        identity,
        keys,
    });
    Ok(())
}

/// `rotate-secret`: a new current secret, the old one kept as previous; with `finish`, the
/// previous one dropped.
pub fn rotate(path: &Path, finish: bool) -> anyhow::Result<String> {
    let (cluster_id, keys) = load(path)?;
    let keys = if finish {
        Keys::single(keys.current)
    } else {
        Keys {
            current: Secret::generate(),
            previous: Some(keys.current),
        }
    };
    write(path, cluster_id, &keys, false)?;
    Ok(if finish {
        format!(
            "{}: previous secret dropped; processes started from now on accept only the current one\n",
            path.display()
        )
    } else {
        format!(
            "{}: new secret (key id {}), the old one kept as previous: restart the processes \
             (each accepts both meanwhile), then rotate-secret --finish\n",
            path.display(),
            auth::hex(&keys.current.key_id())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_is_made_0600_and_refused_when_open_to_others() {
        let dir = std::env::temp_dir().join(format!("hacluster-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        create(&path, 9).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (id, keys) = load(&path).unwrap();
        assert_eq!(id, 9);
        rotate(&path, false).unwrap();
        let (_, rotated) = load(&path).unwrap();
        assert_eq!(rotated.previous, Some(keys.current.clone()));
        rotate(&path, true).unwrap();
        assert_eq!(load(&path).unwrap().1.previous, None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("mode 640") && e.contains("chmod 600"), "{e}");
        std::fs::remove_file(&path).unwrap();
        let e = format!("{:#}", load(&path).unwrap_err());
        assert!(e.contains(FILE_NAME) && e.contains("init-local"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
