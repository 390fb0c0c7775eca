//! The network half of the I/O seam: length-prefixed, checksummed frames over
//! `tokio::net::TcpStream` (real TCP in production, madsim's simulated TCP in the simulator).
//!
//! Every connection is authenticated before anything else is read ([`super::auth`]): the
//! process that opens it ([`Connection::connect`]) and the one that accepts it
//! ([`PendingConnection::authenticate`], which the task serving the connection must call: an
//! accept loop never waits on a handshake) prove to each other that they hold the cluster
//! secret. The handshake's three messages are plain frames, `[len: u32 LE][crc32c(payload):
//! u32 LE][payload]`, of at most [`auth::HANDSHAKE_MAX_BYTES`], and the whole handshake must
//! be done within the listener's frame deadline. Every later frame is
//! `[len: u32 LE][crc32c(payload): u32 LE][tag: 16 bytes][payload]`, the tag the session's
//! HMAC of the direction, the frame's sequence number in that direction and the payload; it is
//! checked before the payload is decoded. The payload is a postcard-encoded message. A bad
//! length, checksum, tag or encoding is an error naming the peer and the rule, never a panic;
//! the connection is then dropped. Every frame is flushed as it is written: simulated TCP
//! sends only on flush, and real TCP should not sit on a commit acknowledgement.
//!
//! Connections a process opens ([`Connection::connect`]) take frames up to [`MAX_FRAME_BYTES`]
//! with no deadline: they carry WAL and base backups from peers the process chose. Connections
//! a [`Server`] accepts come from anyone who can reach the port and carry only requests (a
//! statement, a probe, WAL feedback, an administrative verb), so they are held to
//! [`ServerLimits`]:
//!
//! - at most `max_connections` open at once; one more is accepted and closed at once;
//! - a peer's first frame may declare at most `first_frame_max_bytes`, and once it has sent a
//!   valid frame, `frame_max_bytes`;
//! - a frame larger than the first-frame limit is received only while the listener's shared
//!   `frame_budget_bytes` can hold its declared length (given back when the frame is consumed
//!   or the connection dropped);
//! - once the first byte of a frame is buffered, the rest must arrive within `frame_deadline`
//!   (an idle connection, with no partial frame, may wait forever).
//!
//! Memory bound: a reader's buffer holds at most the frame in progress (its 24-byte header
//! included) plus one read chunk of 512 bytes, and at most 4 KiB between frames; it grows to at
//! most twice what has arrived (64 KiB at first) and never past the frame's declared end, so a
//! declared length is not trusted with memory its bytes have not earned. A peer that has not
//! authenticated gets less: a handshake frame is at most 256 bytes, so its buffer stays under
//! 1 KiB. So what the peers of one listener can make it buffer is at most `max_connections ×
//! (first_frame_max_bytes + 536) + frame_budget_bytes` ([`ServerLimits::receive_bound_bytes`]):
//! with the defaults, 750 × 16.5 KiB plus 32 MiB, 44.1 MiB, for a segment, and 500 × 16.5 KiB
//! plus 32 MiB, 40.1 MiB, for the coordinator; besides that, each connection's task, session
//! state and frame keys (two HMAC states, a few hundred bytes).

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tracing::warn;

use super::auth::{self, AuthError, ClientHandshake, FrameKey, PeerIdentity, ServerHandshake};
use super::runtime::{self, replays, resets, sleep, timeout, Instant};

/// Frames larger than this are refused (a corrupt length must not allocate gigabytes).
pub const MAX_FRAME_BYTES: usize = 64 << 20;
/// An authenticated connection's frame header: length, checksum, tag.
const HEADER_BYTES: usize = PLAIN_HEADER_BYTES + auth::TAG_BYTES;
/// A handshake frame's header: length and checksum.
const PLAIN_HEADER_BYTES: usize = 8;
/// Room made in a reader's buffer before a read when the next frame's length is not known yet.
const READ_CHUNK_BYTES: usize = 512;
/// Room made for a frame at once, however little of it has arrived.
const READ_LARGEST_BYTES: usize = 64 * 1024;
/// A buffer (a reader's, or a writer's scratch) this large or smaller is kept for the next frame
/// once it is empty; a larger one goes back to the allocator.
const KEEP_BUFFER_BYTES: usize = 4 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot reach {peer}: {source}")]
    Connect { peer: String, source: io::Error },
    #[error("i/o error with {peer}: {source}")]
    Io { peer: String, source: io::Error },
    #[error("{peer} closed the connection")]
    Closed { peer: String },
    #[error("frame from {peer} declares {len} bytes, over the limit of {limit}")]
    TooLarge {
        peer: String,
        len: usize,
        limit: usize,
    },
    #[error("first frame from {peer} declares {len} bytes, over the limit of {limit} for a peer that has not yet sent a valid frame")]
    FirstFrameTooLarge {
        peer: String,
        len: usize,
        limit: usize,
    },
    #[error("frame from {peer} declares {len} bytes, more than the {free} left of the listener's budget of {budget} bytes for large frames in progress")]
    OverBudget {
        peer: String,
        len: usize,
        free: usize,
        budget: usize,
    },
    #[error("{peer} did not complete a frame within {after:?} of its first byte")]
    FrameDeadline { peer: String, after: Duration },
    #[error("frame from {peer} fails its checksum (crc32c {expected:08x} declared, {actual:08x} computed)")]
    Checksum {
        peer: String,
        expected: u32,
        actual: u32,
    },
    #[error("frame from {peer} does not decode as a {what}: {reason}")]
    Decode {
        peer: String,
        what: &'static str,
        reason: String,
    },
    #[error("{peer} did not answer within {after:?}")]
    Timeout { peer: String, after: Duration },
    #[error("connection with {peer} refused: {reason}")]
    Auth { peer: String, reason: AuthError },
}

impl NetError {
    /// Whether the peer may be up but unreachable right now (as opposed to a protocol error).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            NetError::Connect { .. }
                | NetError::Io { .. }
                | NetError::Closed { .. }
                | NetError::Timeout { .. }
        )
    }
}

/// Encodes a message into one plain frame (no tag: a handshake frame's form).
pub fn encode_frame<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_frame_into(msg, &mut frame, None);
    frame
}

/// Encodes a message into one frame in `out`, which is cleared first: the payload is written
/// once, after room for the header, which is filled in last; with `key`, the header carries
/// the frame's tag (and the key counts the frame).
fn encode_frame_into<T: Serialize>(msg: &T, out: &mut Vec<u8>, key: Option<&mut FrameKey>) {
    let header = header_bytes(key.is_some());
    out.clear();
    out.resize(header, 0);
    super::codec::encode_append(msg, out);
    let len = out.len() - header;
    assert!(
        len <= MAX_FRAME_BYTES,
        "message of {len} bytes exceeds the frame limit"
    );
    let crc = crc32c::crc32c(&out[header..]);
    out[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    if let Some(key) = key {
        let tag = key.seal(&out[header..]);
        out[PLAIN_HEADER_BYTES..header].copy_from_slice(&tag);
    }
}

fn header_bytes(tagged: bool) -> usize {
    if tagged {
        HEADER_BYTES
    } else {
        PLAIN_HEADER_BYTES
    }
}

/// Parses the first plain frame of `buf` if it is complete: `Ok(Some((message, frame_len)))`.
pub fn decode_frame<T: DeserializeOwned>(
    buf: &[u8],
    peer: &str,
) -> Result<Option<(T, usize)>, NetError> {
    decode_frame_with(buf, peer, None)
}

/// Parses the first frame of `buf` if it is complete; with `key`, a tagged frame whose tag is
/// checked (and the frame counted) before its payload is decoded.
fn decode_frame_with<T: DeserializeOwned>(
    buf: &[u8],
    peer: &str,
    key: Option<&mut FrameKey>,
) -> Result<Option<(T, usize)>, NetError> {
    decode_frame_by(buf, peer, key, &decode_payload::<T>)
}

/// A frame's payload decoded as a `T`.
fn decode_payload<T: DeserializeOwned>(payload: &[u8], peer: &str) -> Result<T, NetError> {
    super::codec::decode(payload).map_err(|e| NetError::Decode {
        peer: peer.to_string(),
        what: std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("message"),
        reason: e.to_string(),
    })
}

/// [`decode_frame_with`], the payload decoded by `decode`.
fn decode_frame_by<T>(
    buf: &[u8],
    peer: &str,
    key: Option<&mut FrameKey>,
    decode: &impl Fn(&[u8], &str) -> Result<T, NetError>,
) -> Result<Option<(T, usize)>, NetError> {
    let header = header_bytes(key.is_some());
    if buf.len() < header {
        return Ok(None);
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(NetError::TooLarge {
            peer: peer.to_string(),
            len,
            limit: MAX_FRAME_BYTES,
        });
    }
    if buf.len() < header + len {
        return Ok(None);
    }
    let expected = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    let payload = &buf[header..header + len];
    let actual = crc32c::crc32c(payload);
    if actual != expected {
        return Err(NetError::Checksum {
            peer: peer.to_string(),
            expected,
            actual,
        });
    }
    if let Some(key) = key {
        key.open(&buf[PLAIN_HEADER_BYTES..header], payload)
            .map_err(|reason| NetError::Auth {
                peer: peer.to_string(),
                reason,
            })?;
    }
    let msg = decode(payload, peer)?;
    Ok(Some((msg, header + len)))
}

/// The declared payload length of the frame at the start of `buf`, once its 4 bytes are in.
fn declared_len(buf: &[u8]) -> Option<usize> {
    let len: [u8; 4] = buf.get(..4)?.try_into().expect("4 bytes");
    Some(u32::from_le_bytes(len) as usize)
}

/// What a listener allows the peers it accepts (see the module's documentation for the rules
/// and the memory they bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Accepted connections open at once; one more is accepted and closed at once.
    pub max_connections: usize,
    /// The largest frame a peer may send before it has sent one valid frame.
    pub first_frame_max_bytes: usize,
    /// The largest frame a peer may send after that (never more than [`MAX_FRAME_BYTES`]).
    pub frame_max_bytes: usize,
    /// Bytes of frames in progress larger than `first_frame_max_bytes`, over all of the
    /// listener's connections.
    pub frame_budget_bytes: usize,
    /// How long the rest of a frame may take once its first byte is buffered.
    pub frame_deadline: Duration,
}

impl ServerLimits {
    /// Greenplum's default `max_connections` on a segment. A coordinator session holds at most
    /// one connection per content, so a segment sees about one connection per session of the
    /// coordinator, plus the prober's, the resolver's, administrative calls and its mirror's
    /// stream; 750 leaves room for the coordinator's 500 and for sessions of a deposed
    /// coordinator (or of clients that gave up on a call) not yet noticed gone.
    pub const SEGMENT_MAX_CONNECTIONS: usize = 750;
    /// An agent serves the verbs an operator runs and a supervisor's health checks.
    pub const AGENT_MAX_CONNECTIONS: usize = 32;
    /// Greenplum's coordinator allows 250 client sessions; here one listener also takes the
    /// standby's catalog stream, administrative clients, and a client that reconnected after a
    /// call timed out while its old session still waits on a segment. The simulator's largest
    /// cluster runs 256 clients through one coordinator: 500 is twice that, with room to spare.
    pub const COORDINATOR_MAX_CONNECTIONS: usize = 500;

    /// A segment instance's listener.
    pub fn segment() -> ServerLimits {
        ServerLimits {
            max_connections: Self::SEGMENT_MAX_CONNECTIONS,
            ..ServerLimits::default()
        }
    }

    /// A host's agent: a few administration verbs and supervisors at a time.
    pub fn agent() -> ServerLimits {
        ServerLimits {
            max_connections: Self::AGENT_MAX_CONNECTIONS,
            ..ServerLimits::default()
        }
    }

    /// The coordinator's listener (and the standby's, which becomes the coordinator).
    pub fn coordinator() -> ServerLimits {
        ServerLimits {
            max_connections: Self::COORDINATOR_MAX_CONNECTIONS,
            ..ServerLimits::default()
        }
    }

    /// The most bytes the listener's peers can make it buffer for frames: every connection with
    /// a frame of the first-frame limit in progress (plus its header and one read chunk), and
    /// the budget spent on larger ones.
    pub fn receive_bound_bytes(&self) -> usize {
        let per_connection =
            (self.first_frame_max_bytes + HEADER_BYTES + READ_CHUNK_BYTES).max(KEEP_BUFFER_BYTES);
        self.max_connections * per_connection + self.frame_budget_bytes
    }

    /// Whether a frame declaring `len` bytes may be received, and whether it must be paid for
    /// from the budget; `identified`: the peer has sent a valid frame.
    fn admit(&self, identified: bool, len: usize) -> Result<Admit, Refusal> {
        if len <= self.first_frame_max_bytes {
            return Ok(Admit::Free);
        }
        if !identified {
            return Err(Refusal::FirstFrame {
                limit: self.first_frame_max_bytes,
            });
        }
        let limit = self.frame_max_bytes.min(MAX_FRAME_BYTES);
        if len > limit {
            return Err(Refusal::Frame { limit });
        }
        Ok(Admit::FromBudget)
    }
}

impl Default for ServerLimits {
    /// 16 KiB before a peer has identified itself (a statement carries a row of at most an 8 KiB
    /// block); 1 MiB after (the largest request, `add-mirrors` for a few hundred contents, is
    /// tens of KiB); 32 MiB of budget (32 such frames at once); 10 s for a frame to arrive (a
    /// request is written in one go, so only a stalled or hostile peer takes that long).
    fn default() -> ServerLimits {
        ServerLimits {
            max_connections: Self::SEGMENT_MAX_CONNECTIONS,
            first_frame_max_bytes: 16 << 10,
            frame_max_bytes: 1 << 20,
            frame_budget_bytes: 32 << 20,
            frame_deadline: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Admit {
    /// Within the first-frame limit: every connection may have one such frame in progress.
    Free,
    /// Larger: its declared length must be held from the listener's budget.
    FromBudget,
}

#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    FirstFrame { limit: usize },
    Frame { limit: usize },
}

/// What a listener's connections share: its limits, how many are open, and how much of the
/// budget their frames in progress hold.
struct Listener {
    limits: ServerLimits,
    open: AtomicUsize,
    budget_used: AtomicUsize,
}

impl Listener {
    fn new(limits: ServerLimits) -> Listener {
        Listener {
            limits,
            open: AtomicUsize::new(0),
            budget_used: AtomicUsize::new(0),
        }
    }

    /// Takes `len` bytes of the budget, or says how many are left.
    fn reserve(&self, len: usize) -> Result<(), usize> {
        let budget = self.limits.frame_budget_bytes;
        self.budget_used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (len <= budget.saturating_sub(used)).then_some(used + len)
            })
            .map(|_| ())
            .map_err(|used| budget.saturating_sub(used))
    }

    fn release(&self, len: usize) {
        if len > 0 {
            self.budget_used.fetch_sub(len, Ordering::AcqRel);
        }
    }

    /// Counts a new connection in, unless the listener is at its cap.
    fn open_slot(self: &Arc<Self>) -> Option<Slot> {
        let max = self.limits.max_connections;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(self)))
    }
}

/// One accepted connection counted against its listener's cap; shared by the reader and the
/// writer, so the count falls once both halves (and with them the socket) are dropped.
struct Slot(Arc<Listener>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the reader of an accepted connection enforces: the per-frame state lives here, not in
/// `recv`'s future, because `recv` is cancelled and called again at will.
struct Admission {
    slot: Arc<Slot>,
    /// The peer has sent a valid frame.
    identified: bool,
    /// Budget bytes held for the frame in progress (0 if it needs none).
    reserved: usize,
    /// When the first byte of the frame in progress was buffered; `None` with nothing buffered.
    frame_started: Option<Instant>,
    /// When the last read returned bytes.
    last_read: Instant,
}

impl Admission {
    fn new(slot: Arc<Slot>, now: Instant) -> Admission {
        Admission {
            slot,
            identified: false,
            reserved: 0,
            frame_started: None,
            last_read: now,
        }
    }

    fn listener(&self) -> &Listener {
        &self.slot.0
    }

    /// Checks the frame in progress, which declares `len` bytes, and holds its length from the
    /// budget if it needs to (once: `recv` looks at the same header each time it is called).
    fn admit(&mut self, len: usize, peer: &str) -> Result<(), NetError> {
        let listener = self.listener();
        let admit =
            listener
                .limits
                .admit(self.identified, len)
                .map_err(|refusal| match refusal {
                    Refusal::FirstFrame { limit } => NetError::FirstFrameTooLarge {
                        peer: peer.to_string(),
                        len,
                        limit,
                    },
                    Refusal::Frame { limit } => NetError::TooLarge {
                        peer: peer.to_string(),
                        len,
                        limit,
                    },
                })?;
        if admit == Admit::Free || self.reserved > 0 {
            return Ok(());
        }
        listener.reserve(len).map_err(|free| NetError::OverBudget {
            peer: peer.to_string(),
            len,
            free,
            budget: listener.limits.frame_budget_bytes,
        })?;
        self.reserved = len;
        Ok(())
    }

    /// A valid frame was taken out of the buffer; `more`: bytes of the next one are buffered
    /// (they came with the last read).
    fn consumed(&mut self, more: bool) {
        self.identified = true;
        let reserved = std::mem::take(&mut self.reserved);
        self.listener().release(reserved);
        self.frame_started = more.then_some(self.last_read);
    }

    fn read(&mut self, at: Instant) {
        self.last_read = at;
        self.frame_started.get_or_insert(at);
    }

    /// When the frame in progress must be complete.
    fn deadline(&self) -> Option<Instant> {
        self.frame_started
            .map(|at| at + self.listener().limits.frame_deadline)
    }

    fn frame_deadline(&self) -> Duration {
        self.listener().limits.frame_deadline
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.listener().release(self.reserved);
    }
}

/// The receiving half of a connection. `recv` is cancel-safe: bytes of a partly received frame
/// stay buffered, so it can sit inside `timeout` or `select!`.
pub struct FrameReader {
    half: ReadHalf<TcpStream>,
    buf: Vec<u8>,
    /// Where the first unread byte of `buf` is.
    start: usize,
    peer: String,
    ends: resets::Ends,
    /// An accepted connection's limits; `None` for one this process opened.
    admission: Option<Admission>,
    /// The session's key for received frames; `None` during the handshake, whose frames are
    /// plain and at most [`auth::HANDSHAKE_MAX_BYTES`]. Boxed: an HMAC state is a few hundred
    /// bytes, and connections are moved about inside futures.
    key: Option<Box<FrameKey>>,
}

/// The sending half of a connection.
pub struct FrameWriter {
    half: WriteHalf<TcpStream>,
    /// Where a frame is encoded before it is written.
    scratch: Vec<u8>,
    peer: String,
    ends: resets::Ends,
    /// Keeps an accepted connection counted while this half lives.
    _slot: Option<Arc<Slot>>,
    /// The session's key for sent frames; `None` during the handshake.
    key: Option<Box<FrameKey>>,
}

fn reset_error(peer: &str) -> NetError {
    NetError::Io {
        peer: peer.to_string(),
        source: io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer"),
    }
}

/// The capacity a reader's buffer should have before its next read, holding `len` bytes of a
/// frame that declares `declared` bytes once its header is in (see [`FrameReader::make_room`]).
fn room_goal(len: usize, declared: Option<usize>) -> usize {
    match declared {
        Some(declared) => (HEADER_BYTES + declared)
            .min(len + len.max(READ_LARGEST_BYTES))
            .max(len + READ_CHUNK_BYTES),
        None => len + READ_CHUNK_BYTES,
    }
}

/// How a read for more of a frame ended.
enum Waited {
    Read(io::Result<usize>),
    Reset,
    /// The frame in progress was not complete within this long of its first byte.
    Deadline(Duration),
}

impl FrameReader {
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, NetError> {
        self.recv_with(decode_payload::<T>).await
    }

    /// The next frame, its payload decoded by `decode` (given the payload and the peer).
    async fn recv_with<T>(
        &mut self,
        decode: impl Fn(&[u8], &str) -> Result<T, NetError>,
    ) -> Result<T, NetError> {
        loop {
            if let Some(msg) = self.take_frame(&decode)? {
                return Ok(msg);
            }
            // Only a partial frame is left: move it to the front once, not once per frame.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            if self.ends.is_reset() {
                return Err(reset_error(&self.peer));
            }
            self.make_room();
            self.read_more().await?;
        }
    }

    /// The next whole frame in the buffer, if one has arrived (admitted first: its declared
    /// length is checked against the connection's limits before anything waits for its bytes).
    fn take_frame<T>(
        &mut self,
        decode: &impl Fn(&[u8], &str) -> Result<T, NetError>,
    ) -> Result<Option<T>, NetError> {
        if let Some(len) = declared_len(&self.buf[self.start..]) {
            if self.key.is_none() && len > auth::HANDSHAKE_MAX_BYTES {
                return Err(NetError::TooLarge {
                    peer: self.peer.clone(),
                    len,
                    limit: auth::HANDSHAKE_MAX_BYTES,
                });
            }
            if let Some(admission) = &mut self.admission {
                admission.admit(len, &self.peer)?;
            }
        }
        if let Some((msg, used)) = decode_frame_by(
            &self.buf[self.start..],
            &self.peer,
            self.key.as_deref_mut(),
            decode,
        )? {
            self.start += used;
            let more = self.start < self.buf.len();
            if let Some(admission) = &mut self.admission {
                admission.consumed(more);
            }
            if !more {
                // Nothing left: keep a small buffer for the next frame, and give a large one
                // back (a connection mostly sits idle between requests).
                self.buf.clear();
                self.start = 0;
                if self.buf.capacity() > KEEP_BUFFER_BYTES {
                    self.buf = Vec::new();
                }
            } else if self.buf.capacity() > KEEP_BUFFER_BYTES
                && self.buf.len() - self.start <= KEEP_BUFFER_BYTES
            {
                // The start of the next frame came with a large one: the large buffer goes,
                // as the budget it was paid from has been given back.
                self.buf = self.buf.split_off(self.start);
                self.start = 0;
            }
            return Ok(Some(msg));
        }
        Ok(None)
    }

    /// Reads what the peer sends next into the buffer's spare room, within the frame deadline
    /// if one runs; a reset, a deadline passed or the peer closing is an error.
    async fn read_more(&mut self) -> Result<(), NetError> {
        let deadline = self
            .admission
            .as_ref()
            .and_then(|a| Some((a.deadline()?, a.frame_deadline())));
        let waited = {
            let read = self.half.read_buf(&mut self.buf);
            tokio::pin!(read);
            let ends = &self.ends;
            let read = std::future::poll_fn(|cx| {
                ends.wait_with(cx.waker());
                if ends.is_reset() {
                    return Poll::Ready(Waited::Reset);
                }
                read.as_mut().poll(cx).map(Waited::Read)
            });
            match deadline {
                None => read.await,
                // A read that can complete at once still does, past the deadline: bytes that
                // arrived while the caller was busy count as arrived in time.
                Some((at, after)) => timeout(at.saturating_duration_since(Instant::now()), read)
                    .await
                    .unwrap_or(Waited::Deadline(after)),
            }
        };
        let n = match waited {
            Waited::Read(read) => read.map_err(|source| NetError::Io {
                peer: self.peer.clone(),
                source,
            })?,
            Waited::Reset => return Err(reset_error(&self.peer)),
            Waited::Deadline(after) => {
                return Err(NetError::FrameDeadline {
                    peer: self.peer.clone(),
                    after,
                })
            }
        };
        if n == 0 {
            return Err(NetError::Closed {
                peer: self.peer.clone(),
            });
        }
        if let Some(admission) = &mut self.admission {
            admission.read(Instant::now());
        }
        Ok(())
    }

    /// Makes room in the buffer (which starts with the partial frame, if any) for the next
    /// read: a small chunk while the frame's length is unknown; then room for the rest of the
    /// frame, but never past its declared end, and at most doubling what has arrived, so a
    /// declared length is not trusted with memory before its bytes come. Read straight into the
    /// buffer's spare room: a chunk array on the stack would live in `recv`'s future and be
    /// copied with it on every move.
    fn make_room(&mut self) {
        let len = self.buf.len();
        let goal = room_goal(len, declared_len(&self.buf));
        if goal > self.buf.capacity() {
            self.buf.reserve_exact(goal - len);
        }
    }

    pub fn peer(&self) -> &str {
        &self.peer
    }
}

impl FrameWriter {
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), NetError> {
        if self.ends.is_reset() {
            return Err(reset_error(&self.peer));
        }
        runtime::frame_sent();
        encode_frame_into(msg, &mut self.scratch, self.key.as_deref_mut());
        let io = |source| NetError::Io {
            peer: self.peer.clone(),
            source,
        };
        let written = self.half.write_all(&self.scratch).await;
        if self.scratch.capacity() > KEEP_BUFFER_BYTES {
            self.scratch = Vec::new();
        }
        written.map_err(io)?;
        // Simulated TCP sends only on flush; real TCP must not hold back an acknowledgement.
        self.half.flush().await.map_err(|source| NetError::Io {
            peer: self.peer.clone(),
            source,
        })
    }

    pub fn peer(&self) -> &str {
        &self.peer
    }
}

/// A framed, authenticated connection: both ends proved they hold the cluster secret, and
/// every frame carries a tag of the session's key.
pub struct Connection {
    pub reader: FrameReader,
    pub writer: FrameWriter,
    /// Who the other end proved to be.
    identity: PeerIdentity,
}

/// Both halves of a connection whose handshake has not run yet.
struct Unauthenticated {
    reader: FrameReader,
    writer: FrameWriter,
}

impl Unauthenticated {
    fn new(stream: TcpStream, peer: String) -> Unauthenticated {
        let _ = stream.set_nodelay(true);
        let ends = resets::Ends::of(&stream);
        let (read, write) = tokio::io::split(stream);
        Unauthenticated {
            reader: FrameReader {
                half: read,
                buf: Vec::new(),
                start: 0,
                peer: peer.clone(),
                ends: ends.clone(),
                admission: None,
                key: None,
            },
            writer: FrameWriter {
                half: write,
                scratch: Vec::new(),
                peer,
                ends,
                _slot: None,
                key: None,
            },
        }
    }

    fn auth_error(&self, reason: AuthError) -> NetError {
        NetError::Auth {
            peer: self.writer.peer.clone(),
            reason,
        }
    }

    fn authenticated(mut self, session: auth::Session, identity: PeerIdentity) -> Connection {
        self.reader.key = Some(Box::new(session.recv));
        self.writer.key = Some(Box::new(session.send));
        Connection {
            reader: self.reader,
            writer: self.writer,
            identity,
        }
    }

    /// The client's side of the handshake (see [`auth`]).
    async fn client_handshake(
        mut self,
        credentials: Arc<auth::Credentials>,
    ) -> Result<Connection, NetError> {
        let (handshake, hello) = ClientHandshake::start(credentials);
        self.writer.send(&hello).await?;
        let challenge: auth::Challenge = self.reader.recv().await?;
        let (proof, session, identity) = handshake
            .answer(&challenge)
            .map_err(|e| self.auth_error(e))?;
        self.writer.send(&proof).await?;
        replays::offer_handshake(&self.writer.ends, &self.writer.peer, &hello, &proof);
        Ok(self.authenticated(session, identity))
    }

    /// The server's side of the handshake (see [`auth`]).
    async fn server_handshake(
        mut self,
        credentials: Arc<auth::Credentials>,
    ) -> Result<Connection, NetError> {
        let hello: auth::Hello = self.reader.recv().await?;
        self.server_handshake_from(credentials, hello).await
    }

    /// The server's side of the handshake once the client's hello has arrived.
    async fn server_handshake_from(
        mut self,
        credentials: Arc<auth::Credentials>,
        hello: auth::Hello,
    ) -> Result<Connection, NetError> {
        let (handshake, challenge) =
            ServerHandshake::challenge(credentials, hello).map_err(|e| self.auth_error(e))?;
        self.writer.send(&challenge).await?;
        let proof: auth::Proof = self.reader.recv().await?;
        let (session, identity) = handshake.verify(&proof).map_err(|e| self.auth_error(e))?;
        Ok(self.authenticated(session, identity))
    }
}

/// An accepted connection that has not authenticated yet: the task that serves it must call
/// [`PendingConnection::authenticate`] before it can read a request, so the accept loop never
/// waits on a peer's handshake.
pub struct PendingConnection {
    inner: Unauthenticated,
    /// How long the whole handshake may take.
    deadline: Duration,
}

impl PendingConnection {
    /// A connection accepted by a bare listener (not a [`Server`]): no limits but the
    /// handshake's own, 10 s for it.
    pub fn new(stream: TcpStream, peer: String) -> PendingConnection {
        PendingConnection {
            inner: Unauthenticated::new(stream, peer),
            deadline: ServerLimits::default().frame_deadline,
        }
    }

    pub fn peer(&self) -> &str {
        &self.inner.writer.peer
    }

    /// Runs the server's side of the handshake within the listener's frame deadline: the
    /// connection, once the peer proved it holds the cluster secret (its identity is
    /// [`Connection::peer_identity`]). A refusal is logged with the peer and the reason; no
    /// request frame has been read.
    pub async fn authenticate(self) -> Result<Connection, NetError> {
        let peer = self.peer().to_string();
        let deadline = self.deadline;
        let result = match auth::installed() {
            Err(reason) => Err(NetError::Auth {
                peer: peer.clone(),
                reason,
            }),
            Ok(credentials) => {
                match timeout(deadline, self.inner.server_handshake(credentials)).await {
                    Ok(result) => result,
                    Err(_) => Err(NetError::FrameDeadline {
                        peer: peer.clone(),
                        after: deadline,
                    }),
                }
            }
        };
        if let Err(e) = &result {
            match e {
                // A peer that went away (or a reset) mid-handshake says nothing about it.
                NetError::Closed { .. } | NetError::Io { .. } => {
                    tracing::debug!(%peer, error = %e, "connection closed during its handshake")
                }
                _ => warn!(%peer, reason = %e, "connection from {peer} refused before any request"),
            }
        }
        result
    }
}

impl PendingConnection {
    /// The planted bug `handshake-skipped-for-control`: like [`PendingConnection::authenticate`],
    /// except that a first frame that is no hello but decodes as a `T` that `plain` accepts is
    /// served as it is, unauthenticated: the connection then carries plain frames both ways,
    /// and the request comes back with it.
    pub async fn authenticate_or_plain<T: DeserializeOwned>(
        self,
        plain: impl Fn(&T) -> bool,
    ) -> Result<(Connection, Option<T>), NetError> {
        let peer = self.peer().to_string();
        let credentials = auth::installed().map_err(|reason| NetError::Auth {
            peer: peer.clone(),
            reason,
        })?;
        let deadline = self.deadline;
        let mut inner = self.inner;
        let served =
            async move {
                let payload = inner.reader.recv_with(|p, _| Ok(p.to_vec())).await?;
                if let Ok(hello) = super::codec::decode::<auth::Hello>(&payload) {
                    let conn = inner.server_handshake_from(credentials, hello).await?;
                    return Ok((conn, None));
                }
                match super::codec::decode::<T>(&payload) {
                    Ok(request) if plain(&request) => Ok((
                        Connection {
                            reader: inner.reader,
                            writer: inner.writer,
                            identity: PeerIdentity::Client,
                        },
                        Some(request),
                    )),
                    _ => Err(inner
                        .auth_error(AuthError::Malformed("the first frame is no hello".into()))),
                }
            };
        match timeout(deadline, served).await {
            Ok(result) => result,
            Err(_) => Err(NetError::FrameDeadline {
                peer,
                after: deadline,
            }),
        }
    }
}

impl Connection {
    /// Connects to `addr` and authenticates both ends with this process's credentials, failing
    /// after `connect_timeout` (the handshake included).
    pub async fn connect(addr: &str, connect_timeout: Duration) -> Result<Connection, NetError> {
        Self::connect_with(addr, connect_timeout, connect_timeout).await
    }

    /// [`Connection::connect`], with `connect_timeout` for the TCP connection and
    /// `handshake_timeout` for the handshake after it: a caller that would have waited that
    /// long for its first answer anyway (a process that accepts but is stalled answers the
    /// handshake no sooner than a request).
    pub async fn connect_with(
        addr: &str,
        connect_timeout: Duration,
        handshake_timeout: Duration,
    ) -> Result<Connection, NetError> {
        let peer = addr.to_string();
        let credentials = auth::installed().map_err(|reason| NetError::Auth {
            peer: peer.clone(),
            reason,
        })?;
        let stream = match timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(NetError::Connect { peer, source }),
            Err(_) => {
                return Err(NetError::Timeout {
                    peer,
                    after: connect_timeout,
                })
            }
        };
        let handshake = Unauthenticated::new(stream, peer.clone()).client_handshake(credentials);
        match timeout(handshake_timeout, handshake).await {
            Ok(result) => result,
            Err(_) => Err(NetError::Timeout {
                peer,
                after: handshake_timeout,
            }),
        }
    }

    /// Who the other end proved to be.
    pub fn peer_identity(&self) -> PeerIdentity {
        self.identity
    }

    /// The next frame this connection would send for `msg` (tagged, and counted as sent),
    /// without sending it: for tests that deliver a frame in pieces.
    pub fn encode_next<T: Serialize>(&mut self, msg: &T) -> Vec<u8> {
        let mut frame = Vec::new();
        encode_frame_into(msg, &mut frame, self.writer.key.as_deref_mut());
        frame
    }

    /// The socket under the connection (bytes it buffered are lost): for tests that write raw
    /// bytes on an authenticated connection.
    pub fn into_stream(self) -> TcpStream {
        self.reader.half.unsplit(self.writer.half)
    }

    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), NetError> {
        self.writer.send(msg).await
    }

    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, NetError> {
        self.reader.recv().await
    }

    /// Sends a request and waits for one response, up to `within`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &mut self,
        req: &Req,
        within: Duration,
    ) -> Result<Resp, NetError> {
        match timeout(within, async {
            self.send(req).await?;
            replays::offer(
                &self.writer.ends,
                &self.writer.peer,
                self.writer.scratch.get(HEADER_BYTES..).unwrap_or_default(),
            );
            self.recv().await
        })
        .await
        {
            Ok(result) => result,
            Err(_) => Err(NetError::Timeout {
                peer: self.writer.peer.clone(),
                after: within,
            }),
        }
    }

    pub fn peer(&self) -> &str {
        &self.writer.peer
    }
}

/// Binds a listener; the error names the address.
pub async fn listen(addr: &str) -> Result<TcpListener, NetError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NetError::Connect {
            peer: addr.to_string(),
            source,
        })
}

/// How often a listener at its cap says so: a flood of connections must not become a flood of
/// log lines.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// A listener whose connections are held to [`ServerLimits`].
pub struct Server {
    listener: TcpListener,
    shared: Arc<Listener>,
    addr: String,
    /// Connections refused at the cap since the last warning, and when that was.
    refused_quietly: u64,
    warned_at: Option<Instant>,
}

impl Server {
    /// Binds `addr`; the error names the address.
    pub async fn bind(addr: &str, limits: ServerLimits) -> Result<Server, NetError> {
        Ok(Server {
            listener: listen(addr).await?,
            shared: Arc::new(Listener::new(limits)),
            addr: addr.to_string(),
            refused_quietly: 0,
            warned_at: None,
        })
    }

    /// The next connection within the cap, still to authenticate (by the task that serves it).
    /// One over the cap is accepted and closed at once, which its peer sees as the connection
    /// closed before any answer. An error is the
    /// listener's own (out of file descriptors, say); the caller waits a little and goes on.
    pub async fn accept(&mut self) -> io::Result<PendingConnection> {
        loop {
            let (stream, peer) = self.listener.accept().await?;
            if let Some(slot) = self.shared.open_slot() {
                let mut inner = Unauthenticated::new(stream, peer.to_string());
                let slot = Arc::new(slot);
                inner.writer._slot = Some(Arc::clone(&slot));
                inner.reader.admission = Some(Admission::new(slot, Instant::now()));
                return Ok(PendingConnection {
                    inner,
                    deadline: self.shared.limits.frame_deadline,
                });
            }
            drop(stream);
            self.refused(&peer.to_string());
        }
    }

    fn refused(&mut self, peer: &str) {
        let now = Instant::now();
        if self
            .warned_at
            .is_some_and(|at| now.saturating_duration_since(at) < REFUSAL_LOG_EVERY)
        {
            self.refused_quietly += 1;
            return;
        }
        warn!(
            listen = %self.addr,
            %peer,
            max_connections = self.shared.limits.max_connections,
            refused_since_last_warning = self.refused_quietly,
            "connection from {peer} closed at once: the listener is at its cap of {} connections",
            self.shared.limits.max_connections
        );
        self.warned_at = Some(now);
        self.refused_quietly = 0;
    }

    /// Accepted connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::Acquire)
    }

    /// Budget bytes held by frames in progress now.
    pub fn budget_used(&self) -> usize {
        self.shared.budget_used.load(Ordering::Acquire)
    }
}

/// Exponential backoff between reconnection attempts: `min`, doubling up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    not_before: Option<Instant>,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
            not_before: None,
        }
    }

    /// Waits until the next attempt is allowed.
    pub async fn wait(&self) {
        if let Some(at) = self.not_before {
            let now = Instant::now();
            if at > now {
                sleep(at - now).await;
            }
        }
    }

    pub fn failed(&mut self) {
        self.not_before = Some(Instant::now() + self.next);
        self.next = (self.next * 2).min(self.max);
    }

    pub fn succeeded(&mut self) {
        self.next = self.min;
        self.not_before = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Msg {
        Hello { name: String, n: u64 },
        Bye,
    }

    #[test]
    fn frames_round_trip_and_wait_for_more_bytes() {
        let frame = encode_frame(&Msg::Hello {
            name: "sdw1".into(),
            n: 7,
        });
        for cut in 0..frame.len() {
            assert!(decode_frame::<Msg>(&frame[..cut], "p").unwrap().is_none());
        }
        let (msg, used) = decode_frame::<Msg>(&frame, "p").unwrap().unwrap();
        assert_eq!(
            msg,
            Msg::Hello {
                name: "sdw1".into(),
                n: 7
            }
        );
        assert_eq!(used, frame.len());
    }

    #[test]
    fn a_flipped_bit_is_a_checksum_error_naming_the_peer() {
        let mut frame = encode_frame(&Msg::Bye);
        let last = frame.len() - 1;
        frame[last] ^= 0x40;
        let err = decode_frame::<Msg>(&frame, "sdw2:6000").unwrap_err();
        assert!(matches!(err, NetError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("sdw2:6000"));
    }

    #[test]
    fn an_absurd_length_is_refused_before_allocating() {
        let mut frame = vec![0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0];
        frame.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(
            decode_frame::<Msg>(&frame, "p").unwrap_err(),
            NetError::TooLarge { .. }
        ));
    }

    #[test]
    fn garbage_with_a_valid_checksum_is_a_decode_error() {
        let payload = [9u8, 9, 9];
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        let err = decode_frame::<Msg>(&frame, "p").unwrap_err();
        assert!(matches!(err, NetError::Decode { .. }), "{err}");
    }

    /// Small limits, so that tests can name every case.
    fn small() -> ServerLimits {
        ServerLimits {
            max_connections: 2,
            first_frame_max_bytes: 100,
            frame_max_bytes: 1000,
            frame_budget_bytes: 1500,
            frame_deadline: Duration::from_secs(10),
        }
    }

    fn accepted(listener: &Arc<Listener>) -> Admission {
        let slot = listener.open_slot().expect("under the cap");
        Admission::new(Arc::new(slot), Instant::now())
    }

    #[test]
    fn the_first_frame_is_held_to_the_first_frame_limit_and_later_ones_to_the_frame_limit() {
        let l = small();
        assert_eq!(l.admit(false, 0), Ok(Admit::Free));
        assert_eq!(l.admit(false, 100), Ok(Admit::Free));
        assert_eq!(l.admit(false, 101), Err(Refusal::FirstFrame { limit: 100 }));
        assert_eq!(
            l.admit(false, 60 << 20),
            Err(Refusal::FirstFrame { limit: 100 })
        );
        assert_eq!(l.admit(true, 100), Ok(Admit::Free));
        assert_eq!(l.admit(true, 101), Ok(Admit::FromBudget));
        assert_eq!(l.admit(true, 1000), Ok(Admit::FromBudget));
        assert_eq!(l.admit(true, 1001), Err(Refusal::Frame { limit: 1000 }));
        // A frame limit above the hard one is the hard one.
        let loose = ServerLimits {
            frame_max_bytes: usize::MAX,
            ..l
        };
        assert_eq!(
            loose.admit(true, MAX_FRAME_BYTES + 1),
            Err(Refusal::Frame {
                limit: MAX_FRAME_BYTES
            })
        );
    }

    #[test]
    fn refusals_are_errors_naming_the_peer_and_the_limit() {
        let listener = Arc::new(Listener::new(small()));
        let mut a = accepted(&listener);
        let e = a.admit(60 << 20, "10.0.0.9:4711").unwrap_err();
        assert!(matches!(e, NetError::FirstFrameTooLarge { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("10.0.0.9:4711") && text.contains("100"),
            "{text}"
        );
        a.consumed(false);
        let e = a.admit(1001, "10.0.0.9:4711").unwrap_err();
        assert!(matches!(e, NetError::TooLarge { limit: 1000, .. }), "{e}");
        assert!(e.to_string().contains("10.0.0.9:4711"), "{e}");
        assert_eq!(listener.budget_used.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_large_frame_is_paid_from_the_budget_once_and_given_back_when_consumed() {
        let listener = Arc::new(Listener::new(small()));
        let mut a = accepted(&listener);
        a.admit(50, "p").unwrap();
        a.consumed(false);
        assert!(a.identified);
        // `recv` admits the same header each time it is called: it is paid for once.
        for _ in 0..3 {
            a.admit(800, "p").unwrap();
        }
        assert_eq!(listener.budget_used.load(Ordering::Acquire), 800);
        // Another connection's large frame finds 700 left.
        let mut b = accepted(&listener);
        b.consumed(false);
        let e = b.admit(701, "q").unwrap_err();
        assert!(
            matches!(
                e,
                NetError::OverBudget {
                    free: 700,
                    budget: 1500,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains('q'), "{e}");
        b.admit(700, "q").unwrap();
        assert_eq!(listener.budget_used.load(Ordering::Acquire), 1500);
        // A small frame needs no budget, even with none left.
        let mut c = accepted_over_cap_free(&listener);
        c.admit(100, "r").unwrap();
        a.consumed(false);
        assert_eq!(listener.budget_used.load(Ordering::Acquire), 700);
        // A dropped connection gives its frame's share back.
        drop(b);
        assert_eq!(listener.budget_used.load(Ordering::Acquire), 0);
        drop((a, c));
        assert_eq!(listener.open.load(Ordering::Acquire), 0);
    }

    /// A connection counted beyond the cap, for budget tests only.
    fn accepted_over_cap_free(listener: &Arc<Listener>) -> Admission {
        listener.open.fetch_add(1, Ordering::AcqRel);
        Admission::new(Arc::new(Slot(Arc::clone(listener))), Instant::now())
    }

    #[test]
    fn the_cap_counts_open_connections_until_both_halves_are_dropped() {
        let listener = Arc::new(Listener::new(small()));
        let first = Arc::new(listener.open_slot().unwrap());
        let writer_half = Arc::clone(&first);
        let second = listener.open_slot().unwrap();
        assert!(listener.open_slot().is_none(), "at the cap of 2");
        drop(second);
        let third = listener.open_slot().expect("one went");
        drop(first);
        assert!(
            listener.open_slot().is_none(),
            "the writer half still holds it"
        );
        drop(writer_half);
        assert!(listener.open_slot().is_some());
        drop(third);
        assert_eq!(listener.open.load(Ordering::Acquire), 0);
    }

    #[test]
    fn the_deadline_runs_from_the_first_byte_of_a_frame() {
        let listener = Arc::new(Listener::new(small()));
        let mut a = accepted(&listener);
        assert_eq!(a.deadline(), None, "an idle connection has none");
        let t0 = a.last_read;
        a.read(t0 + Duration::from_secs(1));
        let due = t0 + Duration::from_secs(11);
        assert_eq!(a.deadline(), Some(due));
        a.read(t0 + Duration::from_secs(5));
        assert_eq!(a.deadline(), Some(due), "more bytes do not move it");
        a.consumed(false);
        assert_eq!(a.deadline(), None, "the frame is done and nothing follows");
        a.read(t0 + Duration::from_secs(20));
        a.consumed(true);
        assert_eq!(
            a.deadline(),
            Some(t0 + Duration::from_secs(30)),
            "the next frame's first bytes came with the last read"
        );
    }

    #[test]
    fn the_stated_bounds() {
        let per_connection = (16 << 10) + HEADER_BYTES + READ_CHUNK_BYTES;
        assert_eq!(
            ServerLimits::segment().receive_bound_bytes(),
            750 * per_connection + (32 << 20)
        );
        assert_eq!(
            ServerLimits::coordinator().receive_bound_bytes(),
            500 * per_connection + (32 << 20)
        );
        // 44.1 MiB and 40.1 MiB, as the module says.
        assert_eq!(
            (ServerLimits::segment().receive_bound_bytes() * 10) >> 20,
            441
        );
        assert_eq!(
            (ServerLimits::coordinator().receive_bound_bytes() * 10) >> 20,
            400
        );
    }

    #[test]
    fn a_small_frame_gets_a_read_chunk_of_room() {
        assert_eq!(room_goal(0, None), READ_CHUNK_BYTES);
        assert_eq!(room_goal(3, None), 3 + READ_CHUNK_BYTES);
        assert_eq!(room_goal(10, Some(20)), 10 + READ_CHUNK_BYTES);
        assert_eq!(room_goal(100, Some(1000)), HEADER_BYTES + 1000);
        assert_eq!(room_goal(600, Some(1000)), 600 + READ_CHUNK_BYTES);
        // A large frame: room grows with what has arrived, up to its end.
        assert_eq!(room_goal(600, Some(60 << 20)), 600 + READ_LARGEST_BYTES);
        assert_eq!(room_goal(1 << 20, Some(60 << 20)), 2 << 20);
        assert_eq!(
            room_goal(59 << 20, Some(60 << 20)),
            HEADER_BYTES + (60 << 20)
        );
    }

    proptest::proptest! {
        /// The reader never makes room past the frame's declared end (but for one read chunk)
        /// nor more than double what has arrived (and a first allowance).
        #[test]
        fn room_never_outgrows_the_declared_frame(declared in 0usize..(64 << 20), have in 0usize..(64 << 20)) {
            let len = have.min(HEADER_BYTES + declared).saturating_sub(1).max(4);
            let goal = room_goal(len, Some(declared));
            proptest::prop_assert!(goal > len);
            proptest::prop_assert!(goal <= (HEADER_BYTES + declared).max(len + READ_CHUNK_BYTES));
            proptest::prop_assert!(goal <= 2 * len + READ_LARGEST_BYTES);
        }

        #[test]
        fn no_byte_string_makes_the_decoder_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode_frame::<Msg>(&bytes, "p");
        }
    }
}
