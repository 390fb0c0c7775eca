//! The harness side of the cluster's observation hooks: records every fact with the simulated
//! time it was reported, for the checkers that reason about WAL positions.

use std::sync::{Arc, Mutex};

use cluster::observe::{Fact, Observe, Observer};

/// A fact and when it was reported (simulated milliseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub at_ms: u64,
    pub fact: Fact,
}

#[derive(Clone, Default)]
pub struct Recorder {
    facts: Arc<Mutex<Vec<Observed>>>,
}

impl Observer for Recorder {
    fn observe(&self, fact: Fact) {
        let at_ms = madsim::time::TimeHandle::try_current()
            .map(|t| t.elapsed().as_millis() as u64)
            .unwrap_or(0);
        self.facts.lock().unwrap().push(Observed { at_ms, fact });
    }
}

impl Recorder {
    pub fn hook(&self) -> Observe {
        Observe::new(Arc::new(self.clone()))
    }

    /// Every fact so far, in the order reported.
    pub fn facts(&self) -> Vec<Observed> {
        self.facts.lock().unwrap().clone()
    }
}
