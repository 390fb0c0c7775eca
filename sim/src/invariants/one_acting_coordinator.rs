//! **One acting coordinator: once an instance has obeyed the coordinator an activation put in
//! charge, it never obeys the coordinator that activation deposed.**
//!
//! Seed 000 ("Failing Over to a Standby Master"): after `gpactivatestandby` the standby *is* the
//! master, and the old master must not come back beside it; seed 002: "segments refuse work
//! stamped with an older epoch". A deposed coordinator may start again (its host reboots, an
//! operator restarts the cluster from stale files) and send requests; every instance that has
//! obeyed its successor must refuse them, or two coordinators act side by side (two catalogs,
//! two primaries for one content).
//!
//! Ground truth, not the cluster's own account: who was deposed when comes from the simulated
//! world (every activation the operator carried out, with the hosts' addresses); what each
//! instance obeyed from whom comes from its reports (each instance reports the first fenced
//! request — a probe, a promotion, a transaction's begin — it obeys from a coordinator address
//! other than the last). A violation: an instance obeys the deposed coordinator after it obeyed
//! the successor, while the deposed one is not acting again.
//!
//! And the fence's durability: an instance that obeyed a coordinator generation never starts
//! again (on the same data directory, not one made anew) following an older one; forgetting it
//! would let the deposed coordinator be obeyed after the next restart.

use std::collections::BTreeMap;

use super::Violation;
use crate::observer::Observed;
use crate::world::coordinator_pair::Succession;
use cluster::model::catalog::{epoch, Content, Dbid};
use cluster::model::observe::Fact;

pub const NAME: &str = "one-acting-coordinator";

pub fn check(facts: &[Observed], successions: &[Succession]) -> Vec<Violation> {
    let mut violations = Vec::new();
    // Per instance: when it last obeyed each coordinator address.
    let mut obeyed: BTreeMap<Dbid, BTreeMap<&str, u64>> = BTreeMap::new();
    // Per instance: the newest generation it obeyed since its directory was last made.
    let mut newest: BTreeMap<Dbid, u64> = BTreeMap::new();
    for o in facts {
        if let Fact::Started {
            content,
            dbid,
            followed,
            fresh,
            ..
        } = o.fact
        {
            if let Some(message) = restarted(&mut newest, content, dbid, followed, fresh) {
                violations.push(violation(o.at_ms, message));
            }
            continue;
        }
        let Fact::Obeyed {
            content,
            dbid,
            epoch: e,
            ref from,
        } = o.fact
        else {
            continue;
        };
        let top = newest.entry(dbid).or_insert(e);
        *top = (*top).max(e);
        let seen = obeyed.entry(dbid).or_default();
        for (k, s) in successions.iter().enumerate() {
            if *from != s.deposed || s.at_ms > o.at_ms {
                continue;
            }
            // Acting again by a later activation begun before this request (it tells every
            // instance its new epoch before the operator sees it through): obeying it is right.
            let back = successions[k + 1..]
                .iter()
                .any(|later| later.successor == s.deposed && later.began_ms <= o.at_ms);
            // Obeyed since an earlier activation last deposed the successor's address, if one
            // did: before that the address served an older generation, and an instance that
            // slept through the later activation has no reason to refuse the one it deposed.
            let since = successions[..k]
                .iter()
                .filter(|earlier| earlier.deposed == s.successor)
                .map(|earlier| earlier.at_ms)
                .max();
            let followed_successor = seen
                .get(s.successor.as_str())
                .is_some_and(|last| since.is_none_or(|t| *last > t));
            if !back && followed_successor {
                let message = format!(
                    "content {content}: dbid {dbid} obeyed the coordinator at {from} (epoch {}) at {} ms, after that coordinator was deposed by the activation of the one at {} ({} ms), which dbid {dbid} had obeyed: two coordinators acted side by side",
                    epoch::describe(e),
                    o.at_ms,
                    s.successor,
                    s.at_ms
                );
                violations.push(violation(o.at_ms, message));
            }
        }
        seen.insert(from.as_str(), o.at_ms);
        if violations.len() >= 10 {
            break;
        }
    }
    violations
}

/// Instance `dbid` started following epoch `followed`: its directory was made anew (`fresh`:
/// it starts over), or it must follow no older a generation than it had obeyed.
fn restarted(
    newest: &mut BTreeMap<Dbid, u64>,
    content: Content,
    dbid: Dbid,
    followed: u64,
    fresh: bool,
) -> Option<String> {
    if fresh {
        newest.remove(&dbid);
        return None;
    }
    let obeyed = *newest.get(&dbid)?;
    (epoch::generation(followed) < epoch::generation(obeyed)).then(|| {
        format!(
            "content {content}: dbid {dbid} started again following epoch {} (generation {}) though it had obeyed epoch {} (generation {}): it forgot the coordinator generation it followed, and would obey a deposed coordinator",
            epoch::describe(followed),
            epoch::generation(followed),
            epoch::describe(obeyed),
            epoch::generation(obeyed)
        )
    })
}

fn violation(at_ms: u64, message: String) -> Violation {
    Violation::as_reported(NAME, at_ms, "obeyed", message.clone(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obeyed(at_ms: u64, dbid: Dbid, from: &str) -> Observed {
        Observed {
            at_ms,
            fact: Fact::Obeyed {
                content: 0,
                dbid,
                epoch: 7,
                from: from.into(),
            },
        }
    }

    fn activation(at_ms: u64, deposed: &str, successor: &str) -> Succession {
        Succession {
            began_ms: at_ms - 5,
            at_ms,
            deposed: deposed.into(),
            successor: successor.into(),
        }
    }

    fn started(at_ms: u64, dbid: Dbid, followed: u64, fresh: bool) -> Observed {
        Observed {
            at_ms,
            fact: Fact::Started {
                content: 0,
                dbid,
                followed,
                fresh,
                primary_at: None,
            },
        }
    }

    #[test]
    fn an_instance_never_forgets_across_a_restart_the_generation_it_obeyed() {
        let next = epoch::first_of_next_generation(9);
        let mut obeyed_next = obeyed(20, 2, "10.0.2.1");
        obeyed_next.fact = Fact::Obeyed {
            content: 0,
            dbid: 2,
            epoch: next,
            from: "10.0.2.1".into(),
        };
        // Restarted on its own directory, following generation 0 again: forgotten.
        let forgot = vec![
            started(0, 2, 0, true),
            obeyed_next.clone(),
            started(30, 2, 0, false),
        ];
        let v = check(&forgot, &[]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("forgot"), "{}", v[0].message);
        // Remembered, or a directory made anew (a full copy): no violation.
        assert!(check(&[obeyed_next.clone(), started(30, 2, next, false)], &[]).is_empty());
        assert!(check(&[obeyed_next, started(30, 2, 0, true)], &[]).is_empty());
    }

    #[test]
    fn an_instance_that_obeyed_the_successor_never_obeys_the_deposed_coordinator() {
        let (mdw, smdw) = ("10.0.0.1", "10.0.2.1");
        let swap = [activation(100, mdw, smdw)];
        // dbid 2 obeys mdw, then the activated smdw, then mdw again.
        let facts = vec![obeyed(10, 2, mdw), obeyed(90, 2, smdw), obeyed(150, 2, mdw)];
        let v = check(&facts, &swap);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("dbid 2") && v[0].message.contains(mdw));
        assert_eq!(v[0].first_event.at_ms, 150);
        // An instance that never heard from the successor yet: no violation.
        assert!(check(&[obeyed(10, 3, mdw), obeyed(150, 3, mdw)], &swap).is_empty());
        // mdw acting again after a second activation (begun at 150, before it was seen
        // through): obeying it is right.
        let back = [activation(100, mdw, smdw), activation(155, smdw, mdw)];
        assert!(check(&facts, &back).is_empty());
    }

    /// Standard seed 407: dbid 6 obeyed mdw (generation 0), then smdw activated in its place;
    /// its host was down while mdw was activated back (generation 2), and the deposed smdw,
    /// restarting, probed it before it learned it was deposed. dbid 6 never obeyed generation 2:
    /// nothing told it to refuse generation 1.
    #[test]
    fn obeying_the_successors_address_before_its_activation_is_no_promise() {
        let (mdw, smdw) = ("10.0.0.1", "10.0.2.1");
        let both = [activation(100, mdw, smdw), activation(300, smdw, mdw)];
        let slept_through = vec![
            obeyed(10, 6, mdw),
            obeyed(90, 6, smdw),
            obeyed(480, 6, smdw),
        ];
        assert!(check(&slept_through, &both).is_empty());
        // Once it obeyed generation 2 at mdw, it must refuse smdw.
        let mut told = slept_through;
        told.insert(2, obeyed(400, 6, mdw));
        let v = check(&told, &both);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].first_event.at_ms, 480);
    }
}
