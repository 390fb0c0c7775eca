//! The real-process tests' shared cluster secret. A test that talks to its cluster from its
//! own process (an in-process client) installs credentials process-wide; tests of one binary
//! run at once, each with a cluster of its own, so every such cluster is given this same
//! secret (replacing the one init-local wrote) and the process's credentials suit them all.

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use cluster::io::auth::{self, Credentials, Keys, PeerIdentity, Secret};

const CLUSTER_ID: u64 = 0x7e57;

fn keys() -> Keys {
    Keys::single(Secret::from_bytes([0x7e; 32]))
}

/// The secret file beside a cluster file.
pub fn beside(cluster_file: &Path) -> PathBuf {
    cluster_file.with_file_name("cluster.secret")
}

/// Gives the cluster of `cluster_file` the shared secret and installs it in this process.
pub fn share(cluster_file: &Path) {
    let path = beside(cluster_file);
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("cannot write the test secret");
    f.write_all(auth::secret_file_text(CLUSTER_ID, &keys()).as_bytes())
        .unwrap();
    auth::install(Credentials {
        cluster_id: CLUSTER_ID,
        identity: PeerIdentity::Admin,
        keys: keys(),
    });
}
