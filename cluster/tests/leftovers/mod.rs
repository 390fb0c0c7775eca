//! What a real-process test leaves running: every process whose command line names a path
//! inside the test's directory (an instance, a standby, an agent, whoever started it), killed
//! when the test's cluster is dropped, so that a passing test leaves nothing behind.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Kills (SIGKILL) every process other than this one with a path inside `dir` on its command
/// line, found in `/proc`.
pub fn kill_processes_inside(dir: &Path) {
    let inside = format!("{}/", dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&inside))
        })
        .collect();
    for pid in pids {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}
