//! The progress bar of long runs: seeds done, failing seeds, rate, on standard error. Drawn only
//! when standard error is a terminal and the output is for people (not `--json`), so scripts and
//! CI logs never see it.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    failing: u64,
}

impl Progress {
    /// A bar over `total` seeds; `quiet` (machine output) or a non-terminal standard error
    /// leaves it undrawn.
    pub fn new(total: u64, quiet: bool) -> Progress {
        let draw = !quiet && std::io::stderr().is_terminal();
        let bar = draw.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} seeds, {msg}, {per_sec}, eta {eta}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar.set_message("0 failing");
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress { bar, failing: 0 }
    }

    pub fn is_drawn(&self) -> bool {
        self.bar.is_some()
    }

    /// One seed finished.
    pub fn seed_done(&mut self, failed: bool) {
        if failed {
            self.failing += 1;
        }
        if let Some(bar) = &self.bar {
            if failed {
                bar.set_message(format!("{} failing", self.failing));
            }
            bar.inc(1);
        }
    }

    /// Seeds that will not run after all (a hunt stopped early).
    pub fn skip(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    /// Runs `print` (which writes lines to the terminal) with the bar out of the way.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Removes the bar before the closing summary.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_output_never_gets_a_bar() {
        let mut p = Progress::new(10, true);
        assert!(!p.is_drawn());
        p.seed_done(true);
        p.seed_done(false);
        assert_eq!(p.failing, 1);
        assert_eq!(p.suspend(|| 7), 7);
    }
}
