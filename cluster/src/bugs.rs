//! Planted bugs: deliberate defects, switchable at run time and off by default, that prove the
//! simulator's checkers can fire. Each is named; `hasim --bug NAME` turns one on.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlantedBugs {
    /// The primary acknowledges a commit once its own WAL is flushed, without waiting for the
    /// mirror to flush the commit record.
    pub ack_before_mirror_flush: bool,
}

impl PlantedBugs {
    /// Every planted bug's name.
    pub const NAMES: &'static [&'static str] = &["ack-before-mirror-flush"];

    pub fn none() -> PlantedBugs {
        PlantedBugs::default()
    }

    /// Turns on the bug called `name`; an unknown name is an error listing the known ones.
    pub fn enable(&mut self, name: &str) -> Result<(), String> {
        match name {
            "ack-before-mirror-flush" => self.ack_before_mirror_flush = true,
            other => {
                return Err(format!(
                    "unknown planted bug {other:?}; known: {}",
                    Self::NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }

    pub fn enabled(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.ack_before_mirror_flush {
            names.push("ack-before-mirror-flush");
        }
        names
    }
}
