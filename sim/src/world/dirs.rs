//! Where each instance's data directory lies now — segment instances by dbid, and the standby
//! coordinator's — with the disk it is on: the world keeps it as instances are placed, moved
//! and lost, and the continuous checkers read what a directory holds durably through it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cluster::model::catalog::Dbid;
use cluster::wal::WAL_PATH;

use super::disk::SimDisk;

/// One instance's data directory: its host, the host's disk, the directory on it.
#[derive(Clone)]
struct Place {
    host: String,
    disk: SimDisk,
    datadir: String,
}

impl Place {
    fn wal_path(&self) -> String {
        format!("{}/{WAL_PATH}", self.datadir.trim_matches('/'))
    }

    /// The length of the directory's WAL that survives a crash.
    fn durable_wal(&self) -> u64 {
        self.disk.durable_len(&self.wal_path()).unwrap_or(0)
    }

    /// The directory's WAL as the instance sees it now, from `from` up to `to` (less where
    /// it is shorter).
    fn visible_wal(&self, from: u64, to: u64) -> Vec<u8> {
        let len = to.saturating_sub(from) as usize;
        self.disk
            .peek_at(&self.wal_path(), from, len)
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Places {
    segments: BTreeMap<Dbid, Place>,
    standby: Option<Place>,
}

/// Where each segment instance's data directory lies, and the standby coordinator's; shared
/// by the world (which fills it) and the continuous checkers (which read the disks through it).
#[derive(Clone, Default)]
pub struct DataDirs(Arc<Mutex<Places>>);

impl DataDirs {
    /// Instance `dbid`'s data directory is now `datadir` on `host`'s `disk`.
    pub fn segment(&self, dbid: Dbid, host: &str, disk: &SimDisk, datadir: &str) {
        let place = Place {
            host: host.into(),
            disk: disk.clone(),
            datadir: datadir.into(),
        };
        self.0.lock().unwrap().segments.insert(dbid, place);
    }

    /// The standby coordinator runs on `host` in `datadir`.
    pub fn standby(&self, host: &str, disk: &SimDisk, datadir: &str) {
        self.0.lock().unwrap().standby = Some(Place {
            host: host.into(),
            disk: disk.clone(),
            datadir: datadir.into(),
        });
    }

    /// The standby was activated: it is a standby no more.
    pub fn standby_gone(&self) {
        self.0.lock().unwrap().standby = None;
    }

    /// Instance `dbid`'s data directory was destroyed.
    pub fn lost(&self, dbid: Dbid) {
        self.0.lock().unwrap().segments.remove(&dbid);
    }

    /// `host`'s disk was replaced: every directory on it is gone.
    pub fn host_lost(&self, host: &str) {
        let mut places = self.0.lock().unwrap();
        places.segments.retain(|_, p| p.host != host);
        if places.standby.as_ref().is_some_and(|p| p.host == host) {
            places.standby = None;
        }
    }

    /// The length of instance `dbid`'s WAL that survives a crash, if its directory is known.
    pub fn segment_wal(&self, dbid: Dbid) -> Option<u64> {
        let places = self.0.lock().unwrap();
        places.segments.get(&dbid).map(Place::durable_wal)
    }

    /// How many `fsync`s of files in instance `dbid`'s data directory have failed.
    pub fn failed_syncs(&self, dbid: Dbid) -> Option<usize> {
        let places = self.0.lock().unwrap();
        let place = places.segments.get(&dbid)?;
        let dir = format!("{}/", place.datadir.trim_matches('/'));
        Some(place.disk.failed_syncs_under(&dir))
    }

    /// Instance `dbid`'s WAL bytes `[from, to)` as it sees them now (fewer where the file is
    /// shorter; `None`: its directory is unknown or lost).
    pub fn segment_visible_wal(&self, dbid: Dbid, from: u64, to: u64) -> Option<Vec<u8>> {
        let places = self.0.lock().unwrap();
        places.segments.get(&dbid).map(|p| p.visible_wal(from, to))
    }

    /// The length of the standby's catalog WAL that survives a crash, if there is a standby.
    pub fn standby_wal(&self) -> Option<u64> {
        let places = self.0.lock().unwrap();
        places.standby.as_ref().map(Place::durable_wal)
    }
}
