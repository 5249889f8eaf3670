//! One boot: QEMU started with the serial console on stdout, each line
//! teed to a log and handed to the caller, ended by the guest, a panic, a
//! silent KVM guest or the timeout.

use crate::host::process::Event;
use crate::vm::console;
use crate::vm::qemu::{Accelerator, Guest, KVM_SILENCE_DEADLINE};
use anyhow::{Context, Result};
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// After a panic, how long to wait for QEMU to exit on its own (panic=-1).
const PANIC_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// QEMU exited by itself (guest reboot or panic with -no-reboot).
    Exited { code: Option<i32> },
    /// The whole-run timeout expired; QEMU was killed.
    TimedOut,
    /// KVM guest printed nothing before the deadline; QEMU was killed.
    SilentKvm,
}

#[derive(Debug, Clone, Serialize)]
pub struct Boot {
    pub ending: Ending,
    pub console: Vec<String>,
    pub seconds_to_first_output: Option<f64>,
    pub seconds_to_first_ktap: Option<f64>,
    pub seconds_total: f64,
    pub qemu_stderr: String,
}

/// Runs the guest to its end or the timeout, teeing the console to
/// `console_log` and reporting each line to `on_line`.
pub fn run(
    guest: &Guest,
    accel: Accelerator,
    timeout: Duration,
    console_log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<Boot> {
    let mut log = File::create(console_log)
        .with_context(|| format!("cannot create {}", console_log.display()))?;
    let stderr_path = console_log.with_extension("qemu-stderr");
    let command = guest.command(accel).args(["-serial", "stdio"]);
    writeln!(log, "# {command}")?;
    let started = Instant::now();
    let qemu = command.stream(&stderr_path)?;
    let mut watch = Watch {
        started,
        timeout,
        accel,
        panic_seen: None,
    };
    let mut boot = Boot {
        ending: Ending::TimedOut,
        console: Vec::new(),
        seconds_to_first_output: None,
        seconds_to_first_ktap: None,
        seconds_total: 0.0,
        qemu_stderr: String::new(),
    };
    boot.ending = loop {
        let deadline = watch.deadline(&boot);
        if Instant::now() >= deadline {
            qemu.kill();
            break watch.ending_at_deadline(&boot);
        }
        match qemu.next(deadline).context("reading QEMU's console")? {
            Event::Line(line) => {
                watch.saw(&mut boot, &line);
                writeln!(log, "{line}")?;
                on_line(&line);
                boot.console.push(line);
            }
            Event::Quiet => continue,
            Event::Ended(code) => break Ending::Exited { code },
        }
    };
    drop(qemu);
    boot.seconds_total = started.elapsed().as_secs_f64();
    boot.qemu_stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    Ok(boot)
}

/// The deadlines of one boot: the whole-boot timeout, the KVM silence
/// deadline until the first line, and the grace period after a panic.
struct Watch {
    started: Instant,
    timeout: Duration,
    accel: Accelerator,
    panic_seen: Option<Instant>,
}

impl Watch {
    fn silent_kvm(&self, boot: &Boot) -> bool {
        self.accel == Accelerator::Kvm && boot.seconds_to_first_output.is_none()
    }

    fn deadline(&self, boot: &Boot) -> Instant {
        let mut deadline = self.started + self.timeout;
        if self.silent_kvm(boot) {
            deadline = deadline.min(self.started + KVM_SILENCE_DEADLINE);
        }
        if let Some(at) = self.panic_seen {
            deadline = deadline.min(at + PANIC_GRACE);
        }
        deadline
    }

    fn ending_at_deadline(&self, boot: &Boot) -> Ending {
        if self.silent_kvm(boot) {
            Ending::SilentKvm
        } else {
            Ending::TimedOut
        }
    }

    /// Records the timings and a panic that one console line shows.
    fn saw(&mut self, boot: &mut Boot, line: &str) {
        let at = self.started.elapsed().as_secs_f64();
        boot.seconds_to_first_output.get_or_insert(at);
        if line.starts_with("KTAP version") {
            boot.seconds_to_first_ktap.get_or_insert(at);
        }
        if console::is_panic(line) && self.panic_seen.is_none() {
            self.panic_seen = Some(Instant::now());
        }
    }
}

/// Runs QEMU attached to the terminal (shell, gdb): the serial console and
/// QEMU's monitor share stdio (Ctrl-A X quits). Returns QEMU's exit code.
pub fn interactive(guest: &Guest, accel: Accelerator, extra: &[&str]) -> Result<i32> {
    guest
        .command(accel)
        .args(["-serial", "mon:stdio"])
        .args(extra)
        .interactive()
}
