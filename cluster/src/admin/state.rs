//! The `state` report, modelled on `gpstate`: the default summary, and `-e` (error
//! conditions), `-m` (mirrors), `-f` (standby coordinator), `-s` (every instance in detail,
//! with WAL positions).

use std::fmt::Write as _;

use super::{ReplicationInfo, StateReport};
use crate::model::catalog::{Mode, Role, SegmentConfig, Status};

/// Which view of `state` to print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum View {
    #[default]
    Summary,
    Errors,
    Mirrors,
    Standby,
    Detail,
}

/// The data status of a mirror as `gpstate -m` names it.
pub fn mirror_status(primary: &SegmentConfig, mirror: &SegmentConfig) -> &'static str {
    match (mirror.status, primary.mode) {
        (Status::Down, _) => "Failed (primary in Change Tracking)",
        (Status::Up, Mode::Synced) => "Synchronized",
        (Status::Up, Mode::NotSynced) => "Resynchronizing",
    }
}

fn lag(report: &StateReport, primary: &SegmentConfig) -> Option<u64> {
    let info: &ReplicationInfo = report.replication.get(&primary.dbid)?.as_ref()?;
    info.mirror_connected
        .then(|| info.flushed.saturating_sub(info.mirror_flushed))
}

fn row_line(r: &SegmentConfig) -> String {
    format!(
        "  {:>4} {:>7} {:>4} {:>9} {:>4} {:>6}  {}:{} {}",
        r.dbid,
        r.content,
        r.role.code(),
        r.preferred_role.code(),
        r.mode.code(),
        r.status.code(),
        r.hostname,
        r.port,
        r.datadir
    )
}

const HEADER: &str = "  dbid content role preferred mode status  host:port datadir";

/// Renders one view of the report.
pub fn render(report: &StateReport, view: View) -> String {
    match view {
        View::Summary => summary(report),
        View::Errors => errors(report),
        View::Mirrors => mirrors(report),
        View::Standby => standby(report),
        View::Detail => detail(report),
    }
}

fn summary(report: &StateReport) -> String {
    let cat = &report.catalog;
    let mut out = String::new();
    let pairs = cat.pairs();
    let segs: Vec<&SegmentConfig> = cat.segments.values().filter(|s| s.content >= 0).collect();
    let _ = writeln!(
        out,
        "Configuration epoch: {}",
        crate::model::catalog::epoch::describe(cat.epoch)
    );
    not_operational(report, &mut out);
    let mirrored = pairs.iter().any(|p| p.mirror.is_some());
    let _ = writeln!(
        out,
        "Mirroring: {}",
        if mirrored {
            "configured"
        } else {
            "not configured"
        }
    );
    let _ = writeln!(out, "Contents: {}", pairs.len());
    let _ = writeln!(
        out,
        "Instances: {} ({} up, {} down)",
        segs.len(),
        segs.iter().filter(|s| s.status == Status::Up).count(),
        segs.iter().filter(|s| s.status == Status::Down).count()
    );
    let switched = segs.iter().filter(|s| s.role != s.preferred_role).count();
    let _ = writeln!(out, "Instances not in preferred role: {switched}");
    let unsynced = pairs
        .iter()
        .filter(|p| p.mirror.is_some() && p.primary.mode != Mode::Synced)
        .count();
    let _ = writeln!(out, "Pairs not synchronized: {unsynced}");
    out.push_str(&standby(report));
    let _ = writeln!(out, "{HEADER}");
    for r in segs {
        let _ = writeln!(out, "{}", row_line(r));
    }
    out
}

fn not_operational(report: &StateReport, out: &mut String) {
    if let Some(content) = report.not_operational {
        let _ = writeln!(
            out,
            "System not operational: content {content} failed and has no mirror \
             (restart the cluster once its host is back)"
        );
    }
}

fn errors(report: &StateReport) -> String {
    let cat = &report.catalog;
    let mut out = String::new();
    not_operational(report, &mut out);
    let segs: Vec<&SegmentConfig> = cat.segments.values().filter(|s| s.content >= 0).collect();
    let switched: Vec<&&SegmentConfig> =
        segs.iter().filter(|s| s.role != s.preferred_role).collect();
    let _ = writeln!(out, "Segments with Primary and Mirror Roles Switched");
    if switched.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for r in switched {
        let _ = writeln!(
            out,
            "  dbid {} content {} {}:{}: current role {}, preferred role {}",
            r.dbid,
            r.content,
            r.hostname,
            r.port,
            r.role.code(),
            r.preferred_role.code()
        );
    }
    let _ = writeln!(out, "Unsynchronized Segment Pairs");
    let mut any = false;
    for p in cat.pairs() {
        let Some(m) = &p.mirror else { continue };
        if p.primary.mode == Mode::Synced {
            continue;
        }
        any = true;
        let remaining = match (m.status, lag(report, &p.primary)) {
            (Status::Up, Some(bytes)) => format!("{bytes} WAL bytes remaining"),
            _ => "WAL bytes remaining: Unknown (mirror not streaming)".to_string(),
        };
        let _ = writeln!(
            out,
            "  content {}: primary dbid {} {}:{}, mirror dbid {} {}:{} ({}); {remaining}",
            p.content,
            p.primary.dbid,
            p.primary.hostname,
            p.primary.port,
            m.dbid,
            m.hostname,
            m.port,
            mirror_status(&p.primary, m)
        );
    }
    if !any {
        let _ = writeln!(out, "  none");
    }
    let _ = writeln!(
        out,
        "Downed Segments (may include segments where status could not be retrieved)"
    );
    let down: Vec<&&SegmentConfig> = segs.iter().filter(|s| s.status == Status::Down).collect();
    if down.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for r in down {
        let _ = writeln!(
            out,
            "  dbid {} content {} {}:{} {}",
            r.dbid, r.content, r.hostname, r.port, r.datadir
        );
    }
    out
}

fn mirrors(report: &StateReport) -> String {
    let cat = &report.catalog;
    let mut out = String::new();
    if cat.pairs().iter().all(|p| p.mirror.is_none()) {
        let _ = writeln!(out, "Mirroring: not configured");
        return out;
    }
    let _ = writeln!(out, "  content mirror  host:port                 state");
    for p in cat.pairs() {
        let Some(m) = &p.mirror else {
            let _ = writeln!(out, "  {:>7} (no mirror)", p.content);
            continue;
        };
        // The instance preferred as mirror: where it is and what it does now.
        let preferred = if m.preferred_role == Role::Mirror {
            m
        } else {
            &p.primary
        };
        let role = if preferred.status == Status::Down {
            "Failed"
        } else if preferred.role == Role::Primary {
            "Acting as Primary"
        } else {
            "Passive"
        };
        let _ = writeln!(
            out,
            "  {:>7} {:>6}  {:<24} {role}, {}",
            p.content,
            preferred.dbid,
            format!("{}:{}", preferred.hostname, preferred.port),
            mirror_status(&p.primary, m)
        );
    }
    out
}

fn standby(report: &StateReport) -> String {
    let cat = &report.catalog;
    let mut out = String::new();
    let acting = cat
        .segments
        .values()
        .find(|s| s.content == -1 && s.role == Role::Primary && s.status == Status::Up);
    if let Some(c) = acting {
        let _ = writeln!(
            out,
            "Coordinator: {}:{} {} (Active)",
            c.hostname, c.port, c.datadir
        );
    }
    // The configured standby; a row an activation left down is no standby.
    let standby = cat
        .segments
        .values()
        .find(|s| s.content == -1 && s.role == Role::Mirror && s.status == Status::Up);
    match standby {
        None => out.push_str("Standby: not configured\n"),
        Some(s) => {
            // Without the coordinator's mirroring view (an older report), the catalog row.
            let answers = report.standby.is_none() || report.standby_passive.is_some();
            let _ = writeln!(
                out,
                "Standby: {}:{} {} ({})",
                s.hostname,
                s.port,
                s.datadir,
                if answers {
                    "Standby host passive"
                } else {
                    "Standby host DOWN"
                }
            );
        }
    }
    if let Some(m) = &report.standby {
        mirroring(m, &mut out);
    }
    out
}

/// The mirroring view's row (`gp_master_mirroring`) and the walsender's state, as `gpstate -f`
/// shows them.
fn mirroring(m: &crate::standby::MirroringStatus, out: &mut String) {
    let _ = writeln!(out, "  Mirroring state:   {}", m.summary_state.label());
    if m.standby.is_none() {
        return;
    }
    let sender = if m.detail_state.is_empty() {
        "not connected"
    } else {
        m.detail_state.as_str()
    };
    let _ = writeln!(out, "  WAL sender state:  {sender}");
    let _ = writeln!(
        out,
        "  Catalog WAL lag:   {} bytes (the coordinator's flushed WAL the standby lacks)",
        m.coordinator_flushed_lsn
            .saturating_sub(m.standby_flushed_lsn)
    );
    if let Some(e) = &m.error_message {
        let _ = writeln!(out, "  Error:             {e}");
    }
}

fn detail(report: &StateReport) -> String {
    let cat = &report.catalog;
    let mut out = String::new();
    for r in cat.segments.values().filter(|s| s.content >= 0) {
        let _ = writeln!(out, "dbid {} content {}", r.dbid, r.content);
        let _ = writeln!(out, "  host:port       {}:{}", r.hostname, r.port);
        let _ = writeln!(out, "  datadir         {}", r.datadir);
        let _ = writeln!(
            out,
            "  role            {} (preferred {})",
            r.role.code(),
            r.preferred_role.code()
        );
        let _ = writeln!(
            out,
            "  status, mode    {}, {}",
            r.status.code(),
            r.mode.code()
        );
        match report.replication.get(&r.dbid).and_then(|i| i.as_ref()) {
            None => {
                let _ = writeln!(out, "  WAL             Unknown (not reachable)");
            }
            Some(i) if i.role == Role::Primary => {
                let _ = writeln!(out, "  WAL flushed     {}", i.flushed);
                if i.mirror_connected {
                    let _ = writeln!(
                        out,
                        "  WAL sender      {}; mirror flushed {} ({} bytes behind)",
                        if i.mirror_caught_up {
                            "streaming"
                        } else {
                            "catchup"
                        },
                        i.mirror_flushed,
                        i.flushed.saturating_sub(i.mirror_flushed)
                    );
                } else {
                    let _ = writeln!(out, "  WAL sender      Unknown (no mirror streaming)");
                }
            }
            Some(i) => {
                let _ = writeln!(
                    out,
                    "  WAL received    {}; replayed {}",
                    i.flushed, i.replay_lsn
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::tests::{row, synced_pair};
    use crate::model::catalog::Catalog;

    fn report(catalog: Catalog) -> StateReport {
        let mut replication = std::collections::BTreeMap::new();
        replication.insert(
            2,
            Some(ReplicationInfo {
                role: Role::Primary,
                flushed: 900,
                mirror_connected: true,
                mirror_caught_up: false,
                mirror_flushed: 600,
                replay_lsn: 0,
                recovering: false,
            }),
        );
        replication.insert(3, None);
        StateReport {
            catalog,
            replication,
            history: Vec::new(),
            not_operational: None,
            standby: None,
            standby_passive: None,
        }
    }

    #[test]
    fn the_standby_line_depends_on_a_coordinator_mirror_row() {
        let r = report(synced_pair());
        assert_eq!(render(&r, View::Standby), "Standby: not configured\n");
        let mut cat = synced_pair();
        let mut standby = row(9, -1, Role::Mirror, Mode::Synced, Status::Up);
        standby.hostname = "smdw".into();
        cat.segments.insert(9, standby);
        let out = render(&report(cat), View::Standby);
        assert!(
            out.contains("smdw") && out.contains("Standby host passive"),
            "{out}"
        );
    }

    #[test]
    fn the_standby_view_shows_the_mirroring_state() {
        use crate::standby::{MirroringStatus, SummaryState};
        let mut cat = synced_pair();
        let mut standby = row(9, -1, Role::Mirror, Mode::Synced, Status::Up);
        standby.hostname = "smdw".into();
        cat.segments.insert(9, standby.clone());
        let mut r = report(cat);
        r.standby = Some(Box::new(MirroringStatus {
            summary_state: SummaryState::NotSynchronized,
            detail_state: String::new(),
            log_time_ms: Some(5),
            error_message: Some("the standby sent nothing for 3s".into()),
            standby: Some(standby),
            coordinator_flushed_lsn: 700,
            standby_flushed_lsn: 400,
        }));
        let out = render(&r, View::Standby);
        assert!(out.contains("(Standby host DOWN)"), "{out}");
        assert!(out.contains("Mirroring state:   Not Synchronized"), "{out}");
        assert!(out.contains("WAL sender state:  not connected"), "{out}");
        assert!(out.contains("Catalog WAL lag:   300 bytes"), "{out}");
        assert!(
            out.contains("Error:             the standby sent nothing"),
            "{out}"
        );
    }

    #[test]
    fn resynchronizing_pairs_show_the_wal_bytes_remaining_and_detail_shows_positions() {
        let mut cat = synced_pair();
        for r in cat.segments.values_mut() {
            r.mode = Mode::NotSynced;
        }
        let r = report(cat);
        let e = render(&r, View::Errors);
        assert!(
            e.contains("Resynchronizing); 300 WAL bytes remaining"),
            "{e}"
        );
        let s = render(&r, View::Detail);
        assert!(
            s.contains("catchup; mirror flushed 600 (300 bytes behind)"),
            "{s}"
        );
        assert!(s.contains("Unknown (not reachable)"), "{s}");
        let m = render(&r, View::Mirrors);
        assert!(m.contains("Passive, Resynchronizing"), "{m}");
    }
}
