//! Reading a schedule from a file and checking it against the cluster it will run on: errors
//! name the entry and its field (`faults[3].host: unknown host`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Fault, Layout, ScheduledFault};

/// Checks a schedule against the cluster it will run on: every host, dbid and content exists,
/// every heal follows its fault in the same episode, times are within the run. The error names
/// the entry and its field.
/// (Kept whole: one arm per entry kind, each with its own rule, reads as the rule list.)
pub fn validate(
    faults: &[ScheduledFault],
    layout: &Layout,
    fault_time: Duration,
) -> Result<(), String> {
    let limit = fault_time.as_millis() as u64;
    let mut open: BTreeMap<u32, Fault> = BTreeMap::new();
    let mut last = 0u64;
    let hosts: Vec<&str> = std::iter::once("mdw")
        .chain(layout.segment_hosts.iter().map(|h| h.as_str()))
        .collect();
    for (i, f) in faults.iter().enumerate() {
        let at = |field: &str| format!("faults[{i}].{field}");
        if f.at_ms > limit {
            return Err(format!(
                "{}: {} ms is after the fault phase ({} ms)",
                at("at_ms"),
                f.at_ms,
                limit
            ));
        }
        if f.at_ms < last {
            return Err(format!(
                "{}: entries must be in time order ({} ms after {} ms)",
                at("at_ms"),
                f.at_ms,
                last
            ));
        }
        last = f.at_ms;
        let host_ok = |h: &String, field: &str, hosts: &[&str]| {
            if hosts.contains(&h.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "{}: unknown host {h:?}; known: {}",
                    at(field),
                    hosts.join(", ")
                ))
            }
        };
        match &f.fault {
            Fault::HostCrash { host }
            | Fault::TornWrite { host }
            | Fault::TornGarbage { host }
            | Fault::HostRestart { host }
            | Fault::DiskFull { host }
            | Fault::DiskFullHeal { host }
            | Fault::DiskReplaced { host } => host_ok(host, "host", &hosts[1..])?,
            Fault::InstanceKill { dbid }
            | Fault::InstanceRestart { dbid }
            | Fault::InstancePause { dbid }
            | Fault::InstanceResume { dbid }
            | Fault::BitFlip { dbid, .. }
            | Fault::FsyncFail { dbid, .. }
            | Fault::WalBitFlip { dbid, .. }
            | Fault::ControlBitFlip { dbid, .. }
            | Fault::MisdirectedWrite { dbid, .. }
            | Fault::DatadirLost { dbid } => {
                if layout.host_of(*dbid).is_empty() {
                    return Err(format!(
                        "{}: no segment instance has dbid {dbid}",
                        at("dbid")
                    ));
                }
            }
            Fault::DoubleFault { content } | Fault::DoubleFaultHeal { content } => {
                if layout.pair_hosts(*content).len() < 2 {
                    return Err(format!(
                        "{}: content {content} does not exist or has no mirror",
                        at("content")
                    ));
                }
            }
            Fault::Partition { from, to, .. } | Fault::PartitionHeal { from, to, .. } => {
                for h in from {
                    host_ok(h, "from", &hosts)?;
                }
                for h in to {
                    host_ok(h, "to", &hosts)?;
                }
                if from.is_empty() || to.is_empty() || from.iter().any(|h| to.contains(h)) {
                    return Err(format!(
                        "{}: a partition needs two disjoint, non-empty sides",
                        at("to")
                    ));
                }
            }
            Fault::LatencySpike { min_ms, max_ms } => {
                if min_ms > max_ms || *max_ms == 0 || *max_ms > 60_000 {
                    return Err(format!(
                        "{}: latency must satisfy min_ms <= max_ms, 0 < max_ms <= 60000",
                        at("max_ms")
                    ));
                }
            }
            Fault::ConnectionReset { host } => host_ok(host, "host", &hosts)?,
            Fault::PacketLoss { percent } => {
                if *percent == 0 || *percent > 90 {
                    return Err(format!("{}: must be 1 to 90", at("percent")));
                }
            }
            Fault::CoordinatorCrash
            | Fault::CoordinatorRestart
            | Fault::CoordinatorPairCrash
            | Fault::CoordinatorPairRestart
            | Fault::LatencyHeal
            | Fault::PacketLossHeal
            | Fault::LateDelivery { .. }
            | Fault::CatalogBitFlip { .. } => {}
        }
        if f.fault.is_heal() {
            match open.remove(&f.episode) {
                Some(start) if start.heal().as_ref() == Some(&f.fault) => {}
                Some(start) => {
                    return Err(format!(
                        "{}: episode {} starts {:?} but this entry does not heal it",
                        at("kind"),
                        f.episode,
                        start
                    ))
                }
                None => {
                    return Err(format!(
                        "{}: episode {} heals a fault that did not start before it",
                        at("episode"),
                        f.episode
                    ))
                }
            }
        } else if f.fault.heal().is_some() && open.insert(f.episode, f.fault.clone()).is_some() {
            return Err(format!(
                "{}: episode {} starts two faults",
                at("episode"),
                f.episode
            ));
        }
    }
    Ok(())
}

/// Reads a schedule: a JSON array of faults, or an object with a `faults` array (a result line
/// of `hasim run --json` is one). Errors name the entry and the field.
pub fn parse_schedule(text: &str) -> Result<Vec<ScheduledFault>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let list = match &value {
        serde_json::Value::Array(list) => list,
        serde_json::Value::Object(map) => match map.get("faults") {
            Some(serde_json::Value::Array(list)) => list,
            Some(_) => return Err("faults: must be an array".into()),
            None => return Err("faults: missing (expected an array of faults, or an object with a \"faults\" array)".into()),
        },
        _ => return Err("expected an array of faults, or an object with a \"faults\" array".into()),
    };
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let obj = v
                .as_object()
                .ok_or_else(|| format!("faults[{i}]: must be an object"))?;
            match obj.get("kind").and_then(|k| k.as_str()) {
                None => return Err(format!("faults[{i}].kind: missing or not a string")),
                Some(k) if !known_entry(k) => {
                    return Err(format!(
                        "faults[{i}].kind: unknown fault {k:?}; known: {}",
                        ENTRY_KINDS.join(", ")
                    ))
                }
                Some(_) => {}
            }
            if !matches!(obj.get("at_ms"), Some(serde_json::Value::Number(n)) if n.is_u64()) {
                return Err(format!(
                    "faults[{i}].at_ms: missing or not a whole number of ms"
                ));
            }
            serde_json::from_value::<ScheduledFault>(v.clone())
                .map_err(|e| format!("faults[{i}]: {e}"))
        })
        .collect()
}

/// Every `kind` a schedule entry may have: the fault kinds and their heals.
pub const ENTRY_KINDS: &[&str] = &[
    "host-crash",
    "torn-write",
    "host-restart",
    "instance-kill",
    "instance-restart",
    "instance-pause",
    "instance-resume",
    "double-fault",
    "double-fault-heal",
    "coordinator-crash",
    "coordinator-restart",
    "coordinator-pair-crash",
    "coordinator-pair-restart",
    "partition",
    "partition-heal",
    "connection-reset",
    "latency-spike",
    "latency-heal",
    "packet-loss",
    "packet-loss-heal",
    "disk-full",
    "disk-full-heal",
    "bit-flip",
    "disk-replaced",
    "datadir-lost",
    "late-delivery",
    "fsync-fail",
    "torn-garbage",
    "wal-bit-flip",
    "control-bit-flip",
    "misdirected-write",
    "catalog-bit-flip",
];

fn known_entry(kind: &str) -> bool {
    ENTRY_KINDS.contains(&kind)
}
