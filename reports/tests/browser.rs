//! The report page in a real browser: headless Chromium loads `index.html` from disk and the
//! page's own script records whether every chart image decoded (naturalWidth > 0). Also the
//! report's tables on real simulator output, as snapshots.
//!
//! Chromium comes from Debian (`.ci/install-chromium`). Without it the browser test is skipped
//! loudly on a developer's machine, and fails when `CI` is set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RESULTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/results.jsonl");
const LAYOUTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/layouts.json");
/// The simulator's standard shapes, placed (`sim` checks that this file is what it places).
const SHAPES: &str = include_str!("data/shapes.json");

/// A small recorded run: a primary's host crashes, its mirror is promoted, the host returns.
fn recording() -> reports::timeline::Recording {
    use reports::timeline::{CatalogChange, Event, Instance, Recording};
    let inst = |dbid, content, host: &str, role| Instance {
        dbid,
        content,
        host: host.into(),
        role,
        status: 'u',
        mode: 's',
    };
    let change = |at_ms, dbid, role, status, mode| {
        Event::CatalogChange(CatalogChange {
            at_ms,
            content: 0,
            dbid,
            role,
            status,
            mode,
        })
    };
    Recording {
        seed: 7,
        end_ms: 20_000,
        instances: vec![inst(2, 0, "sdw1", 'p'), inst(3, 0, "sdw2", 'm')],
        events: vec![
            Event::HostCrash {
                at_ms: 1000,
                host: "sdw1".into(),
            },
            change(3000, 2, 'm', 'd', 'n'),
            change(3000, 3, 'p', 'u', 'n'),
            Event::Promoted {
                at_ms: 3050,
                content: 0,
                dbid: 3,
            },
            Event::HostRestart {
                at_ms: 8000,
                host: "sdw1".into(),
            },
            change(12_000, 2, 'm', 'u', 's'),
            change(12_000, 3, 'p', 'u', 's'),
        ],
    }
}

fn fresh_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("reports-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Runs Chromium headless on `page` and returns the DOM after load.
fn dump_dom(chromium: &Path, page: &Path) -> String {
    let profile = fresh_dir("chromium-profile");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait for chromium").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("chromium output");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The SVG files in `dir`.
fn svg_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "svg")
        })
        .count()
}

fn attr(dom: &str, name: &str) -> Option<usize> {
    let at = dom.find(&format!("{name}=\""))? + name.len() + 2;
    dom[at..].split('"').next()?.parse().ok()
}

#[test]
fn every_chart_of_the_report_loads_in_headless_chromium() {
    let out = fresh_dir("page");
    let timeline = out.join("seed-7.svg");
    std::fs::write(&timeline, reports::charts::timeline(&recording()).unwrap()).unwrap();
    let timelines = [timeline];
    let shapes: Vec<reports::layout_report::Shape> = serde_json::from_str(SHAPES).unwrap();
    let extras = reports::Extras {
        layouts: Some(Path::new(LAYOUTS)),
        timelines: &timelines,
        shapes: &shapes,
    };
    let page = reports::report(Path::new(RESULTS), &extras, &out).unwrap();
    let charts = svg_files(&out);
    assert!(
        charts >= 9,
        "failover, throughput, faults, checkers, bugs, two layout charts, the timeline (and its source): {charts}"
    );
    let charts = charts - 1; // seed-7.svg is the timeline's source, not shown itself
    let Some(chromium) = chromium() else {
        if on_ci() {
            panic!("chromium is not installed and CI is set: run .ci/install-chromium");
        }
        eprintln!("\n\n!!!!! SKIPPED: chromium not found on PATH; the report's charts were NOT checked in a browser. Install it with .ci/install-chromium !!!!!\n");
        return;
    };
    check_page_in_chromium(&chromium, &page, charts);
    let _ = std::fs::remove_dir_all(&out);
}

/// The page `.ci/run` writes from its own seed sweep (`hasim report --input
/// target/ci/results.jsonl --layouts ... --timeline ... --out target/ci/report`), named by
/// `HASIM_REPORT_PAGE`. `.ci/run` runs it after the sweep; by hand:
/// `HASIM_REPORT_PAGE=out/index.html cargo test -p reports --test browser -- --ignored`.
#[test]
#[ignore = "needs HASIM_REPORT_PAGE, the index.html of a `hasim report` run (.ci/run sets it)"]
fn the_page_of_a_real_seed_sweep_loads_in_headless_chromium() {
    let page = std::env::var_os("HASIM_REPORT_PAGE")
        .map(PathBuf::from)
        .expect("HASIM_REPORT_PAGE names the index.html written by `hasim report`");
    // Tests run in their package's directory: a relative path is the workspace root's.
    let page = if page.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(page)
    } else {
        page
    };
    let page = std::fs::canonicalize(&page)
        .unwrap_or_else(|e| panic!("HASIM_REPORT_PAGE {}: {e}", page.display()));
    let dir = page.parent().unwrap();
    // Every SVG beside the page is a chart of it (timelines are read from elsewhere and
    // embedded under their own names).
    let charts = svg_files(dir);
    assert!(
        charts >= 7,
        "failover, throughput, faults, checkers, two layout charts, a timeline: {charts}"
    );
    let chromium = chromium().expect("chromium on PATH (.ci/install-chromium)");
    check_page_in_chromium(&chromium, &page, charts);
}

/// Loads `page` in headless Chromium and checks that each of its `charts` images decoded and
/// that the page's sections are there.
fn check_page_in_chromium(chromium: &Path, page: &Path, charts: usize) {
    let dom = dump_dom(chromium, page);
    assert!(
        dom.contains("<h1>hasim report</h1>"),
        "the page rendered: {dom:.500}"
    );
    assert_eq!(
        (attr(&dom, "data-loaded"), attr(&dom, "data-total")),
        (Some(charts), Some(charts)),
        "every chart decoded with a width; the page says: {}",
        dom.split("id=\"chart-check\"")
            .nth(1)
            .unwrap_or("(no check)")
            .chars()
            .take(300)
            .collect::<String>()
    );
    assert!(dom.contains("All charts loaded."));
    // Not blank: the tables are there with their figures.
    for heading in [
        "Failover time",
        "Planted bugs",
        "Failing seeds",
        "The mirroring document's claims",
    ] {
        assert!(dom.contains(heading), "{heading}");
    }
}

#[test]
fn the_tables_of_real_simulator_results() {
    let text = std::fs::read_to_string(RESULTS).unwrap();
    let lines = reports::results::parse_results(&text).unwrap();
    let md: Vec<String> = reports::tables::all(&lines)
        .iter()
        .map(|t| t.markdown())
        .collect();
    insta::assert_snapshot!(md.join("\n"));
}

#[test]
fn a_bad_results_file_names_the_line_and_the_field_and_writes_nothing() {
    let dir = fresh_dir("bad");
    let input = dir.join("r.jsonl");
    let text = std::fs::read_to_string(RESULTS).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[2] = lines[2].replacen("\"sim_time_ms\":", "\"sim_time_ms\":-", 1);
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = dir.join("out");
    let err = reports::report(&input, &reports::Extras::default(), &out).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("line 3: field `sim_time_ms`"), "{msg}");
    assert!(!out.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}
