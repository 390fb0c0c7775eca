//! A replayed seed drawn two ways: the Perfetto trace (Chrome trace-event JSON) and the state
//! timeline, both from what the run recorded. And a layout trial measured by simulation.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use cluster::model::layout::Layout;
use reports::timeline::{Event, State};
use sim::config::RunConfig;
use sim::run::run_seed_recorded;

/// Seed 1 of the pair: its first host crash takes the primary down and the mirror is promoted;
/// once the faults heal the operator recovers the old primary and rebalances.
const SEED: u64 = 1;

/// Runs the seed as `hasim replay` does: the log subscriber records the prober's decisions.
fn replay() -> (sim::run::SeedResult, reports::timeline::Recording) {
    sim::trace::install("warn");
    let (result, _, recording) = run_seed_recorded(SEED, &RunConfig::pair());
    (result, recording.expect("the run recorded its events"))
}

#[test]
fn the_perfetto_trace_has_a_track_per_instance_with_states_faults_and_prober_decisions() {
    let (result, rec) = replay();
    let text = serde_json::to_string(&reports::perfetto::trace(&rec)).unwrap();
    // It parses back as trace-event JSON: an object with a traceEvents array.
    let trace: Value = serde_json::from_str(&text).unwrap();
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    for e in events {
        let ph = e["ph"].as_str().expect("every event has a phase");
        assert!(["M", "X", "i", "b", "e"].contains(&ph), "{e}");
        assert!(e["pid"].is_u64(), "{e}");
        if ph != "M" {
            assert!(e["ts"].is_u64(), "{e}");
        }
        if ph == "X" {
            assert!(e["dur"].is_u64(), "{e}");
        }
    }
    let meta = |name: &str| -> BTreeMap<(u64, u64), String> {
        events
            .iter()
            .filter(|e| e["ph"] == "M" && e["name"] == name)
            .map(|e| {
                (
                    (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap_or(0)),
                    e["args"]["name"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let processes: BTreeSet<String> = meta("process_name").into_values().collect();
    assert_eq!(
        processes,
        ["clients", "operator", "sdw1", "sdw2"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    // One thread per instance: dbid 2 (primary, sdw1) and dbid 3 (mirror, sdw2).
    let threads = meta("thread_name");
    let instance_threads: Vec<_> = threads.iter().filter(|(_, n)| n.contains("dbid")).collect();
    assert_eq!(instance_threads.len(), 2, "{threads:?}");
    // Every state span sits on a declared instance thread.
    let spans: Vec<&Value> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] != "txn")
        .collect();
    for s in &spans {
        let key = (s["pid"].as_u64().unwrap(), s["tid"].as_u64().unwrap());
        assert!(
            threads.contains_key(&key),
            "span on an undeclared track: {s}"
        );
    }
    // Complete slices on one thread never overlap (the viewer drops slices that do not nest),
    // and every async transaction slice that begins also ends.
    let mut by_thread: BTreeMap<(u64, u64), Vec<(u64, u64)>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "X") {
        let ts = e["ts"].as_u64().unwrap();
        by_thread
            .entry((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()))
            .or_default()
            .push((ts, ts + e["dur"].as_u64().unwrap()));
    }
    for (track, mut slices) in by_thread {
        slices.sort_unstable();
        for w in slices.windows(2) {
            assert!(w[1].0 >= w[0].1, "overlapping slices on {track:?}: {w:?}");
        }
    }
    let async_ids = |ph: &str| -> BTreeSet<String> {
        events
            .iter()
            .filter(|e| e["ph"] == ph)
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(async_ids("b"), async_ids("e"));
    assert!(
        !async_ids("b").is_empty(),
        "transactions on the instances' tracks"
    );
    let crashes = result
        .faults
        .iter()
        .filter(|f| format!("{:?}", f.fault).starts_with("HostCrash"))
        .count();
    let instants = |cat: &str| {
        events
            .iter()
            .filter(|e| e["ph"] == "i" && e["cat"] == cat)
            .count()
    };
    assert!(instants("fault") >= crashes && crashes > 0);
    assert!(instants("prober") > 0, "prober decisions are marked");
    assert!(instants("failover") > 0, "the promotion is marked");
    let txns = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "txn")
        .count() as u64;
    assert_eq!(txns, result.events.invoked, "every transaction is a span");
    // The operator's actions, as the run's result lists them, are instants on its own track.
    let operator_track = meta("thread_name")
        .into_iter()
        .find(|(_, name)| name == "operator actions")
        .map(|(track, _)| track)
        .expect("an operator track");
    assert_eq!(
        meta("process_name")
            .get(&(operator_track.0, 0))
            .map(String::as_str),
        Some("operator")
    );
    let marked: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e["ph"] == "i" && e["cat"] == "operator")
        .map(|e| {
            let track = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
            assert_eq!(track, operator_track, "{e}");
            let command = e["args"]["command"].as_str().unwrap().to_string();
            (e["ts"].as_u64().unwrap(), command)
        })
        .collect();
    let acted: Vec<(u64, String)> = result
        .operator
        .iter()
        .map(|a| (a.at_ms * 1000, a.command.clone()))
        .collect();
    assert_eq!(marked, acted);
    let commands: Vec<&str> = acted.iter().map(|(_, c)| c.as_str()).collect();
    assert!(
        commands.contains(&"recoverseg") && commands.contains(&"recoverseg -r"),
        "the operator recovered and rebalanced: {commands:?}"
    );
}

#[test]
fn the_timeline_shows_the_promotion_and_the_resynchronization() {
    let (result, rec) = replay();
    let spans = reports::timeline::spans(&rec);
    // The promoted mirror (dbid 3) acts as primary at some point, as the catalog recorded.
    assert!(spans
        .iter()
        .any(|s| s.dbid == 3 && matches!(s.state, State::PrimaryNotSynced | State::PrimarySynced)));
    let promoted = rec
        .events
        .iter()
        .any(|e| matches!(e, Event::Promoted { dbid: 3, .. }));
    assert!(
        promoted,
        "the promotion was recorded: {:?}",
        result.failovers
    );
    // Some instance caught up again and the prober recorded it in sync.
    let resyncs = reports::timeline::resyncs(&rec);
    assert!(
        resyncs.iter().any(|r| r.to_ms.is_some()),
        "a completed resynchronization: {resyncs:?}"
    );
    let svg = reports::charts::timeline(&rec).unwrap();
    assert!(svg.contains("seg0 dbid 2 sdw1") && svg.contains("seg0 dbid 3 sdw2"));
    // The operator's actions: recorded in the run's order, and drawn on the operator's row,
    // each listed by number, command and time.
    let recorded: Vec<(u64, &str)> = rec
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Operator { at_ms, command, .. } => Some((*at_ms, command.as_str())),
            _ => None,
        })
        .collect();
    let acted: Vec<(u64, &str)> = result
        .operator
        .iter()
        .map(|a| (a.at_ms, a.command.as_str()))
        .collect();
    assert_eq!(recorded, acted);
    assert!(
        acted.iter().any(|(_, c)| *c == "recoverseg -r"),
        "{acted:?}"
    );
    // SVG text sits on a line of its own.
    let texts: Vec<&str> = svg.lines().collect();
    assert!(texts.contains(&"operator"), "the operator's row");
    for (i, a) in result.operator.iter().enumerate() {
        let failed = if a.ok { "" } else { ", failed" };
        let line = format!(
            "{} operator: {} at {:.1} s{failed}",
            i + 1,
            a.command,
            a.at_ms as f64 / 1000.0
        );
        assert!(texts.contains(&line.as_str()), "{line} in the timeline");
    }
}

/// Seed 003's claim on the simulator: with group mirroring one host failure leaves every
/// content serving and puts twice the primaries on one host; two neighbouring hosts lose one.
#[test]
fn a_simulated_host_failure_under_group_mirroring_doubles_one_hosts_primaries() {
    let s = sim::layouts::measure(Layout::Group, 4, 2, &[1], 0..3, 2).unwrap();
    assert_eq!(s.survive, vec![(1, 3, 3)]);
    assert_eq!(s.max_acting_after_one, Some(4));
    // Spread on 4 hosts x 2 loses a content whenever two hosts fail.
    let s = sim::layouts::measure(Layout::Spread, 4, 2, &[2], 0..3, 2).unwrap();
    assert_eq!(s.survive, vec![(2, 0, 3)]);
}
