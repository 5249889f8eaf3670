//! How one scenario runs: in a forked child, with a timeout.
//!
//! The child writes diagnostics to a pipe (one line each, see `diag`) and
//! exits with a code for its result; a crash or hang is turned into that
//! scenario's result, with the signal and faulting address captured by a
//! handler that writes into a page shared with the parent (see `crash`).

mod crash;
pub mod diag;
pub mod scenario;

pub use crash::{clear_crash_info, crash_info};
pub use scenario::{Checks, Expect, Failure, Outcome, Scenario};

use crate::sys;
use diag::{Line, LineBuffer};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

const EXIT_PASS: i32 = 0;
const EXIT_FAIL: i32 = 1;
const EXIT_SKIP: i32 = 2;

/// What a scenario run produced: the contract's observation, whose fail
/// carries the reason token observed (a scenario's own, a signal name,
/// `timeout`, `panic`, `unnamed`) and whose skip carries the reason given.
pub type Observed = contract::Observation<String>;

pub struct ScenarioResult {
    pub scenario: &'static Scenario,
    pub observed: Observed,
    pub diagnostics: Vec<String>,
}

/// Runs one scenario in a forked child. `on_diag` sees each diagnostic line
/// as it arrives (so a console shows progress before a hang).
pub fn run_one(
    s: &'static Scenario,
    timeout: Duration,
    on_diag: &mut dyn FnMut(&str),
) -> ScenarioResult {
    clear_crash_info();
    let child = spawn_child(s);
    let mut diagnostics = Vec::new();
    let mut record = |line: &str| {
        on_diag(line);
        diagnostics.push(line.to_string());
    };
    let reading = read_diagnostics(&child, timeout, &mut record);
    let exit = collect_exit(child.pid, &reading, timeout);
    let observed = classify_exit(exit, reading.reasons, timeout, &mut record);
    ScenarioResult {
        scenario: s,
        observed,
        diagnostics,
    }
}

/// Reaps children reparented to us (matters when running as PID 1).
pub fn reap_orphans() {
    let mut status = 0;
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}

/// A running scenario child: its pid (also its process group) and the read
/// end of its diagnostics pipe.
struct Child {
    pid: i32,
    diag_fd: RawFd,
}

/// Forks; the child runs the scenario in a process group of its own (so
/// helpers it leaves behind can be killed with it) and never returns.
fn spawn_child(s: &'static Scenario) -> Child {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (rd, wr) = (fds[0], fds[1]);
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        unsafe {
            libc::close(rd);
            libc::setpgid(0, 0);
        }
        run_in_child(s, wr);
    }
    unsafe { libc::close(wr) };
    Child { pid, diag_fd: rd }
}

/// Child side: runs the scenario and exits with a code for its outcome;
/// the failure message or skip reason goes down the pipe first.
fn run_in_child(s: &'static Scenario, diag_fd: RawFd) -> ! {
    diag::connect(diag_fd);
    crash::install_crash_handlers();
    let code = match std::panic::catch_unwind(s.run) {
        Ok(Ok(())) => EXIT_PASS,
        Ok(Err(Failure::Because(reason, msg))) => {
            diag::emit(&format!("FAIL ({reason}): {msg}"));
            diag::send_reason(&reason);
            EXIT_FAIL
        }
        Ok(Err(Failure::Fail(msg))) => {
            diag::emit(&format!("FAIL: {msg}"));
            EXIT_FAIL
        }
        Ok(Err(Failure::Skip(reason))) => {
            diag::send_skip(&reason);
            EXIT_SKIP
        }
        Err(_) => {
            diag::emit("FAIL: scenario panicked");
            diag::send_reason(contract::reason::PANIC);
            EXIT_FAIL
        }
    };
    unsafe { libc::_exit(code) };
}

/// The reasons a scenario child sent for its skip or its failure.
#[derive(Default)]
struct Reasons {
    skip: Option<String>,
    fail: Option<String>,
}

/// What the parent learned while the child's pipe was open.
struct Reading {
    reasons: Reasons,
    /// Set once the scenario process itself has been reaped.
    exit: Option<sys::Exit>,
    timed_out: bool,
}

/// Parent side: passes each diagnostic line to `on_line` until the pipe
/// reaches EOF or the timeout expires, then closes the pipe.
fn read_diagnostics(child: &Child, timeout: Duration, on_line: &mut dyn FnMut(&str)) -> Reading {
    let deadline = Instant::now() + timeout;
    let mut reading = Reading {
        reasons: Reasons::default(),
        exit: None,
        timed_out: false,
    };
    let mut lines = LineBuffer::default();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            reading.timed_out = true;
            break;
        }
        let readable = poll_readable(child.diag_fd, left.min(Duration::from_millis(100)));
        if reading.exit.is_none() {
            reading.exit = reap_scenario_process(child.pid);
        }
        if !readable {
            continue;
        }
        let mut buf = [0u8; 4096];
        let got = unsafe { libc::read(child.diag_fd, buf.as_mut_ptr().cast(), buf.len()) };
        if got <= 0 {
            break;
        }
        lines.push(&buf[..got as usize]);
        while let Some(line) = lines.next_line() {
            match line {
                Line::Skip(reason) => reading.reasons.skip = Some(reason),
                Line::Reason(reason) => reading.reasons.fail = Some(reason),
                Line::Diagnostic(text) => on_line(&text),
            }
        }
    }
    unsafe { libc::close(child.diag_fd) };
    reading
}

/// Waits up to `wait` for `fd` to become readable (or reach EOF).
fn poll_readable(fd: RawFd, wait: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as i32) > 0 }
}

/// A helper the scenario left behind (a stopped tracee, say) keeps the pipe
/// open: once the scenario process is gone, end its group so the pipe
/// reaches EOF instead of the timeout.
fn reap_scenario_process(pid: i32) -> Option<sys::Exit> {
    let mut status = 0;
    if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != pid {
        return None;
    }
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    Some(if libc::WIFSIGNALED(status) {
        sys::Exit::Signal(libc::WTERMSIG(status))
    } else {
        sys::Exit::Code(libc::WEXITSTATUS(status))
    })
}

/// How the scenario process ended: already reaped, killed at the timeout,
/// or waited for after it closed its pipe. Its whole group is killed.
fn collect_exit(pid: i32, reading: &Reading, timeout: Duration) -> sys::Exit {
    let exit = match (reading.exit, reading.timed_out) {
        (Some(exit), _) => exit,
        (None, true) => {
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
            sys::wait_exit(pid, 5000);
            sys::Exit::TimedOut
        }
        (None, false) => sys::wait_exit(pid, timeout.as_millis().max(1000) as u64),
    };
    // Leftover grandchildren (a stopped tracee, a hung helper) go too.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    exit
}

/// Turns the exit into the observed result; anything but a clean pass,
/// fail or skip adds a diagnostic saying what happened. A failure's reason
/// is the token the scenario sent, else what ended it: the signal's name,
/// `timeout`, or `unnamed` when the scenario named no observable.
fn classify_exit(
    exit: sys::Exit,
    reasons: Reasons,
    timeout: Duration,
    record: &mut dyn FnMut(&str),
) -> Observed {
    match exit {
        sys::Exit::Code(EXIT_PASS) => Observed::pass(),
        sys::Exit::Code(EXIT_SKIP) => {
            Observed::skip(reasons.skip.unwrap_or_else(|| "no reason given".into()))
        }
        sys::Exit::Code(EXIT_FAIL) => Observed::fail(checked_reason(reasons.fail, record)),
        sys::Exit::Code(c) => {
            record(&format!("child exited with status {c}"));
            Observed::fail(contract::reason::BAD_EXIT.into())
        }
        sys::Exit::Signal(sig) => {
            record(&match crash_info() {
                Some(ci) if ci.signo == sig => format!("crashed: {ci}"),
                _ => format!("crashed: killed by {} ({sig})", sys::signal_name(sig)),
            });
            Observed::fail(signal_reason(sig))
        }
        sys::Exit::TimedOut => {
            record(&format!("timed out after {} s", timeout.as_secs()));
            Observed::fail(contract::reason::TIMEOUT.into())
        }
    }
}

/// The reason token a scenario sent, or `unnamed` (with a diagnostic if
/// what it sent is not a token).
fn checked_reason(sent: Option<String>, record: &mut dyn FnMut(&str)) -> String {
    match sent {
        Some(token) => match contract::reason::check(&token) {
            Ok(()) => token,
            Err(e) => {
                record(&format!("scenario bug: {e}"));
                contract::reason::UNNAMED.into()
            }
        },
        None => contract::reason::UNNAMED.into(),
    }
}

/// The reason token for death by `sig`: `SIGSEGV`, or `signal-N` for a
/// signal without a name here.
pub fn signal_reason(sig: i32) -> String {
    match sys::signal_name(sig) {
        "signal" => format!("signal-{sig}"),
        name => name.to_string(),
    }
}

/// The reason token for an errno: `EINVAL`, or `errno-N` for one without a
/// name here.
pub fn errno_reason(e: i32) -> String {
    sys::errno_name(e).replace(' ', "-")
}

/// The crash page is per process: tests that run scenarios (here and in
/// other modules) take turns.
#[cfg(test)]
pub fn serial_for_tests() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(id: &'static str, run: fn() -> Outcome) -> &'static Scenario {
        Box::leak(Box::new(Scenario {
            id,
            description: "test",
            proves: "test",
            vanilla: Expect::PASS,
            patched: Expect::PASS,
            changed_by: None,
            run,
        }))
    }

    fn run(id: &'static str, f: fn() -> Outcome, timeout_s: u64) -> ScenarioResult {
        let _turn = serial_for_tests();
        run_one(scenario(id, f), Duration::from_secs(timeout_s), &mut |_| {})
    }

    #[test]
    fn segfault_is_that_scenarios_failure_with_the_address() {
        let r = run(
            "segv",
            || {
                unsafe { std::ptr::read_volatile(0x10 as *const u8) };
                Ok(())
            },
            10,
        );
        assert_eq!(r.observed, Observed::fail("SIGSEGV".into()));
        let last = r.diagnostics.last().unwrap();
        assert!(last.contains("SIGSEGV at address 0x10"), "{last}");
    }

    #[test]
    fn illegal_instruction_is_reported_as_sigill() {
        let r = run(
            "ill",
            || {
                unsafe { core::arch::asm!("ud2") };
                Ok(())
            },
            10,
        );
        assert_eq!(r.observed, Observed::fail("SIGILL".into()));
        assert!(
            r.diagnostics.last().unwrap().contains("SIGILL"),
            "{:?}",
            r.diagnostics
        );
    }

    #[test]
    fn helper_left_stopped_does_not_hold_the_result() {
        let start = Instant::now();
        let r = run(
            "leftover",
            || {
                sys::fork_child(|| {
                    unsafe { libc::raise(libc::SIGSTOP) };
                    0
                });
                Ok(())
            },
            10,
        );
        assert_eq!(r.observed, Observed::pass());
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn hang_times_out() {
        let r = run(
            "hang",
            || loop {
                sys::sleep_ms(100);
            },
            1,
        );
        assert_eq!(r.observed, Observed::fail("timeout".into()));
        assert!(r
            .diagnostics
            .last()
            .unwrap()
            .contains("timed out after 1 s"));
    }

    #[test]
    fn diagnostics_skip_and_failure_reach_the_parent() {
        let r = run(
            "skip",
            || {
                crate::diag!("value {:#x}", 0x1234);
                crate::skip!("because")
            },
            10,
        );
        assert_eq!(r.observed, Observed::skip("because".into()));
        assert_eq!(r.diagnostics, vec!["value 0x1234".to_string()]);
        let r = run("fail", || crate::fail!("observed {}", 7), 10);
        assert_eq!(r.observed, Observed::fail("unnamed".into()));
        assert_eq!(r.diagnostics, vec!["FAIL: observed 7".to_string()]);
    }

    #[test]
    fn a_named_failure_reaches_the_parent_with_its_reason() {
        let r = run(
            "einval",
            || crate::fail_because!("EINVAL", "call said {}", -22),
            10,
        );
        assert_eq!(r.observed, Observed::fail("EINVAL".into()));
        assert_eq!(
            r.diagnostics,
            vec!["FAIL (EINVAL): call said -22".to_string()]
        );
    }

    #[test]
    fn checks_fail_on_the_reason_of_the_first_failed_check() {
        let r = run(
            "checks",
            || {
                let mut c = Checks::default();
                c.check(true, "fine");
                c.check_because(false, "ELFCLASS64", "class");
                c.check(false, "other");
                c.finish()
            },
            10,
        );
        assert_eq!(r.observed, Observed::fail("ELFCLASS64".into()));
        let r = run(
            "unnamed_first",
            || {
                let mut c = Checks::default();
                c.check(false, "other");
                c.check_because(false, "ELFCLASS64", "class");
                c.finish()
            },
            10,
        );
        assert_eq!(r.observed, Observed::fail("unnamed".into()));
    }

    #[test]
    fn panic_bad_token_and_odd_exit_have_their_own_reasons() {
        let r = run("panic", || panic!("boom"), 10);
        assert_eq!(r.observed, Observed::fail("panic".into()));
        let r = run(
            "bad_token",
            || crate::fail_because!("got 0x10", "free text"),
            10,
        );
        assert_eq!(r.observed, Observed::fail("unnamed".into()));
        assert!(r
            .diagnostics
            .iter()
            .any(|d| d.contains("not a reason token")));
        let r = run("exit3", || unsafe { libc::_exit(3) }, 10);
        assert_eq!(r.observed, Observed::fail("bad-exit-status".into()));
    }
}
