//! WAL replication as one machine for both of its uses: a segment primary streaming to its
//! mirror, and the coordinator streaming the catalog to its standby.
//!
//! Sender side. [`Outgoing`] is one stream's position: given the WAL the sender may ship (its
//! flushed end), what to send next, or that it is idle and waits for more (sending a keepalive
//! when none comes). [`Pair`] is what the sender knows of its receiver across streams: which
//! stream is current, whether the receiver has caught up, and the one in-sync rule
//! ([`Pair::in_sync`]). [`Rules`] holds the timing (keepalive every third of `wal_timeout`, give
//! up on a receiver silent for `wal_timeout`) and the two details in which the segment and the
//! catalog worlds differ, as named parameters:
//!
//! - [`CatchUp`]: a mirror is judged on each feedback against the primary's flushed WAL at that
//!   moment; a standby is judged when the sender has run out of WAL to send, against a target
//!   fixed the first time it did (so a standby one round trip behind a busy coordinator still
//!   gets there).
//! - [`Reconnect`]: a new mirror stream starts over, not caught up; a new catalog stream keeps
//!   the standby Synchronized until the stream it replaced is reported ended.
//!
//! Receiver side, as far as the mirror and the standby share it: both give up a sender silent
//! for [`Rules::give_up_after`] (a sender idles no longer than [`Rules::keepalive_every`]) and
//! start again on a new stream; what each writes is its own (a mirror's segment WAL, a
//! standby's base backup and catalog WAL).

use std::time::Duration;

use crate::wal::Lsn;

/// When a receiver counts as caught up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// On each feedback: once it has flushed the sender's flushed WAL at that moment (segment
    /// mirroring).
    OnFeedback,
    /// When the sender has sent everything it may: once the receiver has flushed what was sent
    /// the first such time, a target fixed until it is met (catalog mirroring).
    WhenIdle,
}

/// What a new stream does to the catch-up of the stream it replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconnect {
    /// The receiver is caught up again only once the new stream has caught it up (segment
    /// mirroring).
    StartsOver,
    /// The catch-up stands until the old stream is reported ended (catalog mirroring).
    KeepsCatchUp,
}

/// The parameters of one world's replication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub catch_up: CatchUp,
    pub reconnect: Reconnect,
    /// A receiver silent this long is given up; the sender sends a keepalive at least every
    /// third of it.
    pub wal_timeout: Duration,
}

impl Rules {
    /// A segment primary streaming to its mirror.
    pub fn segment(wal_timeout: Duration) -> Rules {
        Rules {
            catch_up: CatchUp::OnFeedback,
            reconnect: Reconnect::StartsOver,
            wal_timeout,
        }
    }

    /// The coordinator streaming the catalog to its standby.
    pub fn catalog(wal_timeout: Duration) -> Rules {
        Rules {
            catch_up: CatchUp::WhenIdle,
            reconnect: Reconnect::KeepsCatchUp,
            wal_timeout,
        }
    }

    /// How long an idle sender waits for more WAL before it sends a keepalive.
    pub fn keepalive_every(&self) -> Duration {
        self.wal_timeout / 3
    }

    /// How long the sender waits for the receiver's next feedback before giving it up.
    pub fn give_up_after(&self) -> Duration {
        self.wal_timeout
    }
}

/// The sender's next move on one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Send WAL from `from`; `available` bytes may be shipped.
    Send { from: Lsn, available: u64 },
    /// Everything that may be shipped is sent: wait for more, and send a keepalive if none
    /// comes within [`Rules::keepalive_every`].
    Idle,
}

/// One stream's sending position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Everything before this was sent.
    pub sent: Lsn,
}

impl Outgoing {
    /// A stream that starts at `from` (what the receiver asked for, or the end of its backup).
    pub fn starting_at(from: Lsn) -> Outgoing {
        Outgoing { sent: from }
    }

    /// What to do, when the sender may ship WAL up to `limit` (its flushed end).
    pub fn next(&self, limit: Lsn) -> Next {
        if self.sent < limit {
            Next::Send {
                from: self.sent,
                available: limit - self.sent,
            }
        } else {
            Next::Idle
        }
    }

    /// `len` bytes were read for sending; returns where they start.
    pub fn sending(&mut self, len: usize) -> Lsn {
        let start = self.sent;
        self.sent += len as Lsn;
        start
    }

    /// Whether an idle stream has more to send now that the limit is `limit`.
    pub fn more_than_sent(&self, limit: Lsn) -> bool {
        limit > self.sent
    }
}

/// Synchronous waiting, as far as the in-sync rule needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// Asynchronous replication: nothing waits for the receiver, which accepts the loss.
    Never,
    /// Commits wait for the receiver while `on`; `acked_alone_upto` is how far the sender
    /// acknowledged commits without it while waiting was off; `receiver_flushed` how far the
    /// receiver has flushed.
    Synchronous {
        on: bool,
        receiver_flushed: Lsn,
        acked_alone_upto: Lsn,
    },
}

/// What the sender knows of its receiver across streams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pair {
    /// Bumped at each new stream, so a stale stream's events change nothing.
    pub generation: u64,
    /// A stream is connected.
    pub connected: bool,
    /// The receiver has caught up with the sender (see [`CatchUp`]).
    pub caught_up: bool,
    /// Under [`CatchUp::WhenIdle`]: what was sent the first time the sender ran out of WAL.
    pub catchup_target: Option<Lsn>,
}

impl Pair {
    /// A new stream starts; returns its generation.
    pub fn connect(&mut self, rules: &Rules) -> u64 {
        self.generation += 1;
        self.connected = true;
        self.catchup_target = None;
        if rules.reconnect == Reconnect::StartsOver {
            self.caught_up = false;
        }
        self.generation
    }

    /// Whether `generation` is the current stream.
    pub fn current(&self, generation: u64) -> bool {
        generation == self.generation
    }

    /// The receiver of `generation` reports it has flushed `reported`; the sender has flushed
    /// `sender_flushed`. Returns whether the receiver just caught up.
    pub fn feedback(
        &mut self,
        rules: &Rules,
        generation: u64,
        reported: Lsn,
        sender_flushed: Lsn,
    ) -> bool {
        if rules.catch_up != CatchUp::OnFeedback || !self.current(generation) || self.caught_up {
            return false;
        }
        self.caught_up = reported >= sender_flushed;
        self.caught_up
    }

    /// The sender of `generation` has sent everything it may, up to `sent`; the receiver has
    /// flushed `receiver_flushed`. Returns whether the receiver just caught up.
    pub fn idle(
        &mut self,
        rules: &Rules,
        generation: u64,
        sent: Lsn,
        receiver_flushed: Lsn,
    ) -> bool {
        if rules.catch_up != CatchUp::WhenIdle || !self.current(generation) || self.caught_up {
            return false;
        }
        let target = *self.catchup_target.get_or_insert(sent);
        if receiver_flushed < target {
            return false;
        }
        self.catchup_target = None;
        self.caught_up = true;
        true
    }

    /// The receiver is starting a recovery (a rewind or a full copy) from this sender: its
    /// WAL is about to be cut or wiped, so whatever its current stream reported no longer
    /// holds. That stream, if any, is over, and anything it still reports is stale.
    pub fn receiver_recovering(&mut self) {
        self.generation += 1;
        self.connected = false;
        self.caught_up = false;
        self.catchup_target = None;
    }

    /// The stream of `generation` ended. Returns whether it was the current one (and so the
    /// receiver is neither connected nor caught up any more).
    pub fn disconnect(&mut self, generation: u64) -> bool {
        if !self.current(generation) {
            return false;
        }
        self.connected = false;
        self.caught_up = false;
        true
    }

    /// The one in-sync rule: the receiver holds every commit the sender acknowledged. It has
    /// caught up and, where commits wait for it, waiting is on and it has flushed whatever was
    /// acknowledged without it while waiting was off.
    pub fn in_sync(&self, waiting: Waiting) -> bool {
        if !self.caught_up {
            return false;
        }
        match waiting {
            Waiting::Never => true,
            Waiting::Synchronous {
                on,
                receiver_flushed,
                acked_alone_upto,
            } => on && receiver_flushed >= acked_alone_upto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment() -> Rules {
        Rules::segment(Duration::from_secs(9))
    }

    fn catalog() -> Rules {
        Rules::catalog(Duration::from_secs(3))
    }

    const SYNC_ON: Waiting = Waiting::Synchronous {
        on: true,
        receiver_flushed: 0,
        acked_alone_upto: 0,
    };

    /// A mirror that asks for a rejoin's WAL summary is about to cut or wipe its WAL: it is
    /// in sync no more, and what its old stream still reports changes nothing.
    #[test]
    fn a_receiver_starting_a_recovery_is_in_sync_no_more_and_its_old_stream_is_stale() {
        let rules = segment();
        let mut pair = Pair::default();
        let old = pair.connect(&rules);
        assert!(pair.feedback(&rules, old, 500, 500));
        assert!(pair.in_sync(SYNC_ON));
        pair.receiver_recovering();
        assert!(!pair.in_sync(SYNC_ON) && !pair.connected);
        assert!(!pair.feedback(&rules, old, 600, 500));
        assert!(!pair.disconnect(old));
        assert!(!pair.in_sync(SYNC_ON));
        let new = pair.connect(&rules);
        assert!(pair.feedback(&rules, new, 500, 500));
    }

    #[test]
    fn a_sender_sends_what_it_may_ship_past_what_it_sent_and_otherwise_idles() {
        let mut out = Outgoing::starting_at(100);
        assert_eq!(
            out.next(150),
            Next::Send {
                from: 100,
                available: 50
            }
        );
        assert_eq!(out.sending(30), 100);
        assert_eq!(
            out.next(150),
            Next::Send {
                from: 130,
                available: 20
            }
        );
        out.sending(20);
        assert_eq!(out.next(150), Next::Idle);
        assert!(!out.more_than_sent(150) && out.more_than_sent(151));
    }

    #[test]
    fn an_idle_sender_sends_a_keepalive_well_within_the_receiver_s_patience() {
        let rules = segment();
        assert_eq!(rules.keepalive_every(), Duration::from_secs(3));
        assert_eq!(rules.give_up_after(), Duration::from_secs(9));
    }

    #[test]
    fn a_mirror_that_has_flushed_everything_the_primary_wrote_is_in_sync() {
        let rules = segment();
        let mut pair = Pair::default();
        let g = pair.connect(&rules);
        assert!(!pair.feedback(&rules, g, 90, 100), "behind the primary");
        assert!(!pair.in_sync(Waiting::Never));
        assert!(pair.feedback(&rules, g, 100, 100));
        assert!(pair.in_sync(SYNC_ON));
        assert!(
            !pair.feedback(&rules, g, 120, 120),
            "only the change is reported"
        );
    }

    #[test]
    fn a_stale_stream_changes_nothing() {
        let rules = segment();
        let mut pair = Pair::default();
        let old = pair.connect(&rules);
        let g = pair.connect(&rules);
        assert!(!pair.feedback(&rules, old, 100, 100));
        assert!(!pair.disconnect(old));
        assert!(pair.connected && !pair.caught_up);
        assert!(pair.feedback(&rules, g, 100, 100));
    }

    #[test]
    fn a_standby_is_synchronized_once_it_has_flushed_what_was_sent_when_the_sender_first_ran_dry() {
        let rules = catalog();
        let mut pair = Pair::default();
        let g = pair.connect(&rules);
        assert!(
            !pair.feedback(&rules, g, 500, 100),
            "judged when idle, not on feedback"
        );
        assert!(!pair.idle(&rules, g, 100, 50), "the target is 100");
        assert!(!pair.idle(&rules, g, 130, 90), "the target stays at 100");
        assert!(
            pair.idle(&rules, g, 160, 100),
            "more came since; the target was met"
        );
        assert!(pair.in_sync(SYNC_ON));
        assert!(
            !pair.idle(&rules, g, 200, 100),
            "only the change is reported"
        );
    }

    #[test]
    fn a_new_mirror_stream_starts_over_but_a_new_catalog_stream_keeps_the_catch_up() {
        let mut mirror = Pair {
            caught_up: true,
            ..Pair::default()
        };
        mirror.connect(&segment());
        assert!(!mirror.caught_up);
        let mut standby = Pair {
            caught_up: true,
            catchup_target: Some(5),
            ..Pair::default()
        };
        standby.connect(&catalog());
        assert!(standby.caught_up);
        assert_eq!(
            standby.catchup_target, None,
            "a new stream sets a new target"
        );
    }

    #[test]
    fn a_receiver_whose_stream_ended_is_neither_connected_nor_in_sync() {
        let rules = segment();
        let mut pair = Pair::default();
        let g = pair.connect(&rules);
        pair.feedback(&rules, g, 10, 10);
        assert!(pair.disconnect(g));
        assert!(!pair.connected && !pair.in_sync(Waiting::Never));
    }

    #[test]
    fn a_mirror_is_in_sync_only_past_what_was_acknowledged_without_it() {
        let pair = Pair {
            caught_up: true,
            ..Pair::default()
        };
        let waiting = |on, receiver_flushed| Waiting::Synchronous {
            on,
            receiver_flushed,
            acked_alone_upto: 41_098,
        };
        assert!(!pair.in_sync(waiting(true, 37_576)));
        assert!(!pair.in_sync(waiting(false, 41_098)), "waiting still off");
        assert!(pair.in_sync(waiting(true, 41_098)));
    }

    #[test]
    fn asynchronous_replication_counts_a_caught_up_mirror_in_sync() {
        let caught_up = Pair {
            caught_up: true,
            ..Pair::default()
        };
        assert!(caught_up.in_sync(Waiting::Never));
        assert!(!Pair::default().in_sync(Waiting::Never), "not caught up");
    }
}
