//! Planted bugs: deliberate defects, switchable at run time and off by default, that prove the
//! simulator's checkers can fire. Each is named; `hasim --bug NAME` turns one on.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlantedBugs {
    /// The primary acknowledges a commit once its own WAL is flushed, without waiting for the
    /// mirror to flush the commit record.
    pub ack_before_mirror_flush: bool,
    /// The prober promotes the mirror of an unreachable primary even when the pair was not in
    /// sync (the real rule: only an in-sync mirror is promoted; otherwise it is a double fault).
    pub promote_unsynced_mirror: bool,
    /// The primary stops waiting for its mirror as soon as the mirror disconnects, instead of
    /// waiting until the prober has marked the mirror down in the catalog.
    pub syncrep_off_without_marking_mirror_down: bool,
    /// The coordinator commits a multi-content transaction on its last writer in one phase
    /// instead of preparing it, so a later failure cannot roll that writer back.
    pub commit_without_prepare: bool,
    /// A mirror's WAL replay drops heap deletes, so its data drifts from its primary's.
    pub mirror_skips_deletes: bool,
    /// A segment accepts control requests and work stamped with a configuration epoch older than
    /// the newest it has seen (a late message from a decision the catalog has since replaced).
    pub skip_epoch_check: bool,
    /// An activated standby rolls back every prepared transaction it finds, even those whose
    /// distributed-commit record it holds (the real rule: re-send COMMIT PREPARED for them).
    pub activation_ignores_commit_records: bool,
    /// The coordinator ships catalog WAL to its standby before that WAL is durable on the
    /// coordinator itself (the real rule: only flushed WAL is sent).
    pub walsender_ships_unflushed_wal: bool,
    /// The standby's walreceiver reports catalog WAL as flushed once it has received (written)
    /// it, and flushes it later, so the coordinator acts on changes a standby host crash loses
    /// (the real rule: write, flush, then report).
    pub standby_acks_unflushed_wal: bool,
    /// A segment mirror's walreceiver reports WAL as flushed once it has written it, and flushes
    /// it only when the next message arrives, so its primary acknowledges commits a crash of the
    /// mirror's host loses (the real rule: write, flush, then report).
    pub mirror_acks_unflushed_wal: bool,
    /// The prober waits for a probe's reply without its timeout: a primary that accepts the
    /// connection but never answers (stalled, paused) holds up the whole probe cycle.
    pub probe_without_timeout: bool,
    /// `recoverseg -r` rebalances without checking that every pair is synchronized, so an
    /// instance that lacks acknowledged commits becomes the primary again.
    pub rebalance_unsynchronized: bool,
    /// A mirror's WAL replay applies each commit after the one that follows it, so two
    /// transactions writing one row leave the older value on the mirror.
    pub mirror_replays_out_of_order: bool,
    /// The prober commits a catalog change without its `gp_configuration_history` row.
    pub forget_configuration_history: bool,
    /// A segment's buffer cache writes a dirty block back before the WAL covering it is
    /// durable (breaking WAL before data); a crash can then keep changes whose commit is lost.
    pub evict_before_wal_flush: bool,
    /// Incremental recovery (`recoverseg`) skips the rewind: it only moves the failed
    /// instance's WAL back to the divergence point, so the new primary's stream lines up as if
    /// the histories matched, and keeps the data, which still holds what the instance applied
    /// past that point (commits it logged but that were never acknowledged).
    pub recovery_skips_rewind: bool,
    /// The coordinator sends COMMIT PREPARED without first making the distributed-commit
    /// record durable, so a coordinator restart (or the resolver, when a writer misses its
    /// second phase) finds prepared transactions with no record and aborts them, after other
    /// writers already committed.
    pub lose_distributed_commit_record: bool,
    /// The coordinator fence is off: an activated standby goes on counting epochs in the old
    /// coordinator's generation instead of starting the next one, and a coordinator never
    /// learns that an activated standby deposed it; so an old coordinator that starts again
    /// after an activation, refused at first, counts its own changes up past its successor's
    /// epoch and is obeyed beside it (the real rule: each activation starts a new generation,
    /// which outranks every epoch of an older one, and a deposed coordinator stops serving).
    pub coordinator_fence_off: bool,
    /// An instance starts on a data directory without its identity (missing, emptied by a
    /// replaced disk) by making it anew and serving it empty, as if it were new (the real
    /// rule: only init and a full recovery make a directory; otherwise refuse to start).
    pub skip_identity_check: bool,
    /// When the prober replaces a content's primary, the coordinator's calls in flight to the
    /// old one wait for their own timeout instead of being cancelled and retried on the new
    /// primary, so clients sit on a hung primary past the failover.
    pub no_cancel_on_failover: bool,
    /// The prober counts a primary as failed after its first lost probe, without the retries
    /// (the real rule: a primary is failed over only once every attempt of a probe round,
    /// `probe_retries` retries after the first, went unanswered within the probe timeout).
    pub failover_on_one_lost_probe: bool,
    /// A segment's fence compares only the coordinator generations of a request's epoch and
    /// the one it follows, so a request from a decision the catalog has since replaced, within
    /// one coordinator's generation, is obeyed (the real rule: refuse any epoch older than the
    /// newest followed).
    pub fence_compares_generations_only: bool,
    /// A segment's WAL flush claims as durable everything written when its fsync returns,
    /// including records appended while the fsync was under way (the real rule: an fsync
    /// covers only what was written before it began), so a primary acknowledges, and ships to
    /// its mirror, records a crash of its host loses.
    pub wal_flush_covers_later_appends: bool,
    /// A promoting mirror ends its WAL after the last record that finishes a transaction,
    /// taking whatever follows for an unfinished transaction's records, though a prepare (the
    /// first phase of a distributed commit, already acknowledged) or a checkpoint is whole
    /// (the real rule: promotion keeps every whole record the mirror received and cuts only a
    /// partial or corrupt tail).
    pub promotion_ends_at_last_commit: bool,
    /// A primary obeys SYNCREP_OFF whatever its epoch, as if stopping the wait for a mirror
    /// the prober asked to stop waiting for were always safe: a late one, from before the mirror
    /// came back and caught up, lets it acknowledge commits its in-sync mirror lacks (the real
    /// rule: SYNCREP_OFF is fenced like every other control request).
    pub syncrep_off_skips_epoch_check: bool,
    /// A segment retries a WAL `fsync` that failed and carries on (acknowledging commits) when
    /// the retry succeeds (the real rule: PostgreSQL PANICs on a failed `fsync`, since the
    /// kernel may have dropped the dirty pages and a later `fsync` proves nothing about them).
    pub fsync_error_retried: bool,
    /// A checkpoint whose `fsync` of a table file fails carries on: it moves the redo point
    /// past the blocks the kernel dropped (the real rule: PostgreSQL PANICs on a failed
    /// checkpoint `fsync` and redoes from the old redo point; retrying or ignoring it lost
    /// data, the "fsyncgate" of 2018).
    pub checkpoint_ignores_fsync_failure: bool,
    /// A mirror that receives a large WAL message (at least `LARGE_WAL_MESSAGE` bytes)
    /// reports it flushed as soon as it is written, to keep a bulk load moving, and flushes it
    /// right after; a crash or a stall between the report and the `fsync` leaves the primary
    /// acknowledging commits the mirror does not hold durably (the real rule: write, flush,
    /// then report, whatever the size).
    pub mirror_acks_large_write_before_fsync: bool,
    /// The prober sends PROMOTE to the mirror first and records the role flip in the catalog
    /// after, to save the mirror a wait; a coordinator that dies in between comes back with a
    /// catalog that does not know of the promotion (the real rule: the catalog change is
    /// durable before the instance hears of it).
    pub promote_before_catalog_write: bool,
    /// The prober takes a primary's first "starting" answer for a stalled recovery, as if a
    /// replay position needed a previous one to have moved from: a primary restarting after a
    /// crash is failed over at the first probe that finds it recovering (the real rule: the
    /// first "starting" answer counts as progress, and only a replay that stops moving, or
    /// more than `starting_probes_max` such answers in a row, counts as failed).
    pub first_starting_answer_counts_as_stalled: bool,
    /// Table blocks are written in place (by a checkpoint, and by buffer-cache eviction)
    /// without their image in the double-write area first, so a power loss that writes back
    /// only some 4 KiB pages of an 8 KiB block leaves it torn, failing its checksum, and the
    /// logical WAL cannot rebuild it (the real rule: a page overwritten in place must be
    /// recoverable whole after a torn write; PostgreSQL logs a full-page image at its first
    /// change after a checkpoint, InnoDB writes it to its double-write buffer and syncs that
    /// before the in-place write).
    pub torn_page_unprotected: bool,
    /// Crash recovery takes a damaged WAL record for the end of the log even when whole
    /// records follow it, cutting them off, as if the damage were a torn tail (the real rule:
    /// damage that valid records follow is corruption in the middle of the log; PostgreSQL
    /// stops there and refuses to start, and so must every instance and coordinator here).
    pub wal_damage_taken_for_end: bool,
    /// A segment serves a connection whose first frame is no handshake hello but a plain
    /// control request (a probe, SYNCREP_OFF, PROMOTE, a rejoin) as it is, unauthenticated, as
    /// if the control path were trusted by its network (the real rule: every connection proves
    /// it holds the cluster secret before any request is read).
    pub handshake_skipped_for_control: bool,
    /// The SQL layer answers `COMMIT` whatever the coordinator's commit answered, as if the
    /// commit's own answer were a formality once every statement succeeded: a commit that
    /// failed (its two-phase commit rolled back when a content was lost) or whose outcome is
    /// unknown is reported committed (the real rule: COMMIT reports the commit's outcome; a
    /// failure is an error, and an unknown outcome says so).
    pub sql_commit_failure_answered_ok: bool,
    /// The SQL layer looks at the client's cancel request once more after `COMMIT` went
    /// through, and answers `57014` (canceled) for a transaction that committed, as if a
    /// cancel could still take a commit back (the real rule: once a commit is sent, it runs to
    /// its end and the client is told its outcome).
    pub sql_cancel_answered_after_commit: bool,
    /// The SQL front door matches a host rule by its user and database alone, whatever address
    /// the client comes from, as if a rule's address range were a comment (the real rule: a
    /// connection takes the first rule whose type, database, user and address all match).
    pub hba_ignores_address: bool,
}

/// A WAL message this large counts as a bulk write for `mirror-acks-large-write-before-fsync`.
pub const LARGE_WAL_MESSAGE: usize = 256;

/// `(name, what it breaks)` for every planted bug.
pub const CATALOGUE: &[(&str, &str)] = &[
    (
        "ack-before-mirror-flush",
        "a commit is acknowledged before the mirror flushed it",
    ),
    (
        "promote-unsynced-mirror",
        "the prober promotes a mirror that was not in sync",
    ),
    (
        "syncrep-off-without-marking-mirror-down",
        "the primary stops waiting for a lost mirror before the catalog marks it down",
    ),
    (
        "commit-without-prepare",
        "one writer of a distributed transaction commits without preparing",
    ),
    (
        "mirror-skips-deletes",
        "a mirror's replay drops heap deletes",
    ),
    (
        "skip-epoch-check",
        "a segment obeys requests stamped with an older configuration epoch",
    ),
    (
        "activation-ignores-commit-records",
        "an activated standby rolls back prepared transactions that have a commit record",
    ),
    (
        "walsender-ships-unflushed-wal",
        "the coordinator streams catalog WAL to its standby before flushing it",
    ),
    (
        "standby-acks-unflushed-wal",
        "the standby reports catalog WAL flushed that it has only received",
    ),
    (
        "mirror-acks-unflushed-wal",
        "a segment mirror reports WAL flushed that it has only written",
    ),
    (
        "probe-without-timeout",
        "the prober waits for a probe's reply without a timeout",
    ),
    (
        "rebalance-unsynchronized",
        "recoverseg -r returns a pair to its preferred roles before it is synchronized",
    ),
    (
        "mirror-replays-out-of-order",
        "a mirror's replay applies each commit after the next one",
    ),
    (
        "forget-configuration-history",
        "a catalog change is committed without its configuration history row",
    ),
    (
        "lose-distributed-commit-record",
        "the coordinator commits prepared transactions without a durable distributed-commit record",
    ),
    (
        "evict-before-wal-flush",
        "a dirty block is written back before the WAL covering it is durable",
    ),
    (
        "recovery-skips-rewind",
        "incremental recovery streams from the new primary without rewinding the old one's data",
    ),
    (
        "coordinator-fence-off",
        "a deposed coordinator started again after an activation is obeyed beside the new one",
    ),
    (
        "skip-identity-check",
        "an instance whose data directory is missing or empty starts anew and serves it empty",
    ),
    (
        "no-cancel-on-failover",
        "calls in flight to a replaced primary wait for their timeout instead of moving on",
    ),
    (
        "failover-on-one-lost-probe",
        "the prober fails a primary over after one lost probe, without retrying",
    ),
    (
        "fence-compares-generations-only",
        "a segment obeys stale requests of its coordinator's own generation",
    ),
    (
        "wal-flush-covers-later-appends",
        "a WAL flush claims the records appended while its fsync ran, which a crash loses",
    ),
    (
        "promotion-ends-at-last-commit",
        "a promoted mirror cuts the whole records after its last commit, a prepare among them",
    ),
    (
        "syncrep-off-skips-epoch-check",
        "a primary obeys a late SYNCREP_OFF stamped with an older epoch",
    ),
    (
        "fsync-error-retried",
        "a failed wal fsync is retried and the segment goes on acknowledging commits",
    ),
    (
        "checkpoint-ignores-fsync-failure",
        "a checkpoint whose table-file fsync failed moves the redo point past the dropped blocks",
    ),
    (
        "mirror-acks-large-write-before-fsync",
        "a mirror reports a large WAL message flushed before its fsync",
    ),
    (
        "promote-before-catalog-write",
        "the prober sends PROMOTE before the catalog records the promotion",
    ),
    (
        "first-starting-answer-counts-as-stalled",
        "the prober fails over a restarting primary at its first \"starting\" answer",
    ),
    (
        "torn-page-unprotected",
        "table blocks are overwritten in place without the double-write area, so a torn one is lost",
    ),
    (
        "wal-damage-taken-for-end",
        "crash recovery cuts the WAL at a damaged record that whole records follow",
    ),
    (
        "handshake-skipped-for-control",
        "a segment serves a plain control request from a peer that never authenticated",
    ),
    (
        "sql-commit-failure-answered-ok",
        "the SQL layer answers COMMIT for a commit that failed or whose outcome is unknown",
    ),
    (
        "sql-cancel-answered-after-commit",
        "a cancel request that arrives while COMMIT runs is answered 57014 for a transaction that committed",
    ),
    (
        "hba-ignores-address",
        "the SQL front door matches a host rule whatever address the client comes from",
    ),
];

impl PlantedBugs {
    pub fn none() -> PlantedBugs {
        PlantedBugs::default()
    }

    fn flag(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "ack-before-mirror-flush" => &mut self.ack_before_mirror_flush,
            "promote-unsynced-mirror" => &mut self.promote_unsynced_mirror,
            "syncrep-off-without-marking-mirror-down" => {
                &mut self.syncrep_off_without_marking_mirror_down
            }
            "commit-without-prepare" => &mut self.commit_without_prepare,
            "lose-distributed-commit-record" => &mut self.lose_distributed_commit_record,
            "mirror-skips-deletes" => &mut self.mirror_skips_deletes,
            "skip-epoch-check" => &mut self.skip_epoch_check,
            "activation-ignores-commit-records" => &mut self.activation_ignores_commit_records,
            "walsender-ships-unflushed-wal" => &mut self.walsender_ships_unflushed_wal,
            "standby-acks-unflushed-wal" => &mut self.standby_acks_unflushed_wal,
            "mirror-acks-unflushed-wal" => &mut self.mirror_acks_unflushed_wal,
            "probe-without-timeout" => &mut self.probe_without_timeout,
            "rebalance-unsynchronized" => &mut self.rebalance_unsynchronized,
            "mirror-replays-out-of-order" => &mut self.mirror_replays_out_of_order,
            "forget-configuration-history" => &mut self.forget_configuration_history,
            "evict-before-wal-flush" => &mut self.evict_before_wal_flush,
            "recovery-skips-rewind" => &mut self.recovery_skips_rewind,
            "coordinator-fence-off" => &mut self.coordinator_fence_off,
            "skip-identity-check" => &mut self.skip_identity_check,
            "no-cancel-on-failover" => &mut self.no_cancel_on_failover,
            "failover-on-one-lost-probe" => &mut self.failover_on_one_lost_probe,
            "fence-compares-generations-only" => &mut self.fence_compares_generations_only,
            "wal-flush-covers-later-appends" => &mut self.wal_flush_covers_later_appends,
            "promotion-ends-at-last-commit" => &mut self.promotion_ends_at_last_commit,
            "syncrep-off-skips-epoch-check" => &mut self.syncrep_off_skips_epoch_check,
            "fsync-error-retried" => &mut self.fsync_error_retried,
            "checkpoint-ignores-fsync-failure" => &mut self.checkpoint_ignores_fsync_failure,
            "mirror-acks-large-write-before-fsync" => {
                &mut self.mirror_acks_large_write_before_fsync
            }
            "promote-before-catalog-write" => &mut self.promote_before_catalog_write,
            "first-starting-answer-counts-as-stalled" => {
                &mut self.first_starting_answer_counts_as_stalled
            }
            "torn-page-unprotected" => &mut self.torn_page_unprotected,
            "wal-damage-taken-for-end" => &mut self.wal_damage_taken_for_end,
            "handshake-skipped-for-control" => &mut self.handshake_skipped_for_control,
            "sql-commit-failure-answered-ok" => &mut self.sql_commit_failure_answered_ok,
            "sql-cancel-answered-after-commit" => &mut self.sql_cancel_answered_after_commit,
            "hba-ignores-address" => &mut self.hba_ignores_address,
            _ => return None,
        })
    }

    /// Turns on the bug called `name`; an unknown name is an error listing the known ones.
    pub fn enable(&mut self, name: &str) -> Result<(), String> {
        match self.flag(name) {
            Some(flag) => {
                *flag = true;
                Ok(())
            }
            None => {
                let known: Vec<&str> = CATALOGUE.iter().map(|(n, _)| *n).collect();
                Err(format!(
                    "unknown planted bug {name:?}; known: {}",
                    known.join(", ")
                ))
            }
        }
    }

    /// The names of the bugs switched on.
    pub fn enabled(&self) -> Vec<&'static str> {
        let mut copy = *self;
        CATALOGUE
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| copy.flag(n).is_some_and(|f| *f))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogued_bug_switches_on_alone_and_unknown_names_are_refused() {
        for (name, _) in CATALOGUE {
            let mut bugs = PlantedBugs::none();
            bugs.enable(name).unwrap();
            assert_eq!(bugs.enabled(), vec![*name]);
        }
        assert!(PlantedBugs::none().enabled().is_empty());
        let err = PlantedBugs::none().enable("nope").unwrap_err();
        assert!(err.contains("ack-before-mirror-flush"), "{err}");
    }
}
