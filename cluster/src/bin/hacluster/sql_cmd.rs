//! The SQL front door's files beside the cluster file, and its configuration for a process:
//! `users` (each SQL user's password verifier, mode 0600), `hba.conf` (who may connect from
//! where, and how) and, when `init-local` or `plan` chose the first user's password,
//! `sql.password` (mode 0600). `sql-user` adds or changes a user.

use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use cluster::frontdoor::auth::{self, Users, Verifier};
use cluster::frontdoor::FrontDoorConfig;

use crate::cluster_file::ClusterFile;

pub const USERS: &str = "users";
pub const HBA: &str = "hba.conf";
pub const PASSWORD: &str = "sql.password";
/// The first SQL user, as gpinitsystem's administrator.
pub const FIRST_USER: &str = "gpadmin";

pub fn users_path(cluster: &Path) -> PathBuf {
    cluster.with_file_name(USERS)
}

pub fn hba_path(cluster: &Path) -> PathBuf {
    cluster.with_file_name(HBA)
}

/// Writes `text` to a new file of mode 0600.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The first line of `path`: a password.
fn read_password(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        bail!("the password file {} is empty", path.display());
    }
    Ok(password)
}

/// Writes the users file (user `gpadmin`, with the password of `password_file` or a random
/// one saved in `sql.password`) and the default rules beside `cluster`; the password file
/// written, if any.
pub fn create(cluster: &Path, password_file: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    let (password, saved) = match password_file {
        Some(f) => (read_password(f)?, None),
        None => {
            let password = auth::random_password();
            let path = cluster.with_file_name(PASSWORD);
            write_new(&path, &format!("{password}\n"))?;
            (password, Some(path))
        }
    };
    let mut users = Users::default();
    users
        .set(FIRST_USER, Verifier::scram(&password))
        .map_err(anyhow::Error::msg)?;
    write_new(&users_path(cluster), &users.text())?;
    write_new(&hba_path(cluster), auth::DEFAULT_HBA)?;
    Ok(saved)
}

/// `sql-user`: adds `user` to the users file beside `cluster`, or changes its password, to the
/// first line of `password_file` or of standard input.
pub fn sql_user(
    cluster: &Path,
    user: &str,
    password_file: Option<&Path>,
) -> anyhow::Result<serde_json::Value> {
    ClusterFile::load(cluster)?;
    let password = match password_file {
        Some(f) => read_password(f)?,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            let line = line.trim_end_matches(['\n', '\r']).to_string();
            if line.is_empty() {
                bail!("no password: give --password-file FILE, or the password on standard input");
            }
            line
        }
    };
    let path = users_path(cluster);
    let mut users = if path.exists() {
        Users::load(&path).map_err(anyhow::Error::msg)?
    } else {
        Users::default()
    };
    let changed = users.users.contains_key(user);
    users
        .set(user, Verifier::scram(&password))
        .map_err(anyhow::Error::msg)?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, &users.text())?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(serde_json::json!({
        "user": user,
        "changed": changed,
        "users_file": path,
        "note": "running coordinators read the users file at each connection",
    }))
}

/// The front door of a process listening on `address:sql_port`. Bad lines in the users or
/// rules file are an error now; a missing file is reported, and clients are refused until it
/// exists.
pub fn frontdoor_config(
    file: &ClusterFile,
    cluster: &Path,
    address: &str,
    sql_port: u16,
) -> anyhow::Result<FrontDoorConfig> {
    let tls = match (&file.sql_tls_cert, &file.sql_tls_key) {
        (Some(cert), Some(key)) => {
            Some(cluster::frontdoor::tls_acceptor(cert, key).map_err(anyhow::Error::msg)?)
        }
        _ => None,
    };
    let cfg = FrontDoorConfig {
        listen_addr: format!("{address}:{sql_port}"),
        users_file: users_path(cluster),
        hba_file: hba_path(cluster),
        given: None,
        max_connections: file.coordinator_max_connections,
        tls,
    };
    for path in [&cfg.users_file, &cfg.hba_file] {
        if !path.exists() {
            tracing::warn!(
                "{} does not exist: SQL clients are refused until it does (hacluster sql-user \
                 writes the users file; hba.conf holds lines `host DATABASE USER ADDRESS/PREFIX METHOD`)",
                path.display()
            );
        }
    }
    if cfg.users_file.exists() {
        Users::load(&cfg.users_file).map_err(anyhow::Error::msg)?;
    }
    if cfg.hba_file.exists() {
        auth::Hba::load(&cfg.hba_file).map_err(anyhow::Error::msg)?;
    }
    Ok(cfg)
}
