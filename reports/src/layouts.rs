//! Exact availability and load skew of mirror layouts (the mirroring document's claims),
//! computed by enumeration over a placement. Pure: the caller gives the placement (the
//! simulator: from the cluster's own layout code) as (primary host, mirror host) per content.

use serde::{Deserialize, Serialize};

/// A layout's placement, as the report needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// `group`, `spread`, `block:4`.
    pub layout: String,
    pub hosts: usize,
    pub primaries_per_host: usize,
    /// (primary host, mirror host) per content, hosts numbered from 0.
    pub pairs: Vec<(usize, usize)>,
}

/// Exact figures for one layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exact {
    pub layout: String,
    pub hosts: usize,
    pub primaries_per_host: usize,
    /// For k = 1..: (surviving k-subsets, all k-subsets). The cluster survives when every
    /// content keeps its primary or its mirror.
    pub survive: Vec<(u64, u64)>,
    /// The most acting primaries on one host after the worst single host failure.
    pub max_acting_after_one: usize,
    /// For k = 2..: (surviving, all) over the k-subsets whose hosts lie in k different blocks;
    /// only for block layouts.
    pub survive_distinct_blocks: Option<Vec<(u64, u64)>>,
}

impl Exact {
    pub fn availability(&self, k: usize) -> Option<f64> {
        let (s, n) = *self.survive.get(k.checked_sub(1)?)?;
        Some(s as f64 / n as f64)
    }
}

/// Every `k`-subset of `0..n`, as sorted vectors, in lexicographic order.
pub fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    fn go(start: usize, n: usize, k: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if cur.len() == k {
            out.push(cur.clone());
            return;
        }
        for i in start..n {
            if n - i < k - cur.len() {
                break;
            }
            cur.push(i);
            go(i + 1, n, k, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    if k <= n {
        go(0, n, k, &mut Vec::new(), &mut out);
    }
    out
}

/// Whether every content keeps a live instance when `failed` hosts are down.
pub fn survives(pairs: &[(usize, usize)], failed: &[usize]) -> bool {
    pairs
        .iter()
        .all(|(p, m)| !(failed.contains(p) && failed.contains(m)))
}

/// Acting primaries per host once `failed` hosts are down and every content whose primary was
/// lost runs on its mirror (a content that lost both has none). Failed hosts count 0.
pub fn acting_primaries(hosts: usize, pairs: &[(usize, usize)], failed: &[usize]) -> Vec<usize> {
    let mut load = vec![0; hosts];
    for &(p, m) in pairs {
        if !failed.contains(&p) {
            load[p] += 1;
        } else if !failed.contains(&m) {
            load[m] += 1;
        }
    }
    load
}

/// The block size of a `block:N` layout name.
pub fn block_size(layout: &str) -> Option<usize> {
    layout.strip_prefix("block:")?.parse().ok()
}

pub fn exact(placement: &Placement, k_max: usize) -> Exact {
    let Placement {
        hosts,
        pairs,
        layout,
        primaries_per_host,
    } = placement;
    let count = |k: usize, keep: &dyn Fn(&[usize]) -> bool| {
        let all: Vec<_> = subsets(*hosts, k).into_iter().filter(|s| keep(s)).collect();
        let ok = all.iter().filter(|s| survives(pairs, s)).count();
        (ok as u64, all.len() as u64)
    };
    let survive = (1..=k_max.min(*hosts))
        .map(|k| count(k, &|_| true))
        .collect();
    let max_acting_after_one = (0..*hosts)
        .map(|h| {
            acting_primaries(*hosts, pairs, &[h])
                .into_iter()
                .max()
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    let survive_distinct_blocks = block_size(layout).map(|size| {
        (2..=k_max.min(*hosts / size.max(1)))
            .map(|k| {
                count(k, &|s: &[usize]| {
                    let mut blocks: Vec<usize> = s.iter().map(|h| h / size).collect();
                    blocks.dedup();
                    blocks.len() == s.len()
                })
            })
            .collect()
    });
    Exact {
        layout: layout.clone(),
        hosts: *hosts,
        primaries_per_host: *primaries_per_host,
        survive,
        max_acting_after_one,
        survive_distinct_blocks,
    }
}

/// A layout's figures from simulation: per k, how many seeds kept every content serving, and
/// the most acting primaries seen on one host after one host failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Simulated {
    pub layout: String,
    pub hosts: usize,
    pub primaries_per_host: usize,
    /// (k, seeds where every content had a live acting primary, seeds).
    pub survive: Vec<(usize, u64, u64)>,
    /// The largest count of acting primaries on one host in any k = 1 seed, from the catalog.
    pub max_acting_after_one: Option<usize>,
}

/// The Wilson score interval for `s` successes in `n` trials at about 99% confidence
/// (z = 2.576); exact 0 or 1 stays inside its bound.
pub fn wilson_99(s: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 2.576_f64;
    let (n, p) = (n as f64, s as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n) + z * z / (4.0 * n * n)).sqrt() / denom;
    let lo = if s == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if s as f64 == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (lo, hi)
}

/// One claim of the mirroring document, with the figures that decide it.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    pub text: String,
    pub holds: bool,
    pub evidence: String,
}

fn find<'a>(exacts: &'a [Exact], prefix: &str) -> Option<&'a Exact> {
    exacts.iter().find(|e| e.layout.starts_with(prefix))
}

/// Judges the document's claims on the exact figures of one cluster shape (one entry per
/// layout, same hosts and primaries per host).
pub fn claims(exacts: &[Exact]) -> Vec<Claim> {
    let mut out = Vec::new();
    let (Some(group), Some(first)) = (find(exacts, "group"), exacts.first()) else {
        return out;
    };
    let n = first.primaries_per_host;
    group_claims(group, n, &mut out);
    if let Some(spread) = find(exacts, "spread") {
        spread_claims(exacts, spread, n, &mut out);
    }
    if let Some(block) = find(exacts, "block:") {
        block_claims(exacts, block, group, &mut out);
    }
    out
}

/// Group mirroring's claims: a host failure doubles one host's load; half the hosts may fail.
fn group_claims(group: &Exact, n: usize, out: &mut Vec<Claim>) {
    out.push(Claim {
        text:
            "Group mirroring: any host failure doubles the number of acting primaries on one host"
                .into(),
        holds: group.max_acting_after_one == 2 * n,
        evidence: format!(
            "{} primaries per host; after one host fails the busiest host runs {}",
            n, group.max_acting_after_one
        ),
    });
    if let Some((s, n)) = group.survive.get(group.hosts / 2 - 1) {
        out.push(Claim {
            text: "Group mirroring: up to half of the hosts can fail and the cluster keeps running, unless a primary and its mirror both fail".into(),
            holds: *s > 0,
            evidence: format!(
                "{s} of the {n} ways {} of {} hosts can fail leave every content a live instance",
                group.hosts / 2,
                group.hosts
            ),
        });
    }
}

/// Spread mirroring's claims: a failure adds 1/N; the likeliest to fail with two hosts down.
fn spread_claims(exacts: &[Exact], spread: &Exact, n: usize, out: &mut Vec<Claim>) {
    out.push(Claim {
        text: "Spread mirroring: a host failure increases the load by 1/N (N primaries per host)"
            .into(),
        holds: spread.max_acting_after_one == n + 1,
        evidence: format!(
            "busiest host after one failure: {} acting primaries = {} + {} (load x{:.3}; 1 + 1/N = {:.3})",
            spread.max_acting_after_one,
            n,
            spread.max_acting_after_one as isize - n as isize,
            spread.max_acting_after_one as f64 / n as f64,
            1.0 + 1.0 / n as f64
        ),
    });
    let ks: Vec<usize> = (2..=spread.survive.len()).collect();
    let worst_everywhere = ks.iter().all(|&k| {
        let a = spread.availability(k).unwrap_or(1.0);
        exacts.iter().all(|e| e.availability(k).unwrap_or(1.0) >= a)
    });
    let strictly = ks.iter().any(|&k| {
        let a = spread.availability(k).unwrap_or(1.0);
        exacts
            .iter()
            .filter(|e| e.layout != spread.layout)
            .all(|e| e.availability(k).unwrap_or(1.0) > a)
    });
    out.push(Claim {
        text: "Spread mirroring is the most likely to fail catastrophically when two or more hosts fail".into(),
        holds: worst_everywhere && strictly,
        evidence: ks
            .iter()
            .map(|&k| {
                let parts: Vec<String> = exacts
                    .iter()
                    .map(|e| format!("{} {:.3}", e.layout, e.availability(k).unwrap_or(f64::NAN)))
                    .collect();
                format!("P(available) with {k} hosts down: {}", parts.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; "),
    });
}

/// Block mirroring's claims: failures in distinct blocks survive; its impact lies between.
fn block_claims(exacts: &[Exact], block: &Exact, group: &Exact, out: &mut Vec<Claim>) {
    if let Some(distinct) = block
        .survive_distinct_blocks
        .as_ref()
        .filter(|d| !d.is_empty())
    {
        out.push(Claim {
            text: "Block mirroring survives multiple host failures as long as the failed hosts are in different blocks".into(),
            holds: distinct.iter().all(|(s, n)| s == n),
            evidence: distinct
                .iter()
                .enumerate()
                .map(|(i, (s, n))| format!("{} hosts in distinct blocks: {s} of {n} subsets survive", i + 2))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    if let Some(spread) = find(exacts, "spread") {
        let b = block.max_acting_after_one;
        out.push(Claim {
            text: "Block mirroring's single-failure impact is higher than spread's and lower than group's".into(),
            holds: spread.max_acting_after_one < b && b < group.max_acting_after_one,
            evidence: format!(
                "busiest host after one failure: spread {}, {} {}, group {}",
                spread.max_acting_after_one, block.layout, b, group.max_acting_after_one
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Group on 4 hosts x 2: host h's primaries mirrored on h + 1.
    fn group_4x2() -> Placement {
        Placement {
            layout: "group".into(),
            hosts: 4,
            primaries_per_host: 2,
            pairs: (0..8).map(|c| (c / 2, (c / 2 + 1) % 4)).collect(),
        }
    }

    #[test]
    fn subsets_are_all_k_combinations() {
        assert_eq!(subsets(4, 2).len(), 6);
        assert_eq!(subsets(8, 4).len(), 70);
        assert_eq!(subsets(3, 3), vec![vec![0, 1, 2]]);
        assert!(subsets(2, 3).is_empty());
    }

    #[test]
    fn group_on_four_hosts_survives_only_non_neighbouring_pairs() {
        let e = exact(&group_4x2(), 4);
        // Two failed hosts survive iff they are not neighbours on the ring: {0,2} and {1,3}.
        assert_eq!(e.survive, vec![(4, 4), (2, 6), (0, 4), (0, 1)]);
        assert_eq!(e.max_acting_after_one, 4);
        assert_eq!(
            acting_primaries(4, &group_4x2().pairs, &[0]),
            vec![0, 4, 2, 2]
        );
    }

    #[test]
    fn claims_are_judged_on_the_figures() {
        let spread = Placement {
            layout: "spread".into(),
            hosts: 4,
            primaries_per_host: 2,
            pairs: (0..8).map(|c| (c / 2, (c / 2 + 1 + c % 2) % 4)).collect(),
        };
        let exacts = [exact(&group_4x2(), 4), exact(&spread, 4)];
        let claims = claims(&exacts);
        let about = |words: &str| claims.iter().find(|c| c.text.contains(words)).unwrap();
        assert!(about("doubles").holds, "{claims:?}");
        assert!(about("1/N").holds, "spread: 3 = 2 + 1: {claims:?}");
        assert!(about("half of the hosts").holds, "{claims:?}");
        // On 4 hosts spread loses every pair of hosts but group survives two of six.
        assert_eq!(exacts[1].survive[1], (0, 6));
        assert!(about("catastrophically").holds, "{claims:?}");
        // With spread's load figure changed, the 1/N claim is refuted.
        let mut worse = exacts[1].clone();
        worse.max_acting_after_one = 4;
        assert!(
            !super::claims(&[exacts[0].clone(), worse])
                .iter()
                .find(|c| c.text.contains("1/N"))
                .unwrap()
                .holds
        );
    }

    #[test]
    fn wilson_interval_contains_the_observed_rate() {
        let (lo, hi) = wilson_99(50, 100);
        assert!(lo < 0.5 && 0.5 < hi && hi - lo < 0.3);
        assert_eq!(wilson_99(0, 100).0, 0.0);
        assert_eq!(wilson_99(100, 100).1, 1.0);
    }
}
