//! Every planted bug is caught by the simulator within its seed budget, by the checker named in
//! the catalogue, and the printed replay command reproduces the very same violation.

use scenarios::{hunt, CATALOGUE, SCRIPTED};
use sim::config::RunConfig;
use sim::runner::{run_seed, Verdict};

#[test]
fn every_planted_bug_is_caught_and_its_replay_reproduces_it() {
    for bug in CATALOGUE {
        let found = hunt(bug, 0).unwrap_or_else(|| {
            panic!(
                "planted bug {} not caught within {} seeds",
                bug.name, bug.seed_budget
            )
        });
        assert!(
            found.violations.iter().any(|v| v.checker == bug.caught_by),
            "{}: caught by {:?}",
            bug.name,
            found.violations
        );
        assert!(
            found.replay.contains(&format!("--seed {}", found.seed))
                && found.replay.contains(bug.name),
            "{}",
            found.replay
        );

        let mut cfg = RunConfig::by_name(bug.scenario).unwrap();
        cfg.bugs.enable(bug.name).unwrap();
        let (again, _) = run_seed(found.seed, &cfg);
        assert_eq!(again.verdict, Verdict::Safety);
        assert_eq!(
            again.trace_hash, found.trace_hash,
            "replay of seed {} diverged",
            found.seed
        );
        assert_eq!(again.violations[0].message, found.violations[0].message);
    }
}

#[test]
fn the_catalogue_names_every_planted_bug_of_the_cluster() {
    let planted: Vec<&str> = cluster::bugs::CATALOGUE.iter().map(|(n, _)| *n).collect();
    for name in &planted {
        assert!(
            CATALOGUE.iter().any(|b| b.name == *name) || SCRIPTED.iter().any(|b| b.name == *name),
            "planted bug {name} has neither a hunt nor a scripted scenario"
        );
    }
    for name in CATALOGUE
        .iter()
        .map(|b| b.name)
        .chain(SCRIPTED.iter().map(|b| b.name))
    {
        assert!(planted.contains(&name), "{name} is not a planted bug");
    }
}

#[test]
fn with_no_bug_planted_the_same_seeds_pass() {
    let cfg = RunConfig::pair();
    for seed in 0..8 {
        let (result, _) = run_seed(seed, &cfg);
        assert_eq!(
            result.verdict,
            Verdict::Ok,
            "seed {seed}: {:?} {:?}",
            result.violations,
            result.error
        );
    }
}
