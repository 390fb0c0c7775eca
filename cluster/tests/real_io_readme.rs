//! The README's production quick start and operator's path, run as written: the shell blocks
//! that follow their markers in README.md, with only the binary, the directory and the port
//! (`B=... D=... P=...`) set to this build's, a fresh directory and free ports. A step that
//! fails fails the test, and nothing is left running.
//!
//! Build and run: `RUSTFLAGS= cargo test -p cluster --features real-io --test real_io_readme`.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{alive, HACLUSTER};

/// The shell block after the line holding `marker` in README.md.
fn block(readme: &str, marker: &str) -> String {
    let after = readme
        .split_once(marker)
        .unwrap_or_else(|| panic!("README.md has no marker {marker:?}"))
        .1;
    let body = after
        .split_once("```sh\n")
        .expect("a ```sh block follows the marker")
        .1;
    body.split_once("```")
        .expect("the block ends")
        .0
        .to_string()
}

#[test]
fn the_readme_quick_start_and_operators_path_work_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let quick = block(&readme, "<!-- quick start:");
    let path = block(&readme, "<!-- operator's path:");
    let first = quick.lines().next().unwrap();
    assert!(
        first.starts_with("B=target/release/hacluster D=/tmp/hac P="),
        "{first}"
    );
    let pid = std::process::id() as usize;
    let dir = std::env::temp_dir().join(format!("real_io_readme_{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    let port = (0..20)
        .map(|k| 20_000 + ((pid % 4000) * 3 + 1_117 + k * 211) % 12_000)
        .find(|p| {
            (*p..*p + 4).all(|q| std::net::TcpListener::bind(("127.0.0.1", q as u16)).is_ok())
        })
        .expect("free ports");
    let script = format!(
        "set -eu\nB={HACLUSTER} D={} P={port}\n{}\n{}",
        dir.display(),
        quick.lines().skip(1).collect::<Vec<_>>().join("\n"),
        path
    );
    let out = Command::new("timeout")
        .args(["240", "bash", "-c", &script])
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing may be left running, whatever happened.
    let _ = Command::new(HACLUSTER)
        .args(["stop", "-M", "immediate", "--cluster"])
        .arg(dir.join("cluster.json"))
        .output();
    let mut left = Vec::new();
    for name in ["coordinator", "primary0", "mirror0", "standby"] {
        if let Ok(text) = std::fs::read_to_string(dir.join(name).join("instance.pid")) {
            if let Some(pid) = text
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<u32>().ok())
            {
                std::thread::sleep(Duration::from_millis(100));
                if alive(pid) {
                    left.push((name, pid));
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
        }
    }
    assert!(
        out.status.success(),
        "the README's commands failed:\n{text}"
    );
    assert!(left.is_empty(), "left running after stop: {left:?}");
    // What the steps printed: the row read back after the failover and after the activation.
    assert!(text.matches(r#""value":"hello""#).count() >= 3, "{text}");
    assert!(text.contains(r#""activated":"#), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
