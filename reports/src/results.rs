//! The simulator's result lines (`hasim run --json`: one JSON object per seed), read with this
//! crate's own types so that `reports` does not depend on the simulator. Only the fields the
//! report uses are read; unknown fields are ignored, so newer simulators stay readable.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct SeedLine {
    pub seed: u64,
    pub verdict: Verdict,
    pub config: Config,
    pub faults: Vec<Fault>,
    pub events: EventCounts,
    #[serde(default)]
    pub failovers: Vec<Failover>,
    pub sim_time_ms: u64,
    pub wall_time_ms: u64,
    #[serde(default)]
    pub violations: Vec<Violation>,
    /// The checkers that ran over this seed's history (absent in results of older simulators).
    #[serde(default)]
    pub checkers: Option<Vec<String>>,
    pub trace_hash: String,
    pub replay: String,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Safety,
    Liveness,
    Crash,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::Ok,
        Verdict::Safety,
        Verdict::Liveness,
        Verdict::Crash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Safety => "safety",
            Verdict::Liveness => "liveness",
            Verdict::Crash => "crash",
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Config {
    pub scenario: String,
    pub segment_hosts: usize,
    pub contents: usize,
    #[serde(default)]
    pub layout: Option<serde_json::Value>,
    /// Planted bugs by field name (`ack_before_mirror_flush`: true).
    #[serde(default)]
    pub bugs: BTreeMap<String, bool>,
}

impl Config {
    /// The planted bugs switched on, by their command-line names (`ack-before-mirror-flush`).
    pub fn bugs_on(&self) -> Vec<String> {
        self.bugs
            .iter()
            .filter(|(_, on)| **on)
            .map(|(name, _)| name.replace('_', "-"))
            .collect()
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Fault {
    pub at_ms: u64,
    pub kind: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct EventCounts {
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub unknown: u64,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Failover {
    pub content: i64,
    pub host: String,
    pub crash_ms: u64,
    pub mirror_in_sync: bool,
    #[serde(default)]
    pub detected_ms: Option<u64>,
    #[serde(default)]
    pub promoted_ms: Option<u64>,
    #[serde(default)]
    pub first_commit_ms: Option<u64>,
}

impl Failover {
    /// (detection, promotion, first commit) in ms, when every milestone came in order.
    pub fn split_ms(&self) -> Option<(u64, u64, u64)> {
        let (d, p, c) = (self.detected_ms?, self.promoted_ms?, self.first_commit_ms?);
        Some((
            d.checked_sub(self.crash_ms)?,
            p.checked_sub(d)?,
            c.checked_sub(p)?,
        ))
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Violation {
    pub checker: String,
    pub message: String,
}

/// A result line that could not be read: its line number (from 1), the field at fault (a path
/// such as `failovers[2].crash_ms`, or `.` for the line as a whole) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: field `{}`: {}",
            self.line, self.field, self.reason
        )
    }
}

impl std::error::Error for LineError {}

/// Parses one line (numbered `line` from 1).
pub fn parse_line(line: usize, text: &str) -> Result<SeedLine, LineError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed: Result<SeedLine, _> = serde_path_to_error::deserialize(&mut de);
    let parsed = parsed.map_err(|e| {
        let path = e.path().to_string();
        let reason = e.into_inner().to_string();
        // A missing field is reported on its parent; name the field itself.
        let field = match reason
            .strip_prefix("missing field `")
            .and_then(|r| r.split_once('`'))
        {
            Some((name, _)) if path == "." => name.to_string(),
            Some((name, _)) => format!("{path}.{name}"),
            None => path,
        };
        LineError {
            line,
            field,
            reason,
        }
    })?;
    de.end().map_err(|e| LineError {
        line,
        field: ".".into(),
        reason: e.to_string(),
    })?;
    Ok(parsed)
}

/// Parses a whole results file; blank lines are skipped. Stops at the first bad line.
pub fn parse_results(text: &str) -> Result<Vec<SeedLine>, LineError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_line(i + 1, line)?);
    }
    if out.is_empty() {
        return Err(LineError {
            line: 0,
            field: ".".into(),
            reason: "no result lines: expected the output of `hasim run --json`".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A result line as `hasim run --json` writes it (trimmed of fields the report ignores).
    pub(crate) fn line(seed: u64, verdict: &str, bug: Option<&str>) -> String {
        let bugs = match bug {
            Some(b) => format!(r#"{{"{}":true,"ack_before_mirror_flush":false}}"#, b),
            None => r#"{"ack_before_mirror_flush":false}"#.into(),
        };
        let violations = if verdict == "safety" {
            r#"[{"checker":"no-lost-commits","message":"transaction 3 lost","first_event":{}}]"#
        } else {
            "[]"
        };
        format!(
            r#"{{"seed":{seed},"verdict":"{verdict}","config":{{"scenario":"standard","segment_hosts":4,"contents":8,"layout":"group","bugs":{bugs}}},"faults":[{{"at_ms":100,"kind":"host-crash","host":"sdw1"}},{{"at_ms":900,"kind":"host-restart","host":"sdw1"}}],"workload_started_ms":5,"events":{{"invoked":10,"ok":8,"fail":1,"unknown":1}},"failovers":[{{"content":0,"host":"sdw1","crash_ms":{c},"mirror_in_sync":true,"detected_ms":{d},"promoted_ms":{p},"first_commit_ms":{f}}},{{"content":1,"host":"sdw1","crash_ms":105,"mirror_in_sync":false}}],"sim_time_ms":{sim},"wall_time_ms":{wall},"violations":{violations},"checkers":["no-lost-commits","latest-value"],"trace_hash":"00ff","replay":"cargo run --release -p sim -- replay --seed {seed}"}}"#,
            c = 105,
            d = 1105 + seed * 100,
            p = 1120 + seed * 110,
            f = 1300 + seed * 130,
            sim = 60_000 + seed,
            wall = 200 + seed * 10,
        )
    }

    #[test]
    fn reads_a_result_line() {
        let l = parse_line(1, &line(3, "ok", None)).unwrap();
        assert_eq!(l.seed, 3);
        assert_eq!(l.verdict, Verdict::Ok);
        assert_eq!(l.failovers[0].split_ms(), Some((1300, 45, 240)));
        assert!(l.config.bugs_on().is_empty());
        let b = parse_line(1, &line(3, "safety", Some("promote_unsynced_mirror"))).unwrap();
        assert_eq!(b.config.bugs_on(), vec!["promote-unsynced-mirror"]);
    }

    #[test]
    fn a_bad_line_names_its_number_and_field() {
        let good = line(0, "ok", None);
        let text = format!(
            "{good}\n\n{}",
            good.replace(
                r#""crash_ms":105,"mirror_in_sync":false"#,
                r#""crash_ms":"soon","mirror_in_sync":false"#
            )
        );
        let e = parse_results(&text).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "failovers[1].crash_ms"));
        assert!(e
            .to_string()
            .starts_with("line 3: field `failovers[1].crash_ms`: invalid type"));

        let e = parse_results(&good.replace(r#""verdict":"ok","#, "")).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "verdict"));
        let e = parse_results(&good.replace(r#""invoked":10,"#, "")).unwrap_err();
        assert_eq!(e.field, "events.invoked");
        let e = parse_results(&good.replace(r#""ok","#, r#""fine","#)).unwrap_err();
        assert_eq!(e.field, "verdict");
        assert!(e.reason.contains("unknown variant"), "{}", e.reason);
        let e = parse_results("{\"seed\":1} trailing").unwrap_err();
        assert_eq!(e.line, 1);
        assert_eq!(parse_results("\n \n").unwrap_err().line, 0);
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(text in ".{0,300}") {
            let _ = parse_results(&text);
        }

        #[test]
        fn no_mangled_line_panics(cut in 0usize..2000, junk in "[\\[\\]{}\":,a-z0-9]{0,5}") {
            let good = line(1, "ok", None);
            let cut = cut.min(good.len());
            let _ = parse_results(&format!("{}{junk}{}", &good[..cut], &good[cut..]));
        }
    }
}
