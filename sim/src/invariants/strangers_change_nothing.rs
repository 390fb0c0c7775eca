//! **A stranger changes nothing**: no process of the cluster answers, obeys or keeps anything
//! from a peer that never proved it holds the cluster secret (the intruder, `crate::intruder`).
//!
//! Judged on three grounds, each of them ground truth rather than the cluster's word about
//! itself:
//!
//! 1. what the intruder received: past the handshake's own answer (a server's challenge to a
//!    replayed hello), any frame back is an answer to a request a stranger sent;
//! 2. what the processes report as they serve: a segment instance, a coordinator or a standby
//!    that began serving a connection from the intruder's address ([`Fact::Serving`]), or an
//!    instance that obeyed a fenced request from there ([`Fact::Obeyed`]), judged as reported;
//! 3. the marker values only the intruder uses: an epoch at the very top of the range obeyed,
//!    followed, promoted under or committed in the catalog, a catalog line naming the
//!    intruder's address, or the marker row in the final read.
//!
//! Continuous for the facts (those of 2 and 3 are reported once per connection or request and
//! not kept), completed at the end of the run with the intruder's log and the final read. A
//! violation names the attack, its mode and its target where the evidence traces back to one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cluster::model::data::{Key, Value};
use cluster::model::observe::Fact;

use super::Violation;
use crate::intruder::{Log, IP, MARKER_EPOCH_FLOOR, MARKER_KEY, MARKER_VALUE};
use crate::observer::CatalogLine;

pub const NAME: &str = "strangers-change-nothing";

/// The facts about the intruder, as they were reported.
#[derive(Default)]
pub struct StrangersChangeNothing {
    found: Mutex<Vec<(u64, String, Option<u16>)>>,
}

fn port_of(peer: &str) -> Option<(&str, u16)> {
    let (ip, port) = peer.rsplit_once(':')?;
    Some((ip, port.parse().ok()?))
}

impl StrangersChangeNothing {
    /// Judges `fact`, reported at `at_ms`.
    pub fn observe(&self, at_ms: u64, fact: &Fact) {
        let found = match fact {
            Fact::Serving {
                server,
                peer,
                identity,
            } => match port_of(peer) {
                Some((ip, port)) if ip == IP => Some((
                    format!("{server:?} served a connection from the intruder ({peer}, identity {identity:?})"),
                    Some(port),
                )),
                _ => None,
            },
            Fact::Obeyed {
                dbid, epoch, from, ..
            } if from == IP => Some((
                format!("dbid {dbid} obeyed a request of epoch {epoch} from the intruder"),
                None,
            )),
            Fact::ObeyedEpoch { dbid, epoch, .. } | Fact::Obeyed { dbid, epoch, .. }
                if *epoch >= MARKER_EPOCH_FLOOR =>
            {
                Some((
                    format!("dbid {dbid} obeyed a request stamped with the intruder's epoch {epoch:#x}"),
                    None,
                ))
            }
            Fact::Started { dbid, followed, .. } if *followed >= MARKER_EPOCH_FLOOR => Some((
                format!("dbid {dbid} started following the intruder's epoch {followed:#x}"),
                None,
            )),
            Fact::Promoted { dbid, epoch, .. } if *epoch >= MARKER_EPOCH_FLOOR => Some((
                format!("dbid {dbid} was promoted under the intruder's epoch {epoch:#x}"),
                None,
            )),
            Fact::CatalogChanged { epoch, dbid, desc, .. }
                if *epoch >= MARKER_EPOCH_FLOOR || desc.contains(IP) =>
            {
                Some((
                    format!("the catalog changed dbid {dbid} under epoch {epoch:#x}: {desc}"),
                    None,
                ))
            }
            _ => None,
        };
        if let Some((message, port)) = found {
            self.found.lock().unwrap().push((at_ms, message, port));
        }
    }

    /// Every finding: what was reported, what the intruder received, and the marker row or the
    /// intruder's address in the final read and the catalog lines.
    pub fn check(
        &self,
        log: &Log,
        rows: &BTreeMap<(String, Key), Value>,
        catalog: &[CatalogLine],
    ) -> Vec<Violation> {
        // The newest attempt from that port begun by then (ports are reused).
        let by_port = |port: Option<u16>, at_ms: u64| {
            port.and_then(|p| {
                (log.attempts.iter())
                    .rev()
                    .find(|a| a.port == Some(p) && a.at_ms <= at_ms)
            })
            .map(|a| format!(" ({})", a.describe()))
            .unwrap_or_default()
        };
        let mut out = Vec::new();
        for (at_ms, message, port) in self.found.lock().unwrap().iter() {
            let message = format!("{message}{}", by_port(*port, *at_ms));
            out.push(Violation::as_reported(
                NAME,
                *at_ms,
                "fact",
                message,
                String::new(),
            ));
        }
        for (index, frames) in &log.answered {
            let a = &log.attempts[*index];
            out.push(Violation::as_reported(
                NAME,
                a.at_ms,
                "intruder",
                format!("the intruder got {frames} frame(s) back: {}", a.describe()),
                String::new(),
            ));
        }
        for ((table, key), value) in rows {
            if *key == MARKER_KEY || value.starts_with(MARKER_VALUE) {
                out.push(Violation::as_reported(
                    NAME,
                    0,
                    "final-read",
                    format!(
                        "the final read holds the intruder's row in {table}: key {key}, value {:?}",
                        String::from_utf8_lossy(value)
                    ),
                    String::new(),
                ));
            }
        }
        for line in catalog {
            if line.epoch >= MARKER_EPOCH_FLOOR || line.desc.contains(IP) {
                out.push(Violation::as_reported(
                    NAME,
                    line.at_ms,
                    "catalog",
                    format!(
                        "catalog line of dbid {} under epoch {:#x} comes from the intruder: {}",
                        line.dbid, line.epoch, line.desc
                    ),
                    String::new(),
                ));
            }
        }
        out
    }
}

impl crate::observer::Judge for StrangersChangeNothing {
    fn judge(&self, at_ms: u64, fact: &Fact) {
        self.observe(at_ms, fact);
    }
}
