//! The coordinator's side of its standby: the mirroring state it reports (the seed's
//! `gp_master_mirroring` view) and synchronous replication of the catalog.
//!
//! While the standby is Synchronized, a catalog change is acted on only once the standby has
//! flushed it ([`StandbyLink::wait_flushed`]): a distributed-commit record reaches the standby
//! before any segment hears COMMIT PREPARED, and a new epoch reaches it before any segment
//! sees it, so an activated standby never decides against what the segments were told. Once the
//! stream breaks the state is Not Synchronized and nothing waits (the seed: "the replication
//! process stops"); `init-standby -n` brings the standby back.

use std::sync::Mutex;

use crate::io::sync::Watch;
use crate::model::catalog::{Catalog, Dbid, Role, SegmentConfig, Status};
use crate::model::observe::{Fact, Observe};
use crate::protocol::replication::{Pair, Rules, Waiting};
use crate::wal::Lsn;
use crate::wire::standby::{MirroringStatus, SummaryState};

/// The configured standby in `catalog`: the content -1 row in the mirror role that is up.
pub fn configured_standby(catalog: &Catalog) -> Option<SegmentConfig> {
    catalog
        .segments
        .values()
        .find(|s| s.content == -1 && s.role == Role::Mirror && s.status == Status::Up)
        .cloned()
}

/// The rules of catalog mirroring (see [`crate::protocol::replication`]).
pub fn rules() -> Rules {
    Rules::catalog(super::STANDBY_WAL_TIMEOUT)
}

/// The walsender's state as the reporting side sees it. Pure: each transition takes the time.
/// Whether the standby is Synchronized is the replication machine's ([`Pair`]) under the
/// catalog's [`rules`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracker {
    /// The current stream and the standby's catch-up.
    pub pair: Pair,
    pub detail: &'static str,
    pub changed_at_ms: Option<u64>,
    pub error: Option<String>,
    pub standby_flushed: Lsn,
    /// Streams up to this generation belong to a standby removed from the catalog
    /// (`init-standby -r`): they end, and nothing they report counts.
    pub removed_through: u64,
}

impl Tracker {
    /// A stream starts (after a backup, if one was asked for); returns its generation.
    pub fn connected(&mut self, backup: bool) -> u64 {
        let generation = self.pair.connect(&rules());
        self.detail = if backup { "backup" } else { "catchup" };
        generation
    }

    /// The standby reports it has flushed up to `flushed`.
    pub fn feedback(&mut self, generation: u64, flushed: Lsn) {
        if self.pair.current(generation) {
            self.standby_flushed = self.standby_flushed.max(flushed);
        }
    }

    /// The walsender of `generation` has sent every flushed record, up to `sent`. The standby
    /// is Synchronized once it has flushed everything sent at the first such moment (a fixed
    /// target, so a standby one round trip behind a busy coordinator still gets there): from
    /// then on commits wait for it. Returns whether it just became Synchronized.
    pub fn caught_up(&mut self, generation: u64, sent: Lsn, now_ms: u64) -> bool {
        if !self
            .pair
            .idle(&rules(), generation, sent, self.standby_flushed)
        {
            return false;
        }
        self.detail = "streaming";
        self.changed_at_ms = Some(now_ms);
        self.error = None;
        true
    }

    /// The stream of `generation` ended. Returns whether that ended synchronization.
    pub fn disconnected(&mut self, generation: u64, error: String, now_ms: u64) -> bool {
        let was = self.synchronized();
        if !self.pair.disconnect(generation) {
            return false;
        }
        self.detail = "";
        if was || self.error.is_none() {
            self.changed_at_ms = Some(now_ms);
        }
        self.error = Some(error);
        was
    }

    /// The standby `dbid` was removed from the catalog: its stream, if any, is over and stale
    /// (it ends at the walsender's next look, [`Tracker::removed`]), nothing waits for it, and
    /// what it flushed counts for no later standby.
    pub fn remove(&mut self, dbid: Dbid, now_ms: u64) {
        self.pair = Pair {
            generation: self.pair.generation + 1,
            ..Pair::default()
        };
        self.removed_through = self.pair.generation;
        self.detail = "";
        self.changed_at_ms = Some(now_ms);
        self.error = Some(format!(
            "the standby dbid {dbid} was removed (init-standby -r); no standby has connected since"
        ));
        self.standby_flushed = 0;
    }

    /// Whether the stream of `generation` belongs to a removed standby.
    pub fn removed(&self, generation: u64) -> bool {
        generation <= self.removed_through
    }

    /// Whether the standby is Synchronized: the in-sync rule, with commits always waiting for
    /// a synchronized standby and none acknowledged without it past its catch-up target.
    pub fn synchronized(&self) -> bool {
        self.pair.in_sync(Waiting::Synchronous {
            on: true,
            receiver_flushed: self.standby_flushed,
            acked_alone_upto: 0,
        })
    }

    pub fn status(&self, catalog: &Catalog, ours: Lsn) -> MirroringStatus {
        let standby = configured_standby(catalog);
        let summary_state = match (&standby, self.synchronized()) {
            (None, _) => SummaryState::NotConfigured,
            (Some(_), true) => SummaryState::Synchronized,
            (Some(_), false) => SummaryState::NotSynchronized,
        };
        let error_message = match summary_state {
            SummaryState::NotSynchronized => Some(self.error.clone().unwrap_or_else(|| {
                "the standby has not connected since the coordinator started".into()
            })),
            _ => None,
        };
        MirroringStatus {
            summary_state,
            detail_state: if standby.is_some() {
                self.detail.to_string()
            } else {
                String::new()
            },
            log_time_ms: standby.as_ref().and(self.changed_at_ms),
            error_message,
            standby,
            coordinator_flushed_lsn: ours,
            standby_flushed_lsn: self.standby_flushed,
        }
    }
}

/// Where the standby stands, for the commit path: waiters need only these numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SyncPoint {
    synchronized: bool,
    flushed: Lsn,
    /// [`Tracker::removed_through`]: a removal ends every wait for the removed standby.
    removed_through: u64,
}

/// Shared by the coordinator's sessions, prober and walsender.
pub struct StandbyLink {
    tracker: Mutex<Tracker>,
    sync: Watch<SyncPoint>,
    observe: Observe,
    /// Until when a coordinator that started with a standby configured waits for it to come
    /// back ([`StandbyLink::expect_standby`]).
    expected_until: Mutex<Option<crate::io::runtime::Instant>>,
}

impl Default for StandbyLink {
    fn default() -> StandbyLink {
        StandbyLink::observed(Observe::default())
    }
}

impl StandbyLink {
    /// A link that reports each catalog position the coordinator acts on once the standby
    /// flushed it ([`Fact::StandbyFlushed`]).
    pub fn observed(observe: Observe) -> StandbyLink {
        StandbyLink {
            tracker: Mutex::default(),
            sync: Watch::new(SyncPoint::default()),
            observe,
            expected_until: Mutex::new(None),
        }
    }

    /// A coordinator that starts with a standby configured does not yet know whether the
    /// standby holds everything it committed before it stopped, and the standby may be
    /// activated on the strength of having been Synchronized then: for `grace` from now, a
    /// change waits for the standby to reconnect and flush it (as a restarted primary waits for
    /// its synchronous standby), and only then is acted on without it. Without this, a
    /// coordinator that restarted and changed the configuration before its standby was back,
    /// then stopped again, left an activation a catalog without that change.
    pub fn expect_standby(&self, grace: std::time::Duration) {
        *self.expected_until.lock().unwrap() = Some(crate::io::runtime::Instant::now() + grace);
    }

    /// How much of the start's grace is left (zero once the standby was Synchronized again).
    fn grace_left(&self) -> std::time::Duration {
        let until = *self.expected_until.lock().unwrap();
        until.map_or(std::time::Duration::ZERO, |until| {
            until.saturating_duration_since(crate::io::runtime::Instant::now())
        })
    }

    pub fn tracker(&self) -> Tracker {
        self.tracker.lock().unwrap().clone()
    }

    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Tracker) -> R) -> R {
        let mut tracker = self.tracker.lock().unwrap();
        let r = f(&mut tracker);
        let point = SyncPoint {
            synchronized: tracker.synchronized(),
            flushed: tracker.standby_flushed,
            removed_through: tracker.removed_through,
        };
        drop(tracker);
        if point.synchronized {
            *self.expected_until.lock().unwrap() = None;
        }
        if self.sync.get() != point {
            self.sync.set(point);
        }
        r
    }

    /// The standby `dbid` is removed from the catalog (`init-standby -r`): from now on no
    /// change waits for it, not even through the start's grace, and its stream ends. Called
    /// once the removal is committed and before it is flushed, so the removal itself does not
    /// wait for the standby it removes.
    pub(crate) fn remove(&self, dbid: Dbid) {
        let now = crate::io::runtime::unix_time_ms();
        *self.expected_until.lock().unwrap() = None;
        self.update(|t| t.remove(dbid, now));
    }

    /// Whether the stream of `generation` belongs to a removed standby, and should end.
    pub fn removed(&self, generation: u64) -> bool {
        self.tracker.lock().unwrap().removed(generation)
    }

    /// Returns once the standby has flushed the catalog WAL up to `lsn`, or at once if it is
    /// not Synchronized (a broken stream ends synchronization within the stream's timeout).
    pub async fn wait_flushed(&self, lsn: Lsn) {
        let start = self.sync.get();
        if !start.synchronized {
            let grace = self.grace_left();
            if grace.is_zero() {
                return;
            }
            let back = self.sync.wait_until(|p| {
                (p.synchronized && p.flushed >= lsn) || p.removed_through != start.removed_through
            });
            if let Ok(p) = crate::io::runtime::timeout(grace, back).await {
                if p.synchronized && p.flushed >= lsn {
                    self.observe.report(Fact::StandbyFlushed { lsn });
                }
            }
            return;
        }
        let point = self
            .sync
            .wait_until(|p| !p.synchronized || p.flushed >= lsn)
            .await;
        if point.synchronized {
            self.observe.report(Fact::StandbyFlushed { lsn });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_standby() -> Catalog {
        Catalog::new(vec![crate::model::catalog::tests::standby_row()])
    }

    #[test]
    fn not_configured_until_the_catalog_has_a_standby_row() {
        let t = Tracker::default();
        let s = t.status(&Catalog::new(vec![]), 10);
        assert_eq!(s.summary_state, SummaryState::NotConfigured);
        assert_eq!((s.log_time_ms, s.error_message), (None, None));
        let s = t.status(&with_standby(), 10);
        assert_eq!(s.summary_state, SummaryState::NotSynchronized);
        assert!(s.error_message.unwrap().contains("has not connected"));
    }

    #[test]
    fn synchronized_once_caught_up_and_not_after_the_stream_breaks() {
        let mut t = Tracker::default();
        let g = t.connected(true);
        t.feedback(g, 50);
        assert_eq!(t.status(&with_standby(), 100).detail_state, "backup");
        assert!(
            !t.caught_up(g + 1, 100, 5),
            "another stream's catch-up changes nothing"
        );
        assert!(
            !t.caught_up(g, 100, 5),
            "the standby has not flushed what was sent"
        );
        t.feedback(g, 90);
        assert!(!t.caught_up(g, 130, 6), "the target stays at 100");
        t.feedback(g, 100);
        // The standby flushed what was pending at the first catch-up; more came since.
        assert!(t.caught_up(g, 160, 7));
        assert!(!t.caught_up(g, 200, 8), "only the change is reported");
        let s = t.status(&with_standby(), 100);
        assert_eq!(s.summary_state, SummaryState::Synchronized);
        assert_eq!(
            (s.log_time_ms, s.detail_state.as_str()),
            (Some(7), "streaming")
        );
        // A stale stream's end changes nothing.
        assert!(!t.disconnected(g - 1, "old".into(), 8));
        assert!(t.disconnected(g, "standby stopped answering".into(), 9));
        let s = t.status(&with_standby(), 120);
        assert_eq!(s.summary_state, SummaryState::NotSynchronized);
        assert_eq!(s.log_time_ms, Some(9));
        assert_eq!(
            s.error_message.as_deref(),
            Some("standby stopped answering")
        );
    }

    /// A removed standby (`init-standby -r`): a change waiting for its flush goes on, during
    /// the start's grace too, its stream is over, and what that stream still reports counts
    /// for nothing; a later standby's stream starts afresh.
    #[tokio::test]
    async fn a_removed_standby_is_waited_for_and_counted_no_more() {
        use crate::io::runtime::{self, timeout};
        use std::sync::Arc;
        use std::time::Duration;
        let link = Arc::new(StandbyLink::default());
        let g = link.update(|t| t.connected(false));
        link.update(|t| t.feedback(g, 100));
        assert!(link.update(|t| t.caught_up(g, 100, 1)), "synchronized");
        let wait = |lsn| {
            let link = link.clone();
            runtime::spawn(async move { link.wait_flushed(lsn).await })
        };
        let waiter = wait(200);
        runtime::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "waits for the synchronized standby");
        link.remove(9);
        timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the removal ends the wait")
            .unwrap();
        assert!(link.removed(g), "its stream ends");
        link.update(|t| t.feedback(g, 500));
        let t = link.tracker();
        assert_eq!((t.standby_flushed, t.synchronized()), (0, false));
        let s = t.status(&with_standby(), 600);
        assert!(
            s.error_message.unwrap().contains("was removed"),
            "a later standby's status says why it is not synchronized yet"
        );
        assert_eq!(
            t.status(&Catalog::new(vec![]), 600).summary_state,
            SummaryState::NotConfigured
        );

        // A coordinator that started with the standby configured waits for it no more either.
        link.expect_standby(Duration::from_secs(3));
        let waiter = wait(300);
        runtime::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "waits out the grace");
        link.remove(9);
        timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the removal ends the grace's wait")
            .unwrap();
        let began = crate::io::runtime::Instant::now();
        link.wait_flushed(400).await;
        assert!(
            began.elapsed() < Duration::from_millis(100),
            "no grace left"
        );

        let next = link.update(|t| t.connected(true));
        assert!(
            !link.removed(next),
            "a later stream is not the removed one's"
        );
    }
}
