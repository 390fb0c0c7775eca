//! The layout section of the report: exact availability and load skew of group, spread and
//! block mirroring for the cluster shapes the caller places (the simulator: from the cluster's own
//! layout code), set
//! beside the simulator's figures when it measured them, and the document's claims judged.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::layouts::{self, Claim, Exact, Placement, Simulated};
use crate::tables::Table;

/// A cluster shape and the layouts compared on it, each as its placement: the report's input,
/// computed by the caller from the cluster's own layout code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub hosts: usize,
    pub primaries_per_host: usize,
    pub placements: Vec<Placement>,
}

/// Failed hosts considered: 1..=K_MAX.
pub const K_MAX: usize = 4;

/// One shape's results: exact and simulated side by side, and the claims.
pub struct ShapeReport {
    pub shape: Shape,
    pub exact: Vec<Exact>,
    pub table: Table,
    pub claims: Vec<Claim>,
    /// Every simulated figure lies within its interval around the exact one (None: no
    /// simulation given for this shape).
    pub simulation_agrees: Option<bool>,
}

fn sim_for<'a>(sims: &'a [Simulated], e: &Exact) -> Option<&'a Simulated> {
    sims.iter().find(|s| {
        s.layout == e.layout && s.hosts == e.hosts && s.primaries_per_host == e.primaries_per_host
    })
}

pub fn shape_report(shape: &Shape, sims: &[Simulated]) -> Result<ShapeReport> {
    let exact: Vec<Exact> = shape
        .placements
        .iter()
        .map(|p| layouts::exact(p, K_MAX))
        .collect();
    let mut table = Table {
        title: format!(
            "{} hosts x {} primaries per host",
            shape.hosts, shape.primaries_per_host
        ),
        note: "P(available): the share of k-host failures after which every content still has a live instance, exactly (every k-subset of hosts) and simulated (random k hosts crash at once in the simulated cluster; the prober acts; the catalog must show a live acting primary for every content). The interval is the Wilson 99% interval of the simulated share. Busiest host: acting primaries on the most loaded host after one host fails.".into(),
        columns: [
            "layout", "failed hosts", "exact P(available)", "exact subsets", "simulated", "99% interval", "agrees",
        ]
        .iter()
        .map(|c| c.to_string())
        .collect(),
        rows: Vec::new(),
    };
    let mut seen = Agreement {
        any_sim: false,
        all: true,
    };
    for e in &exact {
        layout_rows(e, sim_for(sims, e), &mut table.rows, &mut seen);
    }
    let claims = layouts::claims(&exact);
    Ok(ShapeReport {
        shape: shape.clone(),
        exact,
        table,
        claims,
        simulation_agrees: seen.any_sim.then_some(seen.all),
    })
}

/// Whether any simulated figure was found, and whether all of them agreed with the exact ones.
struct Agreement {
    any_sim: bool,
    all: bool,
}

/// One layout's rows: per number of failed hosts, the exact and the simulated share of
/// survivals; then the busiest host after one failure.
fn layout_rows(
    e: &Exact,
    sim: Option<&Simulated>,
    rows: &mut Vec<Vec<String>>,
    seen: &mut Agreement,
) {
    for (i, (s, n)) in e.survive.iter().enumerate() {
        let k = i + 1;
        let p = *s as f64 / *n as f64;
        let simulated = sim.and_then(|m| m.survive.iter().find(|(kk, _, _)| *kk == k));
        let (sim_cell, interval, agrees) = match simulated {
            Some((_, ss, nn)) => {
                seen.any_sim = true;
                let (lo, hi) = layouts::wilson_99(*ss, *nn);
                let ok = lo <= p && p <= hi;
                seen.all &= ok;
                (
                    format!("{:.3} ({ss}/{nn})", *ss as f64 / *nn as f64),
                    format!("[{lo:.3}, {hi:.3}]"),
                    if ok { "yes" } else { "NO" }.to_string(),
                )
            }
            None => ("-".into(), "-".into(), "-".into()),
        };
        rows.push(vec![
            e.layout.clone(),
            k.to_string(),
            format!("{p:.3}"),
            format!("{s}/{n}"),
            sim_cell,
            interval,
            agrees,
        ]);
    }
    let sim_max = sim.and_then(|m| m.max_acting_after_one);
    let agrees = match sim_max {
        Some(m) => {
            seen.any_sim = true;
            seen.all &= m == e.max_acting_after_one;
            if m == e.max_acting_after_one {
                "yes"
            } else {
                "NO"
            }
        }
        None => "-",
    };
    rows.push(vec![
        e.layout.clone(),
        "busiest host after 1".into(),
        format!(
            "{} acting primaries (x{:.2})",
            e.max_acting_after_one,
            e.max_acting_after_one as f64 / e.primaries_per_host as f64
        ),
        "-".into(),
        sim_max.map_or("-".into(), |m| m.to_string()),
        "exact match".into(),
        agrees.into(),
    ]);
}

/// The claims of every shape as one table.
pub fn claims_table(reports: &[ShapeReport]) -> Table {
    let mut t = Table {
        title: "The mirroring document's claims".into(),
        note: "Each claim of the segment mirroring configurations document, judged on the exact figures of each cluster shape; the last column says whether the simulated figures of that shape (above) agree with the exact ones.".into(),
        columns: ["shape", "claim", "holds", "figures", "simulation"]
            .iter()
            .map(|c| c.to_string())
            .collect(),
        rows: Vec::new(),
    };
    for r in reports {
        for c in &r.claims {
            t.rows.push(vec![
                format!("{}x{}", r.shape.hosts, r.shape.primaries_per_host),
                c.text.clone(),
                if c.holds { "holds" } else { "does not hold" }.into(),
                c.evidence.clone(),
                match r.simulation_agrees {
                    Some(true) => "agrees with the exact figures",
                    Some(false) => "DISAGREES with the exact figures",
                    None => "not simulated",
                }
                .into(),
            ]);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulator's standard shapes, placed (`sim` checks that this file is what it places).
    fn standard_shapes() -> Vec<Shape> {
        serde_json::from_str(include_str!("../tests/data/shapes.json")).unwrap()
    }

    #[test]
    fn the_documents_example_shape() {
        let r = shape_report(&standard_shapes()[0], &[]).unwrap();
        let by = |name: &str| r.exact.iter().find(|e| e.layout == name).unwrap();
        // 8 hosts x 4: group doubles (8), spread adds one (5), blocks of 4 add two (6).
        assert_eq!(by("group").max_acting_after_one, 8);
        assert_eq!(by("spread").max_acting_after_one, 5);
        assert_eq!(by("block:4").max_acting_after_one, 6);
        // Two failed hosts: group loses the 8 pairs of ring neighbours; spread mirrors each
        // host on the next 4, so every pair of 8 hosts is within 4 steps one way or the other
        // and every pair loses a content; blocks lose the pairs inside a block (2 * 6 = 12).
        assert_eq!(by("group").survive[1], (20, 28));
        assert_eq!(by("spread").survive[1], (0, 28));
        assert_eq!(by("block:4").survive[1], (16, 28));
        assert_eq!(by("block:4").survive_distinct_blocks, Some(vec![(16, 16)]));
        assert!(r.simulation_agrees.is_none());
        assert!(r.claims.iter().all(|c| c.holds), "{:?}", r.claims);
    }

    #[test]
    fn a_simulation_outside_the_interval_disagrees() {
        let shape = &standard_shapes()[1];
        let sims = vec![Simulated {
            layout: "group".into(),
            hosts: 4,
            primaries_per_host: 2,
            // Exact for two failed hosts is 2/6; 90 of 100 is far off.
            survive: vec![(1, 100, 100), (2, 90, 100)],
            max_acting_after_one: Some(4),
        }];
        let r = shape_report(shape, &sims).unwrap();
        assert_eq!(r.simulation_agrees, Some(false));
        let sims = vec![Simulated {
            survive: vec![(1, 100, 100), (2, 33, 100)],
            ..sims[0].clone()
        }];
        assert_eq!(
            shape_report(shape, &sims).unwrap().simulation_agrees,
            Some(true)
        );
    }

    #[test]
    fn layout_tables() {
        let reports: Vec<_> = standard_shapes()
            .iter()
            .map(|s| shape_report(s, &[]).unwrap())
            .collect();
        let mut md: Vec<String> = reports.iter().map(|r| r.table.markdown()).collect();
        md.push(claims_table(&reports).markdown());
        insta::assert_snapshot!(md.join("\n"));
    }
}
