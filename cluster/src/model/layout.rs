//! Mirror placement: where each content's primary and mirror live, for the three layouts of the
//! mirroring document — group, spread and block.
//!
//! Hosts are numbered 0..n in name order and host `i` holds the primaries of contents
//! `i * per_host ..`. A mirror's slot on its host is the number of mirrors that host already
//! holds (in content order), as `gpinitsystem` picks `mirrorDataDirs[k]`.
//!
//! - **Group**: every mirror of host `i`'s primaries goes on host `i + 1` (mod n). A host failure
//!   doubles the load on one host.
//! - **Spread**: host `i`'s `j`-th primary goes on host `i + 1 + j` (mod n), so one host's mirrors
//!   land on as many different hosts as it has primaries. Needs more hosts than primaries per
//!   host.
//! - **Block**: hosts form blocks of `size` consecutive hosts (the size divides the number of
//!   hosts); host `i`'s `j`-th primary goes to the `(j mod (size - 1)) + 1`-th host after it inside
//!   its block, so mirrors never leave their block.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    Group,
    Spread,
    Block { size: usize },
}

/// One content's placement: host indices and the slot (0-based) of each instance on its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub content: usize,
    pub primary_host: usize,
    pub primary_slot: usize,
    pub mirror_host: usize,
    pub mirror_slot: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("mirroring needs at least 2 hosts, got {hosts}")]
    TooFewHosts { hosts: usize },
    #[error("a cluster needs at least one primary per host")]
    NoPrimaries,
    #[error(
        "spread mirroring needs more hosts than primaries per host \
         ({hosts} hosts, {per_host} primaries per host)"
    )]
    SpreadNeedsMoreHosts { hosts: usize, per_host: usize },
    #[error("block size must be at least 2, got {size}")]
    BlockTooSmall { size: usize },
    #[error("block size {size} does not divide the number of hosts ({hosts})")]
    BlockDoesNotDivide { size: usize, hosts: usize },
}

impl Layout {
    /// Checks that the layout can place `per_host` primaries on each of `hosts` hosts.
    pub fn validate(self, hosts: usize, per_host: usize) -> Result<(), LayoutError> {
        if hosts < 2 {
            return Err(LayoutError::TooFewHosts { hosts });
        }
        if per_host == 0 {
            return Err(LayoutError::NoPrimaries);
        }
        match self {
            Layout::Group => Ok(()),
            Layout::Spread if hosts <= per_host => {
                Err(LayoutError::SpreadNeedsMoreHosts { hosts, per_host })
            }
            Layout::Spread => Ok(()),
            Layout::Block { size } if size < 2 => Err(LayoutError::BlockTooSmall { size }),
            Layout::Block { size } if !hosts.is_multiple_of(size) => {
                Err(LayoutError::BlockDoesNotDivide { size, hosts })
            }
            Layout::Block { .. } => Ok(()),
        }
    }

    /// The host that mirrors host `host`'s `j`-th primary.
    pub fn mirror_host(self, hosts: usize, host: usize, j: usize) -> usize {
        match self {
            Layout::Group => (host + 1) % hosts,
            Layout::Spread => (host + 1 + j) % hosts,
            Layout::Block { size } => {
                let base = host - host % size;
                let offset = (host % size + 1 + j % (size - 1)) % size;
                base + offset
            }
        }
    }

    /// Places `contents` primaries, `per_host` per host in content order (the last host may hold
    /// fewer), and their mirrors.
    pub fn place(
        self,
        hosts: usize,
        per_host: usize,
        contents: usize,
    ) -> Result<Vec<Placed>, LayoutError> {
        self.validate(hosts, per_host)?;
        let mut mirrors_on = vec![0usize; hosts];
        let mut out = Vec::with_capacity(contents);
        for content in 0..contents {
            let primary_host = content / per_host;
            let j = content % per_host;
            let mirror_host = self.mirror_host(hosts, primary_host, j);
            out.push(Placed {
                content,
                primary_host,
                primary_slot: j,
                mirror_host,
                mirror_slot: mirrors_on[mirror_host],
            });
            mirrors_on[mirror_host] += 1;
        }
        Ok(out)
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::Group => f.write_str("group"),
            Layout::Spread => f.write_str("spread"),
            Layout::Block { size } => write!(f, "block:{size}"),
        }
    }
}

impl FromStr for Layout {
    type Err = String;

    /// `group`, `spread`, or `block:SIZE`.
    fn from_str(s: &str) -> Result<Layout, String> {
        match s {
            "group" => Ok(Layout::Group),
            "spread" => Ok(Layout::Spread),
            _ => match s.strip_prefix("block:") {
                Some(n) => n
                    .parse::<usize>()
                    .map(|size| Layout::Block { size })
                    .map_err(|_| format!("block size must be a whole number, got {n:?}")),
                None if s == "block" => Err("block mirroring needs a size: block:SIZE".into()),
                None => Err(format!(
                    "unknown layout {s:?}: expected group, spread or block:SIZE"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn mirror_hosts_of(layout: Layout, hosts: usize, per_host: usize, host: usize) -> Vec<usize> {
        layout
            .place(hosts, per_host, hosts * per_host)
            .unwrap()
            .into_iter()
            .filter(|p| p.primary_host == host)
            .map(|p| p.mirror_host)
            .collect()
    }

    #[test]
    fn group_puts_one_hosts_mirrors_on_the_next_host() {
        assert_eq!(mirror_hosts_of(Layout::Group, 4, 2, 0), vec![1, 1]);
        assert_eq!(mirror_hosts_of(Layout::Group, 4, 2, 3), vec![0, 0]);
    }

    #[test]
    fn spread_puts_one_hosts_mirrors_on_distinct_hosts() {
        assert_eq!(mirror_hosts_of(Layout::Spread, 4, 3, 0), vec![1, 2, 3]);
        assert_eq!(mirror_hosts_of(Layout::Spread, 4, 3, 2), vec![3, 0, 1]);
        assert_eq!(
            Layout::Spread.place(4, 4, 16),
            Err(LayoutError::SpreadNeedsMoreHosts {
                hosts: 4,
                per_host: 4
            })
        );
    }

    #[test]
    fn block_keeps_mirrors_inside_the_block_and_spreads_them_evenly() {
        let layout = Layout::Block { size: 4 };
        for host in 0..8 {
            let block = host / 4;
            let targets = mirror_hosts_of(layout, 8, 6, host);
            assert!(targets.iter().all(|&m| m / 4 == block && m != host));
            // 6 primaries over the 3 other hosts of the block: two each.
            let distinct: BTreeSet<_> = targets.iter().collect();
            assert_eq!(distinct.len(), 3);
        }
        assert_eq!(
            Layout::Block { size: 3 }.validate(8, 2),
            Err(LayoutError::BlockDoesNotDivide { size: 3, hosts: 8 })
        );
    }

    #[test]
    fn every_layout_gives_each_host_as_many_mirrors_as_primaries_and_never_its_own() {
        for (layout, hosts, per_host) in [
            (Layout::Group, 5, 3),
            (Layout::Spread, 5, 3),
            (Layout::Block { size: 2 }, 6, 2),
            (Layout::Block { size: 3 }, 6, 4),
        ] {
            let placed = layout.place(hosts, per_host, hosts * per_host).unwrap();
            for h in 0..hosts {
                let mirrors: Vec<_> = placed.iter().filter(|p| p.mirror_host == h).collect();
                assert_eq!(mirrors.len(), per_host, "{layout} host {h}");
                let slots: BTreeSet<_> = mirrors.iter().map(|p| p.mirror_slot).collect();
                assert_eq!(
                    slots.len(),
                    per_host,
                    "{layout}: slots on host {h} are distinct"
                );
            }
            assert!(placed.iter().all(|p| p.mirror_host != p.primary_host));
        }
    }

    #[test]
    fn layouts_parse_from_their_names() {
        assert_eq!("group".parse(), Ok(Layout::Group));
        assert_eq!("block:4".parse(), Ok(Layout::Block { size: 4 }));
        assert_eq!(Layout::Block { size: 4 }.to_string(), "block:4");
        assert!("block"
            .parse::<Layout>()
            .unwrap_err()
            .contains("block:SIZE"));
        assert!("ring"
            .parse::<Layout>()
            .unwrap_err()
            .contains("unknown layout"));
    }
}
