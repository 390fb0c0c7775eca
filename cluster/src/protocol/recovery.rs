//! Incremental recovery's decision (`recoverseg`), apart from the network and the disk: from the
//! two instances' WAL summaries, their WAL histories (system identifiers) and their flushed
//! positions, where the recovering instance's WAL and the acting primary's part ways, and what
//! becomes of it: rewind to that point (nothing to discard when the two are already in step),
//! start over with a full copy, or refuse (another WAL history, or no WAL in common: only a full
//! copy, `recoverseg -F`, helps then).
//!
//! The driver (`segment::rejoin`) gathers what [`Recovery`] asks for, in its order: the
//! primary's summary, then its own, then at most one chunk of WAL bytes from each side where the
//! summaries stop agreeing, then the last record boundary at or before the common prefix.

use crate::model::catalog::Dbid;
use crate::wal::Lsn;

/// A WAL summary: the flushed position and a checksum of every `chunk`-byte chunk up to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalSummary {
    pub flushed: Lsn,
    pub crcs: Vec<u32>,
}

/// How far two summaries agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// The two WALs are the same up to here, as far as both reach.
    Common(Lsn),
    /// The same up to `from`; the chunk starting there must be compared byte by byte.
    CompareChunk { from: Lsn, len: u64 },
}

/// What becomes of the recovering instance's storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Its WAL is a prefix of the primary's: nothing to discard, it streams from `at`.
    InStep { at: Lsn },
    /// Rewind to the record boundary `to`, discarding the diverged tail.
    Rewind { to: Lsn },
    /// Wipe everything and take on the primary's history afresh (`recoverseg -F`).
    FullCopy,
    /// Incremental recovery cannot keep this instance's WAL; the reason names the full copy.
    Refuse(String),
}

impl Decision {
    /// Where the storage is cut back to (0 for a full copy); `None` for a refusal.
    pub fn cut_at(&self) -> Option<Lsn> {
        match *self {
            Decision::InStep { at } | Decision::Rewind { to: at } => Some(at),
            Decision::FullCopy => Some(0),
            Decision::Refuse(_) => None,
        }
    }
}

/// One recovery of dbid `dbid` onto the acting primary at `primary`.
#[derive(Clone, Debug)]
pub struct Recovery {
    pub dbid: Dbid,
    pub primary: String,
    /// A full copy was asked for (`-F`).
    pub full: bool,
    /// This instance's flushed WAL when recovery began.
    pub local_flushed: Lsn,
    /// The size of a summary chunk.
    pub chunk: u64,
}

impl Recovery {
    /// Whether the recovery may go on, given both WAL histories (system identifiers): checked
    /// once the primary's summary is in and before this instance changes anything, so a
    /// refusal leaves it as it was. A full copy replaces the history, so it always may.
    pub fn admit(&self, ours: Option<u64>, theirs: Option<u64>) -> Result<(), String> {
        if self.full {
            return Ok(());
        }
        match incremental_refusal(self.dbid, ours, &self.primary, theirs) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }

    /// How far the two summaries agree: whole chunks with the same checksum, no further than
    /// either side has flushed. Where a chunk differs within what both hold, that chunk is to
    /// be compared byte by byte ([`Recovery::refine`]).
    pub fn agreement(&self, source: &WalSummary, local: &WalSummary) -> Agreement {
        let same_chunks = source
            .crcs
            .iter()
            .zip(&local.crcs)
            .take_while(|(a, b)| a == b)
            .count() as u64;
        let both = source.flushed.min(local.flushed);
        let common = (same_chunks * self.chunk).min(both);
        if common < both {
            Agreement::CompareChunk {
                from: common,
                len: self.chunk,
            }
        } else {
            Agreement::Common(common)
        }
    }

    /// The common prefix once the chunk at `from` has been compared: `ours` and `theirs` are
    /// that chunk's bytes on each side.
    pub fn refine(&self, from: Lsn, ours: &[u8], theirs: &[u8]) -> Lsn {
        from + ours.iter().zip(theirs).take_while(|(a, b)| a == b).count() as Lsn
    }

    /// The decision, given `divergence`: the last record boundary at or before the common
    /// prefix (0 for a full copy, which compares nothing).
    pub fn decide(&self, divergence: Lsn) -> Decision {
        if self.full {
            return Decision::FullCopy;
        }
        let local_flushed = self.local_flushed;
        if divergence == 0 && local_flushed > 0 {
            // Same history, yet not one record in common: rewinding would discard everything
            // this instance holds, not a diverged tail.
            let primary = &self.primary;
            return Decision::Refuse(format!(
                "dbid {} shares no WAL with the acting primary {primary} ({local_flushed} bytes                  of its own would be discarded); incremental recovery refused; a full copy                  (recoverseg -F) replaces it",
                self.dbid
            ));
        }
        if divergence >= local_flushed {
            Decision::InStep { at: divergence }
        } else {
            Decision::Rewind { to: divergence }
        }
    }

    /// The bytes compared: the primary's checksums (four bytes each) and the chunk it sent.
    pub fn compare_bytes(source: &WalSummary, chunk_sent: usize) -> u64 {
        source.crcs.len() as u64 * 4 + chunk_sent as u64
    }
}

/// The first check, before anything is asked of the primary: an instance (dbid `dbid`,
/// listening at `listen_addr`) is never recovered from itself.
pub fn from_itself(dbid: Dbid, primary: &str, listen_addr: &str) -> Option<String> {
    (primary == listen_addr).then(|| format!("dbid {dbid} may not be recovered from itself"))
}

/// Why incremental recovery may not rewind dbid `dbid` (history `ours`) onto the acting
/// primary at `primary` (history `theirs`); `None` when it may.
///
/// The rule: both must hold the same WAL history (system identifier). A rewind keeps the WAL
/// the two share and discards only this instance's diverged tail; two histories made apart (a
/// primary that started again on an empty directory and began its own, say) share nothing,
/// and rewinding one onto the other would discard everything it holds. The identifier is
/// exact where a rule on checkpoints is not: a tail may hold a checkpoint record legitimately
/// (one written just before a failover), and a foreign history may have checkpoints where
/// this one has.
fn incremental_refusal(
    dbid: Dbid,
    ours: Option<u64>,
    primary: &str,
    theirs: Option<u64>,
) -> Option<String> {
    match (ours, theirs) {
        (Some(a), Some(b)) if a == b => None,
        (None, _) => None,
        (Some(a), b) => Some(format!(
            "dbid {dbid} holds another WAL history than the acting primary {primary} (system              identifier {a:016x}, the primary's {}): an incremental rewind would discard all of              it, not a diverged tail; refused. A full copy (recoverseg -F) replaces it with the              primary's",
            b.map(|b| format!("{b:016x}"))
                .unwrap_or_else(|| "none".into())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: u64 = 8;

    fn recovery(full: bool, local_flushed: Lsn) -> Recovery {
        Recovery {
            dbid: 2,
            primary: "p:1".into(),
            full,
            local_flushed,
            chunk: CHUNK,
        }
    }

    fn summary(flushed: Lsn, crcs: &[u32]) -> WalSummary {
        WalSummary {
            flushed,
            crcs: crcs.to_vec(),
        }
    }

    #[test]
    fn an_instance_is_never_recovered_from_itself() {
        let refusal = from_itself(2, "p:1", "p:1").unwrap();
        assert_eq!(refusal, "dbid 2 may not be recovered from itself");
        assert_eq!(from_itself(2, "p:1", "m:1"), None);
    }

    #[test]
    fn an_incremental_rewind_needs_the_same_wal_history() {
        let r = recovery(false, 100);
        assert_eq!(r.admit(Some(5), Some(5)), Ok(()));
        let refusal = r.admit(Some(5), Some(6)).unwrap_err();
        assert!(
            refusal.contains("another WAL history") && refusal.contains("-F"),
            "{refusal}"
        );
        assert!(r.admit(Some(5), None).is_err(), "a primary without history");
    }

    #[test]
    fn a_new_mirror_has_no_history_to_lose() {
        assert_eq!(recovery(false, 0).admit(None, Some(5)), Ok(()));
    }

    #[test]
    fn a_full_copy_replaces_any_history() {
        let r = recovery(true, 100);
        assert_eq!(r.admit(Some(5), Some(6)), Ok(()));
        assert_eq!(r.decide(0), Decision::FullCopy);
        assert_eq!(r.decide(0).cut_at(), Some(0));
    }

    #[test]
    fn summaries_agreeing_on_every_chunk_share_all_that_both_hold() {
        let r = recovery(false, 20);
        let ours = summary(20, &[1, 2, 3]);
        let theirs = summary(30, &[1, 2, 9, 4]);
        // The third chunk differs where both hold WAL (16..20): compared byte by byte.
        assert_eq!(
            r.agreement(&theirs, &ours),
            Agreement::CompareChunk { from: 16, len: 8 }
        );
        let theirs = summary(16, &[1, 2]);
        assert_eq!(r.agreement(&theirs, &ours), Agreement::Common(16));
    }

    #[test]
    fn a_differing_chunk_is_common_up_to_its_first_differing_byte() {
        let r = recovery(false, 20);
        let ours = summary(20, &[1, 7, 3]);
        let theirs = summary(20, &[1, 2, 3]);
        assert_eq!(
            r.agreement(&theirs, &ours),
            Agreement::CompareChunk { from: 8, len: 8 }
        );
        assert_eq!(r.refine(8, b"abcdXfgh", b"abcdefgh"), 12);
        assert_eq!(r.refine(8, b"abc", b"abcdefgh"), 11, "no further than ours");
    }

    #[test]
    fn a_mirror_whose_wal_is_a_prefix_of_the_primary_s_is_in_step() {
        assert_eq!(recovery(false, 40).decide(40), Decision::InStep { at: 40 });
        assert_eq!(recovery(false, 0).decide(0), Decision::InStep { at: 0 });
    }

    #[test]
    fn a_diverged_tail_is_rewound_to_the_last_common_record_boundary() {
        let d = recovery(false, 40).decide(24);
        assert_eq!(d, Decision::Rewind { to: 24 });
        assert_eq!(d.cut_at(), Some(24));
    }

    #[test]
    fn sharing_no_record_with_the_primary_refuses_and_names_the_full_copy() {
        let Decision::Refuse(why) = recovery(false, 40).decide(0) else {
            panic!("an instance with WAL of its own and nothing in common is refused");
        };
        assert!(
            why.contains("shares no WAL") && why.contains("recoverseg -F"),
            "{why}"
        );
        assert_eq!(Decision::Refuse(why).cut_at(), None);
    }

    #[test]
    fn the_bytes_compared_count_every_checksum_and_the_chunk_sent() {
        assert_eq!(Recovery::compare_bytes(&summary(20, &[1, 2, 3]), 8), 20);
    }
}
