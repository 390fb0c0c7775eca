//! **A power loss alone never damages a table block**, judged at each damaged block an
//! instance reports, against what the simulated disks were made to do.
//!
//! Seed (002, segment mirroring): a segment that lost power comes back by crash recovery and
//! resynchronizes from its log; nothing in the seed lets a crash cost a copy its data. Real
//! disks write an 8 KiB block back in 4 KiB pages, each on its own, so a block overwritten in
//! place and cut by a power loss comes back part new, part old. A storage engine survives that
//! (PostgreSQL with full-page images in its WAL, InnoDB and ours with a double-write area);
//! one that does not finds the block failing its checksum at the next start and fails itself.
//!
//! Exact rule: every block an instance reports failing its checksum ([`Fact::BlockDamaged`])
//! lies in a table file of its content that an injected media fault damaged on purpose (a
//! flipped bit, a misdirected block; the world notes them in
//! [`crate::world::damage::InjectedDamage`]). Ground truth, not self-report: the checker does
//! not ask the instance why the block is bad. Keyed by content and file, since a full recovery
//! can copy a damaged block to the content's other instance.
//!
//! Judging changes nothing: no facts, no log lines, no awaits, no randomness.

use std::collections::BTreeSet;
use std::sync::Mutex;

use cluster::model::catalog::Content;
use cluster::model::observe::Fact;

use super::Violation;
use crate::world::damage::InjectedDamage;

pub const NAME: &str = "blocks-survive-power-loss";

pub struct BlocksSurvivePowerLoss {
    injected: InjectedDamage,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Blocks already reported (an instance that fails at every start reports each time).
    judged: BTreeSet<(Content, String, u32)>,
    violations: Vec<Violation>,
}

impl BlocksSurvivePowerLoss {
    pub fn new(injected: InjectedDamage) -> BlocksSurvivePowerLoss {
        BlocksSurvivePowerLoss {
            injected,
            state: Mutex::new(State::default()),
        }
    }

    pub fn observe(&self, at_ms: u64, fact: &Fact) {
        let Fact::BlockDamaged {
            content,
            dbid,
            file,
            block,
        } = fact
        else {
            return;
        };
        if self.injected.explains(*content, file) {
            return;
        }
        let mut state = self.state.lock().unwrap();
        if state.judged.insert((*content, file.clone(), *block)) {
            state.violations.push(Violation::as_reported(
                NAME,
                at_ms,
                "block-damaged",
                format!(
                    "content {content}: dbid {dbid} found block {block} of {file} failing its checksum, and no injected fault damaged {file} on any instance of the content: a power loss tore the block and nothing restored it"
                ),
                format!("dbid {dbid} read a damaged block and failed itself"),
            ));
        }
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.state.lock().unwrap().violations.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::Judge;

    fn damaged(dbid: u16, file: &str, block: u32) -> Fact {
        Fact::BlockDamaged {
            content: 1,
            dbid,
            file: file.into(),
            block,
        }
    }

    #[test]
    fn a_damaged_block_no_fault_explains_is_a_violation_reported_once() {
        let checker = BlocksSurvivePowerLoss::new(InjectedDamage::default());
        checker.judge(10, &damaged(3, "base/16385", 2));
        checker.judge(20, &damaged(3, "base/16385", 2));
        let v = checker.violations();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].checker, NAME);
        assert_eq!(v[0].first_event.at_ms, 10);
        assert!(
            v[0].message.contains("block 2 of base/16385"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn damage_injected_into_the_file_on_either_instance_of_the_content_explains_it() {
        let injected = InjectedDamage::default();
        injected.note(1, "base/16385");
        let checker = BlocksSurvivePowerLoss::new(injected);
        // Found on the other instance of the content, as after a full recovery copied it.
        checker.judge(10, &damaged(7, "base/16385", 4));
        assert!(checker.violations().is_empty());
        checker.judge(11, &damaged(7, "base/16386", 0));
        assert_eq!(checker.violations().len(), 1);
    }
}
