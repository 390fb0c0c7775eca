//! Tracing for simulated runs: every log line carries simulated time; each seed's lines are
//! captured in memory on the thread that runs it (kept only if the seed fails); every event
//! at INFO or above feeds the seed's trace hash, whatever `RUST_LOG` says, so a replay at debug
//! level still yields the same hash. Logs are for people: what the checkers and the failover
//! figures read comes as typed facts (`crate::observer`), never from log text. A run whose log
//! nobody will read goes without it ([`quietly`]): same hash.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io;
use std::sync::Once;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::random::Fnv;

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

struct Capture {
    log: Vec<u8>,
    hash: Fnv,
}

/// Installs the global subscriber once. Log level from `RUST_LOG` (default `default_level`).
pub fn install(default_level: &str) {
    static ONCE: Once = Once::new();
    let default_level = default_level.to_string();
    ONCE.call_once(move || {
        let directives =
            std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| default_level.clone());
        let filter =
            EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(default_level));
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_timer(SimTime)
            .with_writer(CaptureWriter);
        let _ = tracing_subscriber::registry()
            .with(SimLayer {
                fmt,
                // Only span directives (`[span{field=value}]`) make the filter follow spans.
                filter_follows_spans: directives.contains('['),
                filter,
            })
            .try_init();
    });
}

/// The simulator's one layer: the log (every event `RUST_LOG` enables, formatted into the
/// seed's capture), the trace hash and the failover milestones (every event at INFO or above,
/// whatever `RUST_LOG` says).
///
/// One unfiltered layer rather than three with per-layer filters: with per-layer filters, every
/// poll of an instrumented future (every instance's tasks run inside their instance's span)
/// looked the span up in the registry once per filtered layer on entering and again on leaving;
/// here entering and leaving a span costs the registry's own push and pop.
struct SimLayer<F> {
    fmt: F,
    filter: EnvFilter,
    filter_follows_spans: bool,
}

/// Whether an event feeds the trace hash.
fn always_seen(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() <= Level::INFO
}

impl<S, F> Layer<S> for SimLayer<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    F: Layer<S>,
{
    fn register_callsite(&self, meta: &'static tracing::Metadata<'static>) -> Interest {
        if always_seen(meta) {
            return Interest::always();
        }
        let interest = Filter::<S>::callsite_enabled(&self.filter, meta);
        if interest.is_never() {
            Interest::never()
        } else {
            interest
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>, ctx: Context<'_, S>) -> bool {
        always_seen(meta) || Filter::enabled(&self.filter, meta, &ctx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(
            Filter::<S>::max_level_hint(&self.filter)
                .unwrap_or(LevelFilter::TRACE)
                .max(LevelFilter::INFO),
        )
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if self.filter_follows_spans {
            Filter::on_new_span(&self.filter, attrs, id, ctx.clone());
        }
        self.fmt.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, id: &Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        if self.filter_follows_spans {
            Filter::on_record(&self.filter, id, values, ctx.clone());
        }
        self.fmt.on_record(id, values, ctx);
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.fmt.on_follows_from(id, follows, ctx);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if self.filter_follows_spans {
            Filter::on_enter(&self.filter, id, ctx.clone());
        }
        self.fmt.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if self.filter_follows_spans {
            Filter::on_exit(&self.filter, id, ctx.clone());
        }
        self.fmt.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if self.filter_follows_spans {
            Filter::on_close(&self.filter, id.clone(), ctx.clone());
        }
        self.fmt.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.fmt.on_id_change(old, new, ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if always_seen(meta) {
            hash_event(event);
        }
        if Filter::enabled(&self.filter, meta, &ctx) {
            self.fmt.on_event(event, ctx);
        }
    }
}

/// The subscriber of a run whose log nobody reads (a sweep's passing seed, a hunt, a
/// benchmark): it feeds the trace hash exactly as [`SimLayer`] does,
/// and nothing else. Every span is disabled, so the simulator's per-task spans (madsim makes one
/// for every task and enters it on every poll) and the cluster's instance spans cost nothing,
/// and no line is formatted. A failing seed runs again with the log (see `runner::run_seed`);
/// the trace hash is the same in both, which `hasim run --check-determinism` checks.
struct Quiet;

impl Subscriber for Quiet {
    fn register_callsite(&self, meta: &'static tracing::Metadata<'static>) -> Interest {
        if self.enabled(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.is_event() && always_seen(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::INFO)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Never called: no span is enabled.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        hash_event(event);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Runs `f` on this thread with the [`Quiet`] subscriber.
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
    tracing::subscriber::with_default(Quiet, f)
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

struct FieldText(String);

impl Visit for FieldText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

/// Feeds an event (its simulated time, level and fields) into the seed's trace hash.
fn hash_event(event: &Event<'_>) {
    CAPTURE.with(|c| {
        if let Some(cap) = c.borrow_mut().as_mut() {
            let mut text = FieldText(String::new());
            event.record(&mut text);
            let meta = event.metadata();
            // Not the event's target, a module path: moving code between modules changes no
            // behaviour, and must not change any seed's hash.
            cap.hash
                .write_u64(sim_elapsed().map(|d| d.as_nanos() as u64).unwrap_or(0));
            cap.hash.write(level_tag(*meta.level()));
            cap.hash.write(text.0.as_bytes());
        }
    });
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

/// The first log line that differs between two runs of one seed, ignoring madsim's task ids
/// (a process-wide counter that differs between runs in one process by design).
pub fn first_divergence(a: &[u8], b: &[u8]) -> String {
    fn strip(line: &str) -> String {
        let mut out = String::new();
        let mut rest = line;
        while let Some(i) = rest.find("task{id=") {
            out.push_str(&rest[..i]);
            rest = rest[i..].split_once('}').map(|(_, r)| r).unwrap_or("");
        }
        out.push_str(rest);
        out
    }
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    for (n, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if strip(x) != strip(y) {
            return format!("line {}:\n    first run:  {x}\n    second run: {y}", n + 1);
        }
    }
    "the logs agree line by line (the difference is in events below the log level; rerun with RUST_LOG=debug)".to_string()
}
