//! Progress display for long steps: a spinner with elapsed time on a
//! terminal, plain lines otherwise (CI logs, pipes).

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Several steps can run at once (two guests boot in parallel).
static MULTI: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);
static ACTIVE: Mutex<Vec<ProgressBar>> = Mutex::new(Vec::new());

pub struct Step {
    what: String,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Step {
    pub fn start(what: impl Into<String>) -> Step {
        let what = what.into();
        let bar = if std::io::stderr().is_terminal() {
            let bar = MULTI.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .expect("static template"),
            );
            bar.set_message(what.clone());
            bar.enable_steady_tick(Duration::from_millis(200));
            ACTIVE.lock().unwrap().push(bar.clone());
            Some(bar)
        } else {
            eprintln!("==> {what}");
            None
        };
        Step {
            what,
            started: Instant::now(),
            bar,
        }
    }

    /// Changes the message shown next to the spinner (e.g. the current scenario).
    pub fn set_detail(&self, detail: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} ({detail})", self.what));
        }
    }

    /// Ends the step with a one-line outcome such as "done" or "cached".
    pub fn finish(self, outcome: &str) -> Duration {
        let elapsed = self.started.elapsed();
        let line = format!("{}: {outcome} in {}", self.what, fmt_duration(elapsed));
        match &self.bar {
            Some(bar) => {
                bar.finish_and_clear();
                MULTI.remove(bar);
                ACTIVE.lock().unwrap().retain(|b| !b.is_finished());
                MULTI.suspend(|| eprintln!("  {line}"));
            }
            None => eprintln!("    {line}"),
        }
        elapsed
    }

    /// Ends the step as failed, leaving a line that says so.
    pub fn fail(self) {
        let _ = self.finish("FAILED");
    }
}

/// Prints a line without tearing an active spinner.
pub fn note(line: &str) {
    if ACTIVE.lock().unwrap().is_empty() {
        eprintln!("  {line}");
    } else {
        MULTI.suspend(|| eprintln!("  {line}"));
    }
}

/// Clears every spinner, so an error message is not overwritten.
pub fn finish_all() {
    for bar in ACTIVE.lock().unwrap().drain(..) {
        bar.finish_and_clear();
    }
}

pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", secs as u64 / 60, secs as u64 % 60)
    }
}
