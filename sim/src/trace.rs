//! Tracing for simulated runs: every log line carries simulated time; each seed's lines are
//! captured in memory on the thread that runs it (kept only if the seed fails); and every event
//! at INFO or above feeds the seed's trace hash, whatever `RUST_LOG` says, so a replay at debug
//! level still yields the same hash.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io;
use std::sync::Once;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

struct Capture {
    log: Vec<u8>,
    hash: Fnv,
}

/// FNV-1a, 64 bit: small, fast and the same in every build.
#[derive(Clone, Copy)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn write_u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }
}

/// Installs the global subscriber once. Log level from `RUST_LOG` (default `default_level`).
pub fn install(default_level: &str) {
    static ONCE: Once = Once::new();
    let default_level = default_level.to_string();
    ONCE.call_once(move || {
        let filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_timer(SimTime)
            .with_writer(CaptureWriter)
            .with_filter(filter);
        let hash = HashLayer.with_filter(LevelFilter::INFO);
        let _ = tracing_subscriber::registry()
            .with(fmt)
            .with(hash)
            .try_init();
    });
}

/// Starts capturing this thread's log and trace hash.
pub fn begin_capture() {
    CAPTURE.with(|c| {
        *c.borrow_mut() = Some(Capture {
            log: Vec::new(),
            hash: Fnv::default(),
        })
    });
}

/// Feeds harness-side facts (history, faults) into the trace hash.
pub fn hash_fact(fact: &str) {
    CAPTURE.with(|c| {
        if let Some(cap) = c.borrow_mut().as_mut() {
            cap.hash.write(fact.as_bytes());
            cap.hash.write(b"\n");
        }
    });
}

/// Ends capturing; returns the log and the trace hash.
pub fn end_capture() -> (Vec<u8>, u64) {
    CAPTURE.with(|c| {
        c.borrow_mut()
            .take()
            .map(|cap| (cap.log, cap.hash.0))
            .unwrap_or_default()
    })
}

fn sim_elapsed() -> Option<std::time::Duration> {
    madsim::time::TimeHandle::try_current().map(|t| t.elapsed())
}

struct SimTime;

impl FormatTime for SimTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        match sim_elapsed() {
            Some(d) => write!(w, "{:>10.6}s", d.as_secs_f64()),
            None => write!(w, "{:>11}", "-"),
        }
    }
}

#[derive(Clone, Copy)]
struct CaptureWriter;

impl io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        CAPTURE.with(|c| match c.borrow_mut().as_mut() {
            Some(cap) => cap.log.extend_from_slice(buf),
            None => {
                let _ = io::stderr().write(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CaptureWriter {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> CaptureWriter {
        CaptureWriter
    }
}

struct HashLayer;

struct FieldText(String);

impl Visit for FieldText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl<S: Subscriber> Layer<S> for HashLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        CAPTURE.with(|c| {
            if let Some(cap) = c.borrow_mut().as_mut() {
                let mut text = FieldText(String::new());
                event.record(&mut text);
                let meta = event.metadata();
                cap.hash
                    .write_u64(sim_elapsed().map(|d| d.as_nanos() as u64).unwrap_or(0));
                cap.hash.write(meta.target().as_bytes());
                cap.hash.write(level_tag(*meta.level()));
                cap.hash.write(text.0.as_bytes());
            }
        });
    }
}

fn level_tag(level: Level) -> &'static [u8] {
    match level {
        Level::ERROR => b"E",
        Level::WARN => b"W",
        Level::INFO => b"I",
        Level::DEBUG => b"D",
        Level::TRACE => b"T",
    }
}
