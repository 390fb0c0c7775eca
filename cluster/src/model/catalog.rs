//! The cluster configuration as the coordinator records it: `gp_segment_configuration` rows,
//! the configuration epoch, and the `gp_configuration_history` log.
//!
//! The prober's own invariants sit here, beside the state they guard, and are checked after
//! every change: both rows of a pair share a mode; in sync implies both up; an acting primary is
//! never marked down while its mirror is also down and unpromoted... (see [`Catalog::check`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub type Dbid = u16;
/// -1 is the coordinator (and its standby); 0..N-1 are segments.
pub type Content = i16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Primary,
    Mirror,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// `s`: the pair is synchronized.
    Synced,
    /// `n`: not in sync (the primary is in Change Tracking, or the mirror is catching up).
    NotSynced,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    Up,
    Down,
}

impl Role {
    pub fn code(self) -> char {
        match self {
            Role::Primary => 'p',
            Role::Mirror => 'm',
        }
    }
}

impl Mode {
    pub fn code(self) -> char {
        match self {
            Mode::Synced => 's',
            Mode::NotSynced => 'n',
        }
    }
}

impl Status {
    pub fn code(self) -> char {
        match self {
            Status::Up => 'u',
            Status::Down => 'd',
        }
    }
}

/// One row of `gp_segment_configuration`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentConfig {
    pub dbid: Dbid,
    pub content: Content,
    pub role: Role,
    pub preferred_role: Role,
    pub mode: Mode,
    pub status: Status,
    pub hostname: String,
    pub address: String,
    pub port: u16,
    pub datadir: String,
}

impl SegmentConfig {
    /// The coordinator's own row (dbid 1, content -1, up), as `init-standby` records it.
    pub fn coordinator(hostname: String, address: String, port: u16, datadir: String) -> Self {
        SegmentConfig {
            dbid: 1,
            content: -1,
            role: Role::Primary,
            preferred_role: Role::Primary,
            mode: Mode::NotSynced,
            status: Status::Up,
            hostname,
            address,
            port,
            datadir,
        }
    }

    /// `address:port`, what clients of this instance connect to.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}

impl fmt::Display for SegmentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dbid {} content {} {}/{}/{}/{} {}:{} {}",
            self.dbid,
            self.content,
            self.role.code(),
            self.preferred_role.code(),
            self.mode.code(),
            self.status.code(),
            self.hostname,
            self.port,
            self.datadir
        )
    }
}

/// Configuration epochs across coordinators.
///
/// An epoch is one number, compared as a number everywhere, but its high 32 bits are the
/// coordinator generation: a fresh cluster's coordinator works in generation 0, and each
/// `activate-standby` starts the next generation at its first change. A coordinator counts
/// changes in the low bits only, so a deposed coordinator that comes back (a host reboot, a
/// restart from stale files) and records change after change of its own still never reaches
/// an epoch of its successor's generation: every instance that has followed the new generation
/// refuses it, however many changes it makes. (Counting on the plain number alone, as before
/// generations, both coordinators reached the same epochs and instances obeyed both.)
pub mod epoch {
    const GENERATION_SHIFT: u32 = 32;
    const CHANGE_MASK: u64 = (1 << GENERATION_SHIFT) - 1;

    /// The coordinator generation an epoch belongs to.
    pub fn generation(epoch: u64) -> u32 {
        (epoch >> GENERATION_SHIFT) as u32
    }

    /// The change count within its generation.
    pub fn change(epoch: u64) -> u64 {
        epoch & CHANGE_MASK
    }

    /// The first epoch of the generation after `epoch`'s: what an activated standby records.
    pub fn first_of_next_generation(epoch: u64) -> u64 {
        ((generation(epoch) as u64 + 1) << GENERATION_SHIFT) | 1
    }

    /// The epoch as people read it: `7` in generation 0, `2:7` (generation 2, change 7) after
    /// activations.
    pub fn describe(epoch: u64) -> String {
        match generation(epoch) {
            0 => change(epoch).to_string(),
            g => format!("{g}:{}", change(epoch)),
        }
    }
}

/// One row of `gp_configuration_history`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub time_ms: u64,
    pub dbid: Dbid,
    pub desc: String,
}

/// A change to one row: its new role, status and mode (FTS never changes `preferred_role`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowChange {
    pub dbid: Dbid,
    pub role: Role,
    pub status: Status,
    pub mode: Mode,
}

impl RowChange {
    /// The history line the real prober writes for this change.
    pub fn history_desc(&self, content: Content) -> String {
        format!(
            "FTS: update role, status, and mode for dbid {} with contentid {} to {}, {}, and {}",
            self.dbid,
            content,
            self.role.code(),
            self.status.code(),
            self.mode.code()
        )
    }
}

/// A primary and (optionally) its mirror, as the catalog has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub content: Content,
    pub primary: SegmentConfig,
    pub mirror: Option<SegmentConfig>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("content {content} has {primaries} acting primaries; exactly one is required")]
    PrimaryCount { content: Content, primaries: usize },
    #[error("content {content}: primary mode {primary} and mirror mode {mirror} differ; both rows of a pair share a mode")]
    ModeMismatch {
        content: Content,
        primary: char,
        mirror: char,
    },
    #[error(
        "content {content} is marked in sync while dbid {dbid} is down; in sync requires both up"
    )]
    SyncedButDown { content: Content, dbid: Dbid },
    #[error("no segment with dbid {0}")]
    UnknownDbid(Dbid),
}

/// The segment configuration and its epoch. Every change bumps the epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub epoch: u64,
    pub segments: BTreeMap<Dbid, SegmentConfig>,
}

impl Catalog {
    pub fn new(segments: Vec<SegmentConfig>) -> Catalog {
        Catalog {
            epoch: 1,
            segments: segments.into_iter().map(|s| (s.dbid, s)).collect(),
        }
    }

    /// The contents, sorted.
    pub fn contents(&self) -> Vec<Content> {
        let mut contents: Vec<Content> = self
            .segments
            .values()
            .map(|s| s.content)
            .filter(|c| *c >= 0)
            .collect();
        contents.sort();
        contents.dedup();
        contents
    }

    pub fn pair(&self, content: Content) -> Option<Pair> {
        let rows: Vec<&SegmentConfig> = self
            .segments
            .values()
            .filter(|s| s.content == content)
            .collect();
        let primary = rows.iter().find(|s| s.role == Role::Primary)?;
        let mirror = rows
            .iter()
            .find(|s| s.role == Role::Mirror)
            .map(|m| (*m).clone());
        Some(Pair {
            content,
            primary: (*primary).clone(),
            mirror,
        })
    }

    /// Whether the instance at `endpoint` (`address:port`, as [`SegmentConfig::endpoint`] makes
    /// it) is `content`'s acting primary and not marked down. Compared field by field: a session
    /// asks this of every call it has in flight, and an endpoint string per row would allocate.
    pub fn is_acting_primary(&self, content: Content, endpoint: &str) -> bool {
        let Some((address, port)) = endpoint.rsplit_once(':') else {
            return false;
        };
        let Ok(port) = port.parse::<u16>() else {
            return false;
        };
        self.segments.values().any(|s| {
            s.content == content
                && s.role == Role::Primary
                && s.status != Status::Down
                && s.port == port
                && s.address == address
        })
    }

    pub fn pairs(&self) -> Vec<Pair> {
        self.contents()
            .into_iter()
            .filter_map(|c| self.pair(c))
            .collect()
    }

    /// Applies changes as one catalog transaction: the epoch moves once.
    pub fn apply(&mut self, changes: &[RowChange]) -> Result<(), CatalogError> {
        for change in changes {
            if !self.segments.contains_key(&change.dbid) {
                return Err(CatalogError::UnknownDbid(change.dbid));
            }
        }
        for change in changes {
            let row = self.segments.get_mut(&change.dbid).expect("checked above");
            row.role = change.role;
            row.status = change.status;
            row.mode = change.mode;
        }
        self.epoch += 1;
        Ok(())
    }

    /// The prober's invariants over every pair.
    pub fn check(&self) -> Result<(), CatalogError> {
        for content in self.contents() {
            let rows: Vec<&SegmentConfig> = self
                .segments
                .values()
                .filter(|s| s.content == content)
                .collect();
            let primaries = rows.iter().filter(|s| s.role == Role::Primary).count();
            if primaries != 1 {
                return Err(CatalogError::PrimaryCount { content, primaries });
            }
            let Some(pair) = self.pair(content) else {
                continue;
            };
            if let Some(mirror) = &pair.mirror {
                if mirror.mode != pair.primary.mode {
                    return Err(CatalogError::ModeMismatch {
                        content,
                        primary: pair.primary.mode.code(),
                        mirror: mirror.mode.code(),
                    });
                }
                if mirror.mode == Mode::Synced {
                    for row in [&pair.primary, mirror] {
                        if row.status == Status::Down {
                            return Err(CatalogError::SyncedButDown {
                                content,
                                dbid: row.dbid,
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn row(
        dbid: Dbid,
        content: Content,
        role: Role,
        mode: Mode,
        status: Status,
    ) -> SegmentConfig {
        SegmentConfig {
            dbid,
            content,
            role,
            preferred_role: role,
            mode,
            status,
            hostname: format!("sdw{}", dbid),
            address: format!("10.0.0.{}", dbid),
            port: 6000,
            datadir: format!("/data/{}", dbid),
        }
    }

    /// The standby coordinator's row: content -1, a mirror, up.
    pub fn standby_row() -> SegmentConfig {
        SegmentConfig {
            dbid: 9,
            content: -1,
            role: Role::Mirror,
            preferred_role: Role::Mirror,
            mode: Mode::Synced,
            status: Status::Up,
            hostname: "smdw".into(),
            address: "10.0.3.1".into(),
            port: 5432,
            datadir: "/data/standby".into(),
        }
    }

    /// The prober's failover of [`synced_pair`]: the primary down, the mirror acting.
    pub fn failover_of_synced_pair() -> [RowChange; 2] {
        [
            RowChange {
                dbid: 2,
                role: Role::Mirror,
                status: Status::Down,
                mode: Mode::NotSynced,
            },
            RowChange {
                dbid: 3,
                role: Role::Primary,
                status: Status::Up,
                mode: Mode::NotSynced,
            },
        ]
    }

    pub fn synced_pair() -> Catalog {
        Catalog::new(vec![
            row(2, 0, Role::Primary, Mode::Synced, Status::Up),
            row(3, 0, Role::Mirror, Mode::Synced, Status::Up),
        ])
    }

    #[test]
    fn only_the_live_acting_primary_of_the_content_is_its_acting_primary() {
        let mut cat = synced_pair();
        let (primary, mirror) = (cat.segments[&2].endpoint(), cat.segments[&3].endpoint());
        assert!(cat.is_acting_primary(0, &primary));
        assert!(!cat.is_acting_primary(0, &mirror), "a mirror");
        assert!(!cat.is_acting_primary(1, &primary), "another content");
        assert!(!cat.is_acting_primary(0, "10.0.0.2:6001"), "another port");
        assert!(
            !cat.is_acting_primary(0, "10.0.0.22:6000"),
            "another address"
        );
        assert!(!cat.is_acting_primary(0, "10.0.0.2"), "no port");
        // The prober flips the pair: the old primary stops acting the moment it is published.
        cat.apply(&failover_of_synced_pair()).unwrap();
        assert!(!cat.is_acting_primary(0, &primary));
        assert!(cat.is_acting_primary(0, &mirror));
        // A primary row marked down (an administrator's edit) acts for nobody either.
        cat.segments.get_mut(&3).unwrap().status = Status::Down;
        assert!(!cat.is_acting_primary(0, &mirror));
    }

    #[test]
    fn a_change_bumps_the_epoch_once_and_keeps_preferred_roles() {
        let mut cat = synced_pair();
        cat.apply(&failover_of_synced_pair()).unwrap();
        assert_eq!(cat.epoch, 2);
        assert_eq!(cat.segments[&2].preferred_role, Role::Primary);
        assert_eq!(cat.pair(0).unwrap().primary.dbid, 3);
        cat.check().unwrap();
    }

    #[test]
    fn a_new_generation_outranks_every_epoch_of_the_old_one() {
        let old = 41;
        let next = epoch::first_of_next_generation(old);
        assert_eq!(epoch::generation(next), 1);
        assert_eq!(epoch::change(next), 1);
        assert!(
            next > u32::MAX as u64,
            "however many changes the old coordinator makes"
        );
        assert_eq!(epoch::describe(old), "41");
        assert_eq!(epoch::describe(next + 4), "1:5");
        let after = epoch::first_of_next_generation(next + 99);
        assert_eq!((epoch::generation(after), epoch::change(after)), (2, 1));
    }

    #[test]
    fn the_prober_invariants_fire() {
        let mut cat = synced_pair();
        cat.segments.get_mut(&3).unwrap().mode = Mode::NotSynced;
        assert!(matches!(
            cat.check(),
            Err(CatalogError::ModeMismatch { .. })
        ));
        let mut cat = synced_pair();
        cat.segments.get_mut(&3).unwrap().status = Status::Down;
        assert!(matches!(
            cat.check(),
            Err(CatalogError::SyncedButDown { dbid: 3, .. })
        ));
        let mut cat = synced_pair();
        cat.segments.get_mut(&3).unwrap().role = Role::Primary;
        assert!(matches!(
            cat.check(),
            Err(CatalogError::PrimaryCount { primaries: 2, .. })
        ));
        assert_eq!(
            synced_pair().apply(&[RowChange {
                dbid: 9,
                role: Role::Primary,
                status: Status::Up,
                mode: Mode::Synced
            }]),
            Err(CatalogError::UnknownDbid(9))
        );
    }
}
