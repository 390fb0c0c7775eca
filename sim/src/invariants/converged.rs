//! **Liveness: once every fault has healed and the operator has acted, the cluster converges.**
//!
//! Seed (002, segment mirroring): after a failure the administrator recovers the failed
//! instances (`recoverseg`, a full copy where incremental recovery cannot be done) and, once every
//! pair is Synchronized, returns them to their preferred roles (`recoverseg -r`); after a double
//! fault, restarts the cluster and recovers. DESIGN (checker 8): once faults stop, every content
//! is Synchronized within a bound.
//!
//! The requirement, [`requirement`]: every instance is up and in its preferred role, and every
//! mirrored pair is Synchronized (both rows mode `s`). The runner lets the simulator's operator
//! agent (`operator/`) act after every fault healed and judges this within the bound.
//!
//! With a standby coordinator (seed 000: after an activation, "configure a new standby
//! master"), also [`coordinator_requirement`]: one acting coordinator, up, and a standby the
//! mirroring view reports Synchronized. The coordinator need not be back on its original host.

use cluster::model::catalog::{Catalog, Mode, Role, Status};
use cluster::standby::admin::StandbyAdminError;
use cluster::standby::{MirroringStatus, SummaryState};

pub const NAME: &str = "converged";

/// `Ok` if the catalog shows the converged cluster; otherwise the first thing still missing.
pub fn requirement(catalog: &Catalog) -> Result<(), String> {
    for r in catalog.segments.values().filter(|r| r.content >= 0) {
        if r.status != Status::Up || r.role != r.preferred_role {
            return Err(format!(
                "content {}: dbid {} is {}/{} (preferred role {})",
                r.content,
                r.dbid,
                r.role.code(),
                r.status.code(),
                r.preferred_role.code()
            ));
        }
    }
    for pair in catalog.pairs() {
        if let Some(m) = &pair.mirror {
            if m.mode != Mode::Synced || pair.primary.mode != Mode::Synced {
                return Err(format!(
                    "content {}: the pair is not Synchronized (modes {}/{})",
                    pair.content,
                    pair.primary.mode.code(),
                    m.mode.code()
                ));
            }
        }
    }
    Ok(())
}

/// `Ok` if the catalog has exactly one acting coordinator row (content -1, role p, up) and the
/// mirroring view `status` (asked of the acting coordinator) reports its standby Synchronized.
pub fn coordinator_requirement(
    catalog: &Catalog,
    status: Result<MirroringStatus, StandbyAdminError>,
) -> Result<(), String> {
    let acting: Vec<_> = catalog
        .segments
        .values()
        .filter(|r| r.content == -1 && r.role == Role::Primary && r.status == Status::Up)
        .collect();
    if acting.len() != 1 {
        return Err(format!(
            "the catalog names {} acting coordinators (content -1, role p, up)",
            acting.len()
        ));
    }
    let status = status.map_err(|e| format!("mirroring view: {e}"))?;
    if status.summary_state != SummaryState::Synchronized {
        return Err(format!(
            "the standby coordinator is {}{}",
            status.summary_state.label(),
            status
                .error_message
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::model::catalog::{Role, SegmentConfig};

    fn row(dbid: u16, role: Role) -> SegmentConfig {
        SegmentConfig {
            dbid,
            content: 0,
            role,
            preferred_role: role,
            mode: Mode::Synced,
            status: Status::Up,
            hostname: format!("sdw{dbid}"),
            address: format!("sdw{dbid}"),
            port: 6000,
            datadir: format!("/d/{dbid}"),
        }
    }

    #[test]
    fn only_a_synchronized_pair_in_its_preferred_roles_has_converged() {
        let pair = || Catalog::new(vec![row(2, Role::Primary), row(3, Role::Mirror)]);
        assert_eq!(requirement(&pair()), Ok(()));

        let mut switched = pair();
        switched.segments.get_mut(&2).unwrap().role = Role::Mirror;
        switched.segments.get_mut(&3).unwrap().role = Role::Primary;
        let e = requirement(&switched).unwrap_err();
        assert!(e.contains("preferred role"), "{e}");

        let mut tracking = pair();
        tracking.segments.get_mut(&3).unwrap().status = Status::Down;
        for r in tracking.segments.values_mut() {
            r.mode = Mode::NotSynced;
        }
        assert!(requirement(&tracking).unwrap_err().contains("dbid 3"));

        let mut resyncing = pair();
        resyncing.segments.get_mut(&2).unwrap().mode = Mode::NotSynced;
        let e = requirement(&resyncing).unwrap_err();
        assert!(e.contains("not Synchronized"), "{e}");

        let alone = Catalog::new(vec![row(2, Role::Primary)]);
        assert_eq!(requirement(&alone), Ok(()));
    }
}
