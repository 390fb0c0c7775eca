//! **Liveness: once every fault has healed, the cluster converges.**
//!
//! Seed (002, segment mirroring): a mirror that returns while its primary still holds the WAL it
//! lacks catches up by itself and the pair is Synchronized again. DESIGN (checker 8): once faults
//! stop, every content is Synchronized within a bound.
//!
//! The requirement as it stands, [`requirement`]: every content has a live acting primary, and
//! every mirror that is in its preferred role (it was never the acting primary's predecessor) and
//! needs no recovery tool (its data is intact) is up and in sync. A former primary that was
//! failed over returns only through `recoverseg`, and preferred roles only through a rebalance;
//! tighten this function once the simulator's operator runs those tools.

use std::collections::BTreeSet;

use cluster::catalog::{Catalog, Mode, Role, Status};

pub const NAME: &str = "converged";

/// `Ok` if the catalog shows the converged cluster; otherwise what is still missing. `needs_tool`:
/// dbids that only a recovery tool can bring back (their data was corrupted).
pub fn requirement(catalog: &Catalog, needs_tool: &BTreeSet<u16>) -> Result<(), String> {
    for pair in catalog.pairs() {
        let p = &pair.primary;
        if p.role != Role::Primary || p.status != Status::Up {
            return Err(format!(
                "content {}: no live primary (dbid {} is {}/{})",
                pair.content,
                p.dbid,
                p.role.code(),
                p.status.code()
            ));
        }
        if let Some(m) = &pair.mirror {
            let needs_recovery = m.preferred_role != Role::Mirror || needs_tool.contains(&m.dbid);
            if !needs_recovery && (m.status != Status::Up || m.mode != Mode::Synced) {
                return Err(format!(
                    "content {}: mirror dbid {} is {}/{}, not up and in sync",
                    pair.content,
                    m.dbid,
                    m.status.code(),
                    m.mode.code()
                ));
            }
        }
    }
    Ok(())
}
