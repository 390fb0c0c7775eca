//! One seed's recorded events, and the state of every instance over simulated time derived from
//! them: the catalog row (role, status, mode) as the prober recorded it, and whether the
//! instance's host was up. The simulator fills a [`Recording`]; this module derives the spans
//! that the timeline chart and the Perfetto trace draw.

use serde::{Deserialize, Serialize};

/// An instance as the catalog first lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub dbid: u16,
    pub content: i16,
    pub host: String,
    /// Catalog codes: role `p`/`m`, status `u`/`d`, mode `s`/`n`.
    pub role: char,
    pub status: char,
    pub mode: char,
}

/// Something that happened, at simulated ms since the run began.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    HostCrash {
        at_ms: u64,
        host: String,
    },
    HostRestart {
        at_ms: u64,
        host: String,
    },
    /// The prober recorded a catalog row change.
    CatalogChange(CatalogChange),
    /// The instance logged that its promotion finished.
    Promoted {
        at_ms: u64,
        content: i16,
        dbid: u16,
    },
    /// One instance's process stopped (killed or paused) or came back, its host staying up.
    InstanceDown {
        at_ms: u64,
        dbid: u16,
    },
    InstanceUp {
        at_ms: u64,
        dbid: u16,
    },
    /// Any other fault the nemesis injected (its kind, as in the result's schedule), marked on
    /// the instances it touches (none: the whole cluster, e.g. a partition or the coordinator).
    Fault {
        at_ms: u64,
        kind: String,
        dbids: Vec<u16>,
    },
    /// The operator ran a utility (`recoverseg`, `recoverseg -F`, `recoverseg -r`, ...) once
    /// the faults healed: whether it succeeded and what it reported.
    Operator {
        at_ms: u64,
        command: String,
        ok: bool,
        outcome: String,
    },
    /// A client transaction, from invocation to its outcome (`ok`, `fail`, `unknown`).
    Txn {
        at_ms: u64,
        end_ms: u64,
        client: u32,
        id: u64,
        contents: Vec<i16>,
        outcome: String,
    },
}

/// A change of one `gp_segment_configuration` row, as the prober logged it (its history line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogChange {
    pub at_ms: u64,
    pub content: i16,
    pub dbid: u16,
    pub role: char,
    pub status: char,
    pub mode: char,
}

impl Event {
    pub fn at_ms(&self) -> u64 {
        match self {
            Event::HostCrash { at_ms, .. }
            | Event::HostRestart { at_ms, .. }
            | Event::CatalogChange(CatalogChange { at_ms, .. })
            | Event::Promoted { at_ms, .. }
            | Event::InstanceDown { at_ms, .. }
            | Event::InstanceUp { at_ms, .. }
            | Event::Fault { at_ms, .. }
            | Event::Operator { at_ms, .. }
            | Event::Txn { at_ms, .. } => *at_ms,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    pub seed: u64,
    pub end_ms: u64,
    pub instances: Vec<Instance>,
    /// In time order.
    pub events: Vec<Event>,
}

/// What an instance was doing, as far as the catalog and its host tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum State {
    /// Acting primary with its mirror in sync.
    PrimarySynced,
    /// Acting primary whose mirror is not in sync (change tracking).
    PrimaryNotSynced,
    /// Mirror in sync with its primary.
    MirrorSynced,
    /// Mirror that is catching up: the catalog has it up but not in sync, or it is marked down
    /// with its host back and the prober next records it up (so it was catching up meanwhile).
    MirrorResync,
    /// The catalog marks it down (its host may be back: it waits to be caught up or recovered).
    MarkedDown,
    /// Its host is down but the catalog has not noticed yet.
    DeadUndetected,
    /// Provisional, never in [`spans`]' output: a mirror marked down whose host is back.
    MirrorBack,
}

impl State {
    pub const ALL: [State; 6] = [
        State::PrimarySynced,
        State::PrimaryNotSynced,
        State::MirrorSynced,
        State::MirrorResync,
        State::MarkedDown,
        State::DeadUndetected,
    ];

    pub fn label(self) -> &'static str {
        match self {
            State::PrimarySynced => "primary, in sync",
            State::PrimaryNotSynced => "primary, not in sync (change tracking)",
            State::MirrorSynced => "mirror, in sync",
            State::MirrorResync => "mirror, catching up (resynchronizing)",
            State::MarkedDown => "marked down",
            State::DeadUndetected => "down (host or process), not yet detected",
            State::MirrorBack => "mirror marked down, host back",
        }
    }

    /// RGB colour of the state in charts.
    pub fn rgb(self) -> (u8, u8, u8) {
        match self {
            State::PrimarySynced => (46, 160, 67),
            State::PrimaryNotSynced => (240, 140, 30),
            State::MirrorSynced => (60, 110, 210),
            State::MirrorResync => (160, 100, 220),
            State::MarkedDown => (150, 150, 150),
            State::DeadUndetected => (215, 40, 40),
            State::MirrorBack => (150, 150, 150),
        }
    }

    fn of(role: char, status: char, mode: char, host_up: bool) -> State {
        match (role, status, mode, host_up) {
            (_, 'u', _, false) => State::DeadUndetected,
            // A mirror marked down whose host is back: catching up if the prober later records
            // it up (see `spans`), otherwise still out of service.
            ('m', 'd', _, true) => State::MirrorBack,
            (_, 'd', _, _) => State::MarkedDown,
            ('p', _, 's', _) => State::PrimarySynced,
            ('p', _, _, _) => State::PrimaryNotSynced,
            (_, _, 's', _) => State::MirrorSynced,
            _ => State::MirrorResync,
        }
    }
}

/// One instance in one state from `from_ms` to `to_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    pub dbid: u16,
    pub from_ms: u64,
    pub to_ms: u64,
    pub state: State,
}

/// Each instance's states over the run, adjacent equal states merged, ordered by dbid then time.
pub fn spans(rec: &Recording) -> Vec<Span> {
    let raw = raw_spans(rec);
    let mut out: Vec<Span> = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let mut s = s.clone();
        if s.state == State::MirrorBack {
            let next = raw.get(i + 1).filter(|n| n.dbid == s.dbid).map(|n| n.state);
            s.state = match next {
                Some(State::MirrorResync | State::MirrorSynced) => State::MirrorResync,
                _ => State::MarkedDown,
            };
        }
        match out.last_mut() {
            Some(last)
                if last.dbid == s.dbid && last.state == s.state && last.to_ms == s.from_ms =>
            {
                last.to_ms = s.to_ms
            }
            _ => out.push(s),
        }
    }
    out
}

fn raw_spans(rec: &Recording) -> Vec<Span> {
    let mut out = Vec::new();
    for inst in &rec.instances {
        let (mut role, mut status, mut mode) = (inst.role, inst.status, inst.mode);
        let (mut host_up, mut process_up) = (true, true);
        let mut current = Span {
            dbid: inst.dbid,
            from_ms: 0,
            to_ms: 0,
            state: State::of(role, status, mode, true),
        };
        for e in &rec.events {
            match e {
                Event::HostCrash { host, .. } if *host == inst.host => host_up = false,
                Event::HostRestart { host, .. } if *host == inst.host => {
                    // A power cycle restarts every process of the host.
                    (host_up, process_up) = (true, true)
                }
                Event::InstanceDown { dbid, .. } if *dbid == inst.dbid => process_up = false,
                Event::InstanceUp { dbid, .. } if *dbid == inst.dbid => process_up = true,
                Event::CatalogChange(c) if c.dbid == inst.dbid => {
                    (role, status, mode) = (c.role, c.status, c.mode)
                }
                _ => continue,
            }
            let state = State::of(role, status, mode, host_up && process_up);
            let at = e.at_ms().min(rec.end_ms);
            if state != current.state {
                current.to_ms = at;
                let next = Span {
                    dbid: inst.dbid,
                    from_ms: at,
                    to_ms: at,
                    state,
                };
                let done = std::mem::replace(&mut current, next);
                if done.to_ms > done.from_ms {
                    out.push(done);
                }
            }
        }
        current.to_ms = rec.end_ms;
        if current.to_ms > current.from_ms {
            out.push(current);
        }
    }
    out
}

/// A resynchronization: a mirror caught up from `from_ms` until the prober recorded it in sync
/// at `to_ms` (absent if it never got there before the run ended).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resync {
    pub dbid: u16,
    pub from_ms: u64,
    pub to_ms: Option<u64>,
}

pub fn resyncs(rec: &Recording) -> Vec<Resync> {
    let spans = spans(rec);
    spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.state == State::MirrorResync)
        .map(|(i, s)| {
            let synced = spans
                .get(i + 1)
                .filter(|n| n.dbid == s.dbid && n.state == State::MirrorSynced);
            Resync {
                dbid: s.dbid,
                from_ms: s.from_ms,
                to_ms: synced.map(|n| n.from_ms),
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn recording() -> Recording {
        let inst = |dbid, content, host: &str, role| Instance {
            dbid,
            content,
            host: host.into(),
            role,
            status: 'u',
            mode: 's',
        };
        let change = |at_ms, content, dbid, role, status, mode| {
            Event::CatalogChange(CatalogChange {
                at_ms,
                content,
                dbid,
                role,
                status,
                mode,
            })
        };
        Recording {
            seed: 7,
            end_ms: 20_000,
            instances: vec![
                inst(2, 0, "sdw1", 'p'),
                inst(3, 0, "sdw2", 'm'),
                inst(4, 1, "sdw2", 'p'),
                inst(5, 1, "sdw1", 'm'),
            ],
            events: vec![
                Event::Txn {
                    at_ms: 500,
                    end_ms: 700,
                    client: 1,
                    id: 0,
                    contents: vec![0, 1],
                    outcome: "ok".into(),
                },
                Event::HostCrash {
                    at_ms: 1000,
                    host: "sdw1".into(),
                },
                change(3000, 0, 2, 'm', 'd', 'n'),
                change(3000, 0, 3, 'p', 'u', 'n'),
                change(3100, 1, 4, 'p', 'u', 'n'),
                change(3100, 1, 5, 'm', 'd', 'n'),
                Event::Promoted {
                    at_ms: 3050,
                    content: 0,
                    dbid: 3,
                },
                Event::HostRestart {
                    at_ms: 8000,
                    host: "sdw1".into(),
                },
                Event::Operator {
                    at_ms: 9500,
                    command: "recoverseg".into(),
                    ok: true,
                    outcome: "dbid 2 content 0: incremental recovery from dbid 3".into(),
                },
                change(12_000, 0, 2, 'm', 'u', 's'),
                change(12_000, 0, 3, 'p', 'u', 's'),
                Event::Operator {
                    at_ms: 12_200,
                    command: "recoverseg -r".into(),
                    ok: false,
                    outcome: "content 1 is not synchronized".into(),
                },
                Event::Txn {
                    at_ms: 12_500,
                    end_ms: 13_000,
                    client: 2,
                    id: 1,
                    contents: vec![0],
                    outcome: "fail".into(),
                },
            ],
        }
    }

    #[test]
    fn states_follow_the_catalog_and_the_hosts() {
        let spans = spans(&recording());
        let of = |dbid| -> Vec<(u64, u64, State)> {
            spans
                .iter()
                .filter(|s| s.dbid == dbid)
                .map(|s| (s.from_ms, s.to_ms, s.state))
                .collect()
        };
        assert_eq!(
            of(2),
            vec![
                (0, 1000, State::PrimarySynced),
                (1000, 3000, State::DeadUndetected),
                (3000, 8000, State::MarkedDown),
                (8000, 12_000, State::MirrorResync),
                (12_000, 20_000, State::MirrorSynced),
            ]
        );
        assert_eq!(
            of(3),
            vec![
                (0, 3000, State::MirrorSynced),
                (3000, 12_000, State::PrimaryNotSynced),
                (12_000, 20_000, State::PrimarySynced),
            ]
        );
        // Content 1's mirror on sdw1 is back but nothing records it up: still marked down.
        assert_eq!(of(5).last().unwrap(), &(3100, 20_000, State::MarkedDown));
    }

    #[test]
    fn a_resync_runs_from_the_mirror_host_coming_back_to_in_sync() {
        let mut rec = recording();
        rec.events.insert(
            8,
            Event::CatalogChange(CatalogChange {
                at_ms: 9000,
                content: 0,
                dbid: 2,
                role: 'm',
                status: 'u',
                mode: 'n',
            }),
        );
        assert_eq!(
            resyncs(&rec),
            vec![Resync {
                dbid: 2,
                from_ms: 8000,
                to_ms: Some(12_000)
            },]
        );
    }
}
