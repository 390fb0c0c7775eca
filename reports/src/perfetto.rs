//! One seed as a Chrome trace-event JSON file, which ui.perfetto.dev (and chrome://tracing)
//! opens: a process per host, a thread per instance (its state spans: role, mode, status, and
//! resynchronization as a `recovery` span), the transactions that touched each instance as
//! async slices under its host, host crashes and restarts as process-wide instants, and the
//! prober's catalog changes and finished promotions as instants on the instance's thread. A
//! `clients` process has a thread per client with its transactions in order, and an `operator`
//! process one track with the operator's actions (`recoverseg`, ...) as instants.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::timeline::{self, Event, Recording, State};

const CLIENTS_PID: u64 = 1000;
const OPERATOR_PID: u64 = 1001;
const OPERATOR_TID: u64 = 1;

fn us(ms: u64) -> u64 {
    ms * 1000
}

/// The trace as a JSON value (`{"traceEvents": [...], "displayTimeUnit": "ms"}`).
pub fn trace(rec: &Recording) -> Value {
    let mut trace = Trace::new(rec);
    trace.instance_tracks();
    trace.state_spans();
    for e in &rec.events {
        trace.event(e);
    }
    trace.finish()
}

/// The trace being written: its events so far, a process id per host, and the clients and
/// operator tracks that turned out to be needed.
struct Trace<'a> {
    rec: &'a Recording,
    hosts: BTreeMap<&'a str, u64>,
    ev: Vec<Value>,
    clients: BTreeMap<u32, ()>,
    operator_acted: bool,
}

impl<'a> Trace<'a> {
    /// Numbers the hosts (instances' hosts first, then hosts only crashes name) and names
    /// their processes.
    fn new(rec: &'a Recording) -> Self {
        let mut hosts: BTreeMap<&str, u64> = BTreeMap::new();
        for i in &rec.instances {
            let next = hosts.len() as u64 + 1;
            hosts.entry(i.host.as_str()).or_insert(next);
        }
        for e in &rec.events {
            if let Event::HostCrash { host, .. } | Event::HostRestart { host, .. } = e {
                let next = hosts.len() as u64 + 1;
                hosts.entry(host.as_str()).or_insert(next);
            }
        }
        let mut ev = Vec::new();
        for (host, pid) in &hosts {
            ev.push(json!({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": host}}));
            ev.push(json!({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}}));
        }
        Trace {
            rec,
            hosts,
            ev,
            clients: BTreeMap::new(),
            operator_acted: false,
        }
    }

    fn pid_of(&self, host: &str) -> u64 {
        self.hosts.get(host).copied().unwrap_or(0)
    }

    /// The process of the host of instance `dbid`, if the recording knows the instance.
    fn pid_of_dbid(&self, dbid: u16) -> Option<u64> {
        let i = self.rec.instances.iter().find(|i| i.dbid == dbid)?;
        Some(self.pid_of(&i.host))
    }

    /// A named thread per instance, under its host.
    fn instance_tracks(&mut self) {
        for i in &self.rec.instances {
            let pid = self.pid_of(&i.host);
            self.ev.push(
                json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": i.dbid,
                "args": {"name": format!("seg{} dbid {} (preferred {})", i.content, i.dbid,
                    if i.role == 'p' { "primary" } else { "mirror" })}}),
            );
            self.ev.push(
                json!({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": i.dbid,
                "args": {"sort_index": i.dbid}}),
            );
        }
    }

    /// Each instance's states over time, as complete slices on its thread.
    fn state_spans(&mut self) {
        for s in timeline::spans(self.rec) {
            let Some(i) = self.rec.instances.iter().find(|i| i.dbid == s.dbid) else {
                continue;
            };
            let (name, cat) = match s.state {
                State::MirrorResync => ("resync", "recovery"),
                other => (other.label(), "state"),
            };
            self.ev.push(
                json!({"ph": "X", "name": name, "cat": cat, "pid": self.pid_of(&i.host), "tid": s.dbid,
                "ts": us(s.from_ms), "dur": us(s.to_ms - s.from_ms),
                "args": {"content": i.content, "state": s.state.label()}}),
            );
        }
    }

    /// One recorded event as instants (or, for a transaction, slices) on its tracks.
    fn event(&mut self, e: &Event) {
        match e {
            Event::HostCrash { at_ms, host } | Event::HostRestart { at_ms, host } => {
                let name = if matches!(e, Event::HostCrash { .. }) {
                    "host crash"
                } else {
                    "host restart"
                };
                self.ev
                    .push(json!({"ph": "i", "s": "p", "name": name, "cat": "fault",
                    "pid": self.pid_of(host), "tid": 0, "ts": us(*at_ms), "args": {"host": host}}));
            }
            Event::CatalogChange(c) => {
                let Some(pid) = self.pid_of_dbid(c.dbid) else {
                    return;
                };
                self.ev.push(json!({"ph": "i", "s": "t",
                    "name": format!("prober: role {}, status {}, mode {}", c.role, c.status, c.mode),
                    "cat": "prober", "pid": pid, "tid": c.dbid, "ts": us(c.at_ms),
                    "args": {"content": c.content, "role": c.role.to_string(),
                        "status": c.status.to_string(), "mode": c.mode.to_string()}}));
            }
            Event::InstanceDown { at_ms, dbid } | Event::InstanceUp { at_ms, dbid } => {
                let Some(pid) = self.pid_of_dbid(*dbid) else {
                    return;
                };
                let name = if matches!(e, Event::InstanceDown { .. }) {
                    "instance down"
                } else {
                    "instance up"
                };
                self.ev
                    .push(json!({"ph": "i", "s": "t", "name": name, "cat": "fault",
                    "pid": pid, "tid": dbid, "ts": us(*at_ms)}));
            }
            Event::Fault { at_ms, kind, dbids } => self.fault(*at_ms, kind, dbids),
            Event::Promoted {
                at_ms,
                content,
                dbid,
            } => {
                let Some(pid) = self.pid_of_dbid(*dbid) else {
                    return;
                };
                self.ev.push(
                    json!({"ph": "i", "s": "t", "name": "promoted", "cat": "failover",
                    "pid": pid, "tid": dbid, "ts": us(*at_ms),
                    "args": {"content": content}}),
                );
            }
            Event::Operator {
                at_ms,
                command,
                ok,
                outcome,
            } => self.operator(*at_ms, command, *ok, outcome),
            Event::Txn {
                at_ms,
                end_ms,
                client,
                id,
                contents,
                outcome,
            } => self.txn(*at_ms, *end_ms, *client, *id, contents, outcome),
        }
    }

    /// A fault: an instant on each instance it struck, or a global one.
    fn fault(&mut self, at_ms: u64, kind: &str, dbids: &[u16]) {
        if dbids.is_empty() {
            self.ev
                .push(json!({"ph": "i", "s": "g", "name": kind, "cat": "fault",
                "pid": 0, "tid": 0, "ts": us(at_ms)}));
        }
        for dbid in dbids {
            let Some(pid) = self.pid_of_dbid(*dbid) else {
                continue;
            };
            self.ev
                .push(json!({"ph": "i", "s": "t", "name": kind, "cat": "fault",
                "pid": pid, "tid": dbid, "ts": us(at_ms)}));
        }
    }

    /// An operator's action, on the operator's track.
    fn operator(&mut self, at_ms: u64, command: &str, ok: bool, outcome: &str) {
        self.operator_acted = true;
        let name = if ok {
            command.to_string()
        } else {
            format!("{command} (failed)")
        };
        self.ev
            .push(json!({"ph": "i", "s": "t", "name": name, "cat": "operator",
            "pid": OPERATOR_PID, "tid": OPERATOR_TID, "ts": us(at_ms),
            "args": {"command": command, "ok": ok, "outcome": outcome}}));
    }

    /// A transaction: a slice on its client's thread, and an async slice on each instance
    /// acting as primary for one of its contents when it began.
    fn txn(
        &mut self,
        at_ms: u64,
        end_ms: u64,
        client: u32,
        id: u64,
        contents: &[i16],
        outcome: &str,
    ) {
        self.clients.insert(client, ());
        let args = json!({"txn": id, "client": client, "contents": contents, "outcome": outcome});
        self.ev.push(
            json!({"ph": "X", "name": format!("txn {id} {outcome}"), "cat": "txn",
            "pid": CLIENTS_PID, "tid": client, "ts": us(at_ms),
            "dur": us(end_ms.saturating_sub(at_ms)), "args": args}),
        );
        for dbid in acting_primaries(self.rec, at_ms, contents) {
            let Some(pid) = self.pid_of_dbid(dbid) else {
                continue;
            };
            let name = format!("transactions on dbid {dbid}");
            let id = format!("{id}.{dbid}");
            self.ev.push(
                json!({"ph": "b", "cat": "txn", "name": name, "id": id, "pid": pid,
                "tid": dbid, "ts": us(at_ms), "args": args}),
            );
            self.ev.push(
                json!({"ph": "e", "cat": "txn", "name": name, "id": id, "pid": pid,
                "tid": dbid, "ts": us(end_ms.max(at_ms))}),
            );
        }
    }

    /// Names the clients' and the operator's tracks, and wraps the events up.
    fn finish(mut self) -> Value {
        self.ev.push(
            json!({"ph": "M", "name": "process_name", "pid": CLIENTS_PID, "args": {"name": "clients"}}),
        );
        for c in self.clients.keys() {
            self.ev.push(
                json!({"ph": "M", "name": "thread_name", "pid": CLIENTS_PID, "tid": c,
                "args": {"name": format!("client {c}")}}),
            );
        }
        if self.operator_acted {
            self.ev.push(
                json!({"ph": "M", "name": "process_name", "pid": OPERATOR_PID,
                "args": {"name": "operator"}}),
            );
            self.ev.push(
                json!({"ph": "M", "name": "thread_name", "pid": OPERATOR_PID,
                "tid": OPERATOR_TID, "args": {"name": "operator actions"}}),
            );
        }
        json!({"traceEvents": self.ev, "displayTimeUnit": "ms",
            "otherData": {"seed": self.rec.seed, "clock": "simulated"}})
    }
}

/// The acting primary of each of `contents` at `at_ms`, by the recorded catalog.
fn acting_primaries(rec: &Recording, at_ms: u64, contents: &[i16]) -> Vec<u16> {
    let mut acting: BTreeMap<i16, u16> = rec
        .instances
        .iter()
        .filter(|i| i.role == 'p')
        .map(|i| (i.content, i.dbid))
        .collect();
    for e in rec.events.iter().take_while(|e| e.at_ms() <= at_ms) {
        if let Event::CatalogChange(c) = e {
            if c.role == 'p' {
                acting.insert(c.content, c.dbid);
            }
        }
    }
    contents
        .iter()
        .filter_map(|c| acting.get(c).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_has_a_process_per_host_and_a_thread_per_instance() {
        let t = trace(&timeline::tests::recording());
        let ev = t["traceEvents"].as_array().unwrap();
        let names = |kind: &str| -> Vec<String> {
            ev.iter()
                .filter(|e| e["ph"] == "M" && e["name"] == kind)
                .map(|e| e["args"]["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            names("process_name"),
            vec!["sdw1", "sdw2", "clients", "operator"]
        );
        assert_eq!(names("thread_name").len(), 4 + 2 + 1);
        // The operator's actions, on its own track, a failed one said to be so.
        let operator: Vec<(&str, u64)> = ev
            .iter()
            .filter(|e| e["ph"] == "i" && e["cat"] == "operator")
            .map(|e| (e["name"].as_str().unwrap(), e["ts"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            operator,
            vec![
                ("recoverseg", 9_500_000),
                ("recoverseg -r (failed)", 12_200_000)
            ]
        );
        assert!(ev
            .iter()
            .filter(|e| e["cat"] == "operator")
            .all(|e| e["pid"] == OPERATOR_PID && e["tid"] == OPERATOR_TID));
        // The resync of dbid 2 after sdw1 came back, as a recovery span on its thread.
        assert!(ev.iter().any(|e| e["cat"] == "recovery"
            && e["tid"] == 2
            && e["ts"] == 8_000_000
            && e["dur"] == 4_000_000));
        assert!(ev
            .iter()
            .any(|e| e["ph"] == "i" && e["name"] == "host crash"));
        assert!(ev.iter().any(|e| e["cat"] == "prober" && e["tid"] == 3));
        // The second transaction ran after the promotion: it is on dbid 3's track.
        assert!(ev
            .iter()
            .any(|e| e["ph"] == "b" && e["tid"] == 3 && e["args"]["txn"] == 1));
    }
}
