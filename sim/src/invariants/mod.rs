//! Cluster-wide properties, one file per property. Each states the property and the sentence of
//! the seed documents it comes from, and returns typed violations carrying their evidence.
//! [`model`] holds the per-row model of the history they share.

pub mod aborted_stays_aborted;
pub mod availability;
pub mod blocks_survive_power_loss;
pub mod configuration_history;
pub mod converged;
pub mod durable_claims;
pub mod failover_policy;
pub mod identical_replicas;
pub mod latest_value;
pub mod linear_history;
pub mod model;
pub mod no_lost_commits;
pub mod obeyed_epochs;
pub mod one_acting_coordinator;
pub mod promoted_in_sync;
pub mod standby_catalog;
pub mod strangers_change_nothing;
pub mod wal_before_data;
pub mod wal_positions;

use serde::Serialize;

use crate::workload::history::Event;

/// A broken property, with the first event that shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub checker: &'static str,
    pub message: String,
    pub first_event: Event,
}

impl Violation {
    /// A violation found as a fact was reported (no client transaction is behind it): at
    /// `at_ms`, of event kind `kind`, with `detail` for the event.
    pub fn as_reported(
        checker: &'static str,
        at_ms: u64,
        kind: &str,
        message: String,
        detail: String,
    ) -> Violation {
        Violation {
            checker,
            message,
            first_event: Event {
                at_ms,
                client: 0,
                txn: 0,
                kind: kind.into(),
                detail,
            },
        }
    }
}

/// A continuous checker (an [`crate::observer::Judge`], fed facts as they are reported): what
/// it found so far.
pub trait Judged {
    fn violations(&self) -> Vec<Violation>;
}

/// A continuous checker whose inherent `observe` and `violations` are its judging and its
/// findings.
macro_rules! continuous {
    ($checker:ty) => {
        impl crate::observer::Judge for $checker {
            fn judge(&self, at_ms: u64, fact: &cluster::model::observe::Fact) {
                self.observe(at_ms, fact);
            }
        }

        impl crate::invariants::Judged for $checker {
            fn violations(&self) -> Vec<crate::invariants::Violation> {
                <$checker>::violations(self)
            }
        }
    };
}

continuous!(blocks_survive_power_loss::BlocksSurvivePowerLoss);
continuous!(durable_claims::DurableClaims);
continuous!(failover_policy::FailoverPolicy);
continuous!(obeyed_epochs::ObeyedEpochs);
continuous!(wal_positions::WalPositions);
