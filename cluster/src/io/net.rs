//! The network half of the I/O seam: length-prefixed, checksummed frames over
//! `tokio::net::TcpStream` (real TCP in production, madsim's simulated TCP in the simulator).
//!
//! A frame is `[len: u32 LE][crc32c(payload): u32 LE][payload]`, the payload a postcard-encoded
//! message. A bad length, checksum or encoding is an error naming the peer and the rule, never
//! a panic; the connection is then dropped. Every frame is flushed as it is written: simulated
//! TCP sends only on flush, and real TCP should not sit on a commit acknowledgement.

use std::future::Future;
use std::io;
use std::task::Poll;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};

use super::runtime::{sleep, timeout, Instant};

/// Frames larger than this are refused (a corrupt length must not allocate gigabytes).
pub const MAX_FRAME_BYTES: usize = 64 << 20;
const HEADER_BYTES: usize = 8;
/// Room made in a reader's buffer before a read when the next frame's length is not known yet.
const READ_CHUNK_BYTES: usize = 512;
/// The most room made before one read: a frame's declared length is not trusted with more.
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
    #[error("frame from {peer} declares {len} bytes, over the limit of {MAX_FRAME_BYTES}")]
    TooLarge { peer: String, len: usize },
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

/// Encodes a message into one frame.
pub fn encode_frame<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_frame_into(msg, &mut frame);
    frame
}

/// Encodes a message into one frame in `out`, which is cleared first: the payload is written
/// once, after room for the header, which is filled in last.
fn encode_frame_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    crate::proto::encode_append(msg, out);
    let len = out.len() - HEADER_BYTES;
    assert!(
        len <= MAX_FRAME_BYTES,
        "message of {len} bytes exceeds the frame limit"
    );
    let crc = crc32c::crc32c(&out[HEADER_BYTES..]);
    out[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Parses the first frame of `buf` if it is complete: `Ok(Some((message, frame_len)))`.
pub fn decode_frame<T: DeserializeOwned>(
    buf: &[u8],
    peer: &str,
) -> Result<Option<(T, usize)>, NetError> {
    if buf.len() < HEADER_BYTES {
        return Ok(None);
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(NetError::TooLarge {
            peer: peer.to_string(),
            len,
        });
    }
    if buf.len() < HEADER_BYTES + len {
        return Ok(None);
    }
    let expected = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    let payload = &buf[HEADER_BYTES..HEADER_BYTES + len];
    let actual = crc32c::crc32c(payload);
    if actual != expected {
        return Err(NetError::Checksum {
            peer: peer.to_string(),
            expected,
            actual,
        });
    }
    let msg = postcard::from_bytes(payload).map_err(|e| NetError::Decode {
        peer: peer.to_string(),
        what: std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("message"),
        reason: e.to_string(),
    })?;
    Ok(Some((msg, HEADER_BYTES + len)))
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
}

/// The sending half of a connection.
pub struct FrameWriter {
    half: WriteHalf<TcpStream>,
    /// Where a frame is encoded before it is written.
    scratch: Vec<u8>,
    peer: String,
    ends: resets::Ends,
}

/// Connection resets: every established connection with an end on one host fails at once, as
/// when a middlebox or a flapping switch port resets them, while listeners and new connections
/// work on. Only the simulator's nemesis injects them. The registry is per thread, as a
/// simulated world runs on one thread; a connection compares against the count of resets when
/// it was opened, so what an earlier world on the thread did does not matter.
pub mod resets {
    use std::collections::BTreeMap;
    use std::net::IpAddr;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, Weak};
    use std::task::Waker;

    use tokio::net::TcpStream;

    /// One connection as the registry knows it: its ends with the resets each had seen when it
    /// opened, and where its reader leaves its waker while it waits for bytes. The waker stays
    /// until a reset takes it or the connection is dropped, so a reset may wake a task that has
    /// since stopped reading; that task looks, finds nothing to do, and waits on.
    struct Opened {
        seen: [Option<(IpAddr, u64)>; 2],
        /// Resets of every host when it opened.
        total_seen: u64,
        waker: Mutex<Option<Waker>>,
    }

    impl Opened {
        fn wake(&self) {
            if let Some(w) = self.waker.lock().expect("reset slot poisoned").take() {
                w.wake();
            }
        }
    }

    #[derive(Default)]
    struct State {
        /// Resets per host.
        by_host: BTreeMap<IpAddr, u64>,
        /// The open connections (dropped ones are swept out now and then).
        open: Vec<Weak<Opened>>,
        /// Sweep `open` when it holds this many.
        sweep_at: usize,
    }

    /// Resets per host, and their total: a connection that opened after the last reset of any
    /// host needs no look at the map.
    #[derive(Default)]
    struct Resets {
        state: Mutex<State>,
        total: AtomicU64,
    }

    type Registry = Arc<Resets>;

    thread_local! {
        static RESETS: Registry = Arc::default();
    }

    /// Resets every established connection with an end at `ip`.
    pub fn reset_host(ip: IpAddr) {
        let woken: Vec<Arc<Opened>> = RESETS.with(|r| {
            r.total.fetch_add(1, Ordering::Relaxed);
            let mut state = r.state.lock().expect("resets poisoned");
            *state.by_host.entry(ip).or_default() += 1;
            state
                .open
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|c| c.seen.iter().flatten().any(|(end, _)| *end == ip))
                .collect()
        });
        for connection in woken {
            connection.wake();
        }
    }

    /// A connection's two ends, shared by its reader and its writer.
    #[derive(Clone)]
    pub(super) struct Ends {
        registry: Registry,
        opened: Arc<Opened>,
    }

    impl Ends {
        pub(super) fn of(stream: &TcpStream) -> Ends {
            let registry = RESETS.with(Arc::clone);
            let ips = [stream.local_addr(), stream.peer_addr()].map(|a| a.ok().map(|a| a.ip()));
            let mut state = registry.state.lock().expect("resets poisoned");
            let opened = Arc::new(Opened {
                seen: ips.map(|ip| ip.map(|ip| (ip, state.by_host.get(&ip).copied().unwrap_or(0)))),
                total_seen: registry.total.load(Ordering::Relaxed),
                waker: Mutex::new(None),
            });
            if state.open.len() >= state.sweep_at {
                state.open.retain(|c| c.strong_count() > 0);
                state.sweep_at = (2 * state.open.len()).max(64);
            }
            state.open.push(Arc::downgrade(&opened));
            drop(state);
            Ends { registry, opened }
        }

        /// Leaves `waker` to be woken by a reset of either end (a clone only when the waiting
        /// task changes).
        pub(super) fn wait_with(&self, waker: &Waker) {
            let mut slot = self.opened.waker.lock().expect("reset slot poisoned");
            if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }

        pub(super) fn is_reset(&self) -> bool {
            self.registry.total.load(Ordering::Relaxed) != self.opened.total_seen && {
                let state = self.registry.state.lock().expect("resets poisoned");
                self.opened
                    .seen
                    .iter()
                    .flatten()
                    .any(|(ip, n)| state.by_host.get(ip).copied().unwrap_or(0) > *n)
            }
        }
    }
}

fn reset_error(peer: &str) -> NetError {
    NetError::Io {
        peer: peer.to_string(),
        source: io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer"),
    }
}

impl FrameReader {
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, NetError> {
        loop {
            if let Some((msg, used)) = decode_frame(&self.buf[self.start..], &self.peer)? {
                self.start += used;
                if self.start == self.buf.len() {
                    // Nothing left: keep a small buffer for the next frame, and give a large one
                    // back (a connection mostly sits idle between requests).
                    self.buf.clear();
                    self.start = 0;
                    if self.buf.capacity() > KEEP_BUFFER_BYTES {
                        self.buf = Vec::new();
                    }
                }
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
            // Read straight into the buffer's spare room: a chunk array on the stack would live
            // in this future's state and be copied with it on every move. Once the header is in,
            // make room for the whole frame; before, for a small chunk.
            let missing = match self.buf.get(..4) {
                Some(len) => {
                    let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
                    (HEADER_BYTES + len).saturating_sub(self.buf.len())
                }
                None => 0,
            };
            self.buf
                .reserve(missing.clamp(READ_CHUNK_BYTES, READ_LARGEST_BYTES));
            let read = {
                let read = self.half.read_buf(&mut self.buf);
                tokio::pin!(read);
                let ends = &self.ends;
                std::future::poll_fn(|cx| {
                    ends.wait_with(cx.waker());
                    if ends.is_reset() {
                        return Poll::Ready(None);
                    }
                    read.as_mut().poll(cx).map(Some)
                })
                .await
            };
            let Some(read) = read else {
                return Err(reset_error(&self.peer));
            };
            let n = read.map_err(|source| NetError::Io {
                peer: self.peer.clone(),
                source,
            })?;
            if n == 0 {
                return Err(NetError::Closed {
                    peer: self.peer.clone(),
                });
            }
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
        encode_frame_into(msg, &mut self.scratch);
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

/// A framed connection.
pub struct Connection {
    pub reader: FrameReader,
    pub writer: FrameWriter,
}

impl Connection {
    pub fn new(stream: TcpStream, peer: String) -> Connection {
        let _ = stream.set_nodelay(true);
        let ends = resets::Ends::of(&stream);
        let (read, write) = tokio::io::split(stream);
        Connection {
            reader: FrameReader {
                half: read,
                buf: Vec::new(),
                start: 0,
                peer: peer.clone(),
                ends: ends.clone(),
            },
            writer: FrameWriter {
                half: write,
                scratch: Vec::new(),
                peer,
                ends,
            },
        }
    }

    /// Connects to `addr`, failing after `connect_timeout`.
    pub async fn connect(addr: &str, connect_timeout: Duration) -> Result<Connection, NetError> {
        let peer = addr.to_string();
        match timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => Ok(Connection::new(stream, peer)),
            Ok(Err(source)) => Err(NetError::Connect { peer, source }),
            Err(_) => Err(NetError::Timeout {
                peer,
                after: connect_timeout,
            }),
        }
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

    proptest::proptest! {
        #[test]
        fn no_byte_string_makes_the_decoder_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode_frame::<Msg>(&bytes, "p");
        }
    }
}
