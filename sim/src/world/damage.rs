//! Which table files the world's faults damaged on purpose: a flipped bit, a misdirected
//! block. The world notes each as it injects it; the checker that a power loss alone never
//! damages a block reads them, to tell injected damage from damage nothing explains.
//!
//! Kept per content and table file (a path in the data directory, e.g. `base/16385`), not per
//! instance: a full recovery can copy a damaged block from one instance of a content to the
//! other, and one block of a file may be copied over another.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use cluster::model::catalog::Content;

/// The table files the world damaged on purpose; shared, cheap to clone.
#[derive(Clone, Default)]
pub struct InjectedDamage(Arc<Mutex<BTreeSet<(Content, String)>>>);

impl InjectedDamage {
    /// A fault damaged `file` (relative to the data directory) of an instance of `content`.
    pub fn note(&self, content: Content, file: &str) {
        self.0.lock().unwrap().insert((content, file.to_string()));
    }

    /// Whether an injected fault damaged `file` of some instance of `content`.
    pub fn explains(&self, content: Content, file: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .contains(&(content, file.to_string()))
    }
}
