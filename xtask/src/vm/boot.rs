//! One boot: QEMU started with the serial console on stdout, each line
//! teed to a log and handed to the caller, ended by the guest, a panic, a
//! KVM guest whose kernel never printed, or the timeout.

use crate::host::process::Event;
use crate::vm::console;
use crate::vm::qemu::{Accelerator, Guest};
use anyhow::{Context, Result};
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// After a panic, how long to wait for QEMU to exit on its own (panic=-1).
const PANIC_GRACE: Duration = Duration::from_secs(10);
/// While a KVM guest has not shown its kernel yet, how often QEMU's stderr
/// is read for an error (QEMU may stop the vCPU and keep running).
const STDERR_POLL: Duration = Duration::from_millis(100);
/// After such an error, how long QEMU may take to exit (or abort) by
/// itself, so that its status is part of the reason, before it is killed.
const ERROR_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// QEMU exited by itself (guest reboot or panic with -no-reboot).
    Exited { code: Option<i32> },
    /// The whole-run timeout expired; QEMU was killed.
    TimedOut,
    /// Under KVM, the guest kernel printed no line: QEMU exited, aborted,
    /// reported an error, or stayed silent (or showed only firmware) until
    /// the deadline, and was killed. The reason is one line, with QEMU's
    /// own message when it gave one.
    KvmFailed { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Boot {
    pub ending: Ending,
    pub console: Vec<String>,
    pub seconds_to_first_output: Option<f64>,
    /// When the guest kernel itself printed its first line (not firmware).
    pub seconds_to_kernel: Option<f64>,
    pub seconds_to_first_ktap: Option<f64>,
    pub seconds_total: f64,
    /// How QEMU ended: `exit code 0`, `killed by SIGABRT`, `killed by
    /// xtask (timeout)`.
    pub qemu_status: String,
    pub qemu_stderr: String,
}

/// The deadlines of one boot.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole boot.
    pub timeout: Duration,
    /// Under KVM, how long until the guest kernel's first line.
    pub kvm_first_line: Duration,
}

/// Runs the guest to its end or the timeout, teeing the console to
/// `console_log` and reporting each line to `on_line`.
pub fn run(
    guest: &Guest,
    accel: Accelerator,
    limits: Limits,
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
        limits,
        accel,
        panic_seen: None,
        stderr_error: None,
    };
    let mut boot = Boot {
        ending: Ending::TimedOut,
        console: Vec::new(),
        seconds_to_first_output: None,
        seconds_to_kernel: None,
        seconds_to_first_ktap: None,
        seconds_total: 0.0,
        qemu_status: String::new(),
        qemu_stderr: String::new(),
    };
    let mut status = None;
    boot.ending = loop {
        if watch.probing(&boot) && watch.stderr_error.is_none() {
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            watch.stderr_error = qemu_error(&stderr).map(|e| (Instant::now(), e));
        }
        if Instant::now() >= watch.hard_deadline(&boot) {
            qemu.kill();
            break watch.ending_at_deadline(&boot);
        }
        match qemu
            .next(watch.deadline(&boot))
            .context("reading QEMU's console")?
        {
            Event::Line(line) => {
                watch.saw(&mut boot, &line);
                writeln!(log, "{line}")?;
                on_line(&line);
                boot.console.push(line);
            }
            Event::Quiet => continue,
            Event::Ended(ended) => {
                status = Some(ended);
                break watch.ending_at_exit(&boot, ended, &stderr_path);
            }
        }
    };
    drop(qemu);
    boot.seconds_total = started.elapsed().as_secs_f64();
    boot.qemu_stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    boot.qemu_status = match status {
        Some(status) => describe_status(status),
        None => match boot.ending {
            Ending::TimedOut => "killed by xtask (timeout)".into(),
            _ => "killed by xtask (its guest kernel printed nothing)".into(),
        },
    };
    Ok(boot)
}

/// `exit code 1`, `killed by SIGABRT`.
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(name) => format!("killed by {name}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => format!("{status}"),
    }
}

/// The first line of QEMU's stderr that reports an error (not a warning),
/// without QEMU's `qemu-system-x86_64: ` prefix.
pub fn qemu_error(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .map(|l| {
            l.split_once(": ")
                .filter(|(p, _)| p.starts_with("qemu"))
                .map_or(l, |(_, r)| r)
        })
        .map(str::trim)
        .find(|l| {
            let lower = l.to_ascii_lowercase();
            !lower.starts_with("warning")
                && ["error", "failed", "assertion", "abort"]
                    .iter()
                    .any(|w| lower.contains(w))
        })
        .map(String::from)
}

/// The one-line reason of a KVM guest that ended before its kernel printed.
fn kvm_exit_reason(status: ExitStatus, stderr: &str, console: &[String]) -> String {
    let said = match qemu_error(stderr).or_else(|| {
        stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(String::from)
    }) {
        Some(line) => format!("; QEMU said: {line}"),
        None => "; QEMU printed nothing on stderr".into(),
    };
    format!(
        "QEMU ended ({}) before the guest kernel printed a line{}{said}",
        describe_status(status),
        firmware_note(console)
    )
}

/// `, after firmware output only (`SeaBIOS ...`)` when the console had lines.
fn firmware_note(console: &[String]) -> String {
    match console.iter().find(|l| !l.trim().is_empty()) {
        Some(first) => format!(" (only firmware output: `{}`)", first.trim()),
        None => String::new(),
    }
}

/// The deadlines of one boot: the whole-boot timeout, the KVM deadline
/// until the guest kernel's first line, and the grace period after a panic.
struct Watch {
    started: Instant,
    limits: Limits,
    accel: Accelerator,
    panic_seen: Option<Instant>,
    /// An error QEMU printed while the KVM guest had not shown its kernel.
    stderr_error: Option<(Instant, String)>,
}

impl Watch {
    /// A KVM guest whose kernel has not printed yet: KVM is on trial.
    fn probing(&self, boot: &Boot) -> bool {
        self.accel == Accelerator::Kvm && boot.seconds_to_kernel.is_none()
    }

    fn hard_deadline(&self, boot: &Boot) -> Instant {
        let mut deadline = self.started + self.limits.timeout;
        if self.probing(boot) {
            deadline = deadline.min(self.started + self.limits.kvm_first_line);
        }
        if let Some(at) = self.panic_seen {
            deadline = deadline.min(at + PANIC_GRACE);
        }
        if let Some((at, _)) = &self.stderr_error {
            deadline = deadline.min(*at + ERROR_GRACE);
        }
        deadline
    }

    /// The hard deadline, or sooner while probing, to read QEMU's stderr.
    fn deadline(&self, boot: &Boot) -> Instant {
        let hard = self.hard_deadline(boot);
        if self.probing(boot) {
            hard.min(Instant::now() + STDERR_POLL)
        } else {
            hard
        }
    }

    fn ending_at_deadline(&self, boot: &Boot) -> Ending {
        if !self.probing(boot) {
            return Ending::TimedOut;
        }
        if let Some((_, error)) = &self.stderr_error {
            return Ending::KvmFailed {
                reason: format!(
                    "QEMU reported an error before the guest kernel printed a line: {error} (QEMU was killed)"
                ),
            };
        }
        let waited = self.limits.kvm_first_line.as_secs_f64();
        let reason = if boot.console.is_empty() {
            format!("the KVM guest printed nothing in {waited:.0}s (QEMU was killed)")
        } else {
            format!(
                "the KVM guest's kernel printed no line in {waited:.0}s{} (QEMU was killed)",
                firmware_note(&boot.console)
            )
        };
        Ending::KvmFailed { reason }
    }

    fn ending_at_exit(&self, boot: &Boot, status: ExitStatus, stderr: &Path) -> Ending {
        if self.probing(boot) {
            let stderr = std::fs::read_to_string(stderr).unwrap_or_default();
            Ending::KvmFailed {
                reason: kvm_exit_reason(status, &stderr, &boot.console),
            }
        } else {
            Ending::Exited {
                code: status.code(),
            }
        }
    }

    /// Records the timings and a panic that one console line shows.
    fn saw(&mut self, boot: &mut Boot, line: &str) {
        let at = self.started.elapsed().as_secs_f64();
        boot.seconds_to_first_output.get_or_insert(at);
        if console::is_guest_kernel_line(line) {
            boot.seconds_to_kernel.get_or_insert(at);
        }
        if line.starts_with("KTAP version") {
            boot.seconds_to_first_ktap.get_or_insert(at);
        }
        if console::is_panic(line) && self.panic_seen.is_none() {
            self.panic_seen = Some(Instant::now());
        }
    }
}

/// Runs QEMU attached to the terminal (shell, gdb): the serial console and
/// QEMU's monitor share stdio (Ctrl-A X quits), and the console is also
/// written to `console_log` so that it can be read for splats afterwards.
/// Returns QEMU's exit code.
pub fn interactive(
    guest: &Guest,
    accel: Accelerator,
    extra: &[&str],
    console_log: &Path,
) -> Result<i32> {
    let chardev = format!(
        "stdio,id=console,mux=on,signal=off,logfile={}",
        console_log.display()
    );
    guest
        .command(accel)
        .args([
            "-chardev",
            &chardev,
            "-serial",
            "chardev:console",
            "-mon",
            "chardev=console",
        ])
        .args(extra)
        .interactive()
}
