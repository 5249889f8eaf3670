//! Runs each scenario in a forked child with a timeout.
//!
//! The child writes diagnostics to a pipe (one line each) and exits with a
//! code for its result; a crash or hang is turned into that scenario's
//! result, with the signal and faulting address captured by a handler that
//! writes into a page shared with the parent.

use crate::scenario::{Failure, Scenario};
use crate::sys;
use std::io::Write;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const EXIT_PASS: i32 = 0;
const EXIT_FAIL: i32 = 1;
const EXIT_SKIP: i32 = 2;
/// Prefix of the pipe line that carries a skip reason.
const SKIP_MARK: &str = "\u{1}SKIP ";

static DIAG_FD: AtomicI32 = AtomicI32::new(-1);
/// Page shared by parent and children: [magic, signo, si_addr, rip, cs].
static CRASH_PAGE: AtomicU64 = AtomicU64::new(0);
const CRASH_MAGIC: u64 = 0x6372_6173_6821;

/// Emits one diagnostic line: to the runner's pipe inside a scenario,
/// to stderr otherwise.
pub fn diag(line: &str) {
    let fd = DIAG_FD.load(Ordering::Relaxed);
    let text = format!("{}\n", line.replace('\n', " "));
    if fd >= 0 {
        write_all_fd(fd, text.as_bytes());
    } else {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

fn write_all_fd(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    Pass,
    Fail,
    Skip(String),
}

impl Observed {
    pub fn word(&self) -> &'static str {
        match self {
            Observed::Pass => "pass",
            Observed::Fail => "fail",
            Observed::Skip(_) => "skip",
        }
    }
}

pub struct ScenarioResult {
    pub scenario: &'static Scenario,
    pub observed: Observed,
    pub diagnostics: Vec<String>,
}

/// What a crash handler recorded for the last fatal signal in a child.
#[derive(Clone, Copy, Debug)]
pub struct CrashInfo {
    pub signo: i32,
    pub addr: u64,
    pub rip: u64,
    pub cs: u64,
}

impl std::fmt::Display for CrashInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at address {:#x} (rip {:#x}, cs {:#x})",
            sys::signal_name(self.signo),
            self.addr,
            self.rip,
            self.cs
        )
    }
}

fn crash_page() -> *mut u64 {
    let mut p = CRASH_PAGE.load(Ordering::Relaxed);
    if p == 0 {
        let m = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(m != libc::MAP_FAILED);
        p = m as u64;
        CRASH_PAGE.store(p, Ordering::Relaxed);
    }
    p as *mut u64
}

pub fn clear_crash_info() {
    let p = crash_page();
    unsafe { std::ptr::write_volatile(p, 0) };
}

/// The last crash recorded by this process or any of its descendants.
pub fn crash_info() -> Option<CrashInfo> {
    let p = crash_page();
    unsafe {
        if std::ptr::read_volatile(p) != CRASH_MAGIC {
            return None;
        }
        Some(CrashInfo {
            signo: std::ptr::read_volatile(p.add(1)) as i32,
            addr: std::ptr::read_volatile(p.add(2)),
            rip: std::ptr::read_volatile(p.add(3)),
            cs: std::ptr::read_volatile(p.add(4)),
        })
    }
}

/// Records the fault, then returns: SA_RESETHAND restored the default
/// action, so the faulting instruction runs again and kills the process
/// with the same signal. Touches no TLS (the FS base may be gone after an
/// ia32 sigreturn).
extern "C" fn crash_handler(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let p = CRASH_PAGE.load(Ordering::Relaxed) as *mut u64;
    if p.is_null() {
        return;
    }
    unsafe {
        let uc = ctx as *const libc::ucontext_t;
        let gregs = &(*uc).uc_mcontext.gregs;
        std::ptr::write_volatile(p.add(1), sig as u64);
        std::ptr::write_volatile(p.add(2), (*info).si_addr() as u64);
        std::ptr::write_volatile(p.add(3), gregs[libc::REG_RIP as usize] as u64);
        std::ptr::write_volatile(p.add(4), gregs[libc::REG_CSGSFS as usize] as u64 & 0xffff);
        std::ptr::write_volatile(p, CRASH_MAGIC);
    }
}

fn install_crash_handlers() {
    unsafe {
        let stack_len = 256 * 1024;
        let stack = libc::mmap(
            std::ptr::null_mut(),
            stack_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        let ss = libc::stack_t {
            ss_sp: stack,
            ss_flags: 0,
            ss_size: stack_len,
        };
        libc::sigaltstack(&ss, std::ptr::null_mut());
        for sig in [libc::SIGSEGV, libc::SIGILL, libc::SIGBUS, libc::SIGFPE] {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = crash_handler
                as extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void)
                as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESETHAND;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Runs one scenario in a forked child. `on_diag` sees each diagnostic line
/// as it arrives (so a console shows progress before a hang).
pub fn run_one(
    s: &'static Scenario,
    timeout: Duration,
    on_diag: &mut dyn FnMut(&str),
) -> ScenarioResult {
    clear_crash_info();
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
        DIAG_FD.store(wr, Ordering::Relaxed);
        install_crash_handlers();
        let outcome = std::panic::catch_unwind(s.run);
        let code = match outcome {
            Ok(Ok(())) => EXIT_PASS,
            Ok(Err(Failure::Fail(msg))) => {
                diag(&format!("FAIL: {msg}"));
                EXIT_FAIL
            }
            Ok(Err(Failure::Skip(reason))) => {
                diag(&format!("{SKIP_MARK}{reason}"));
                EXIT_SKIP
            }
            Err(_) => {
                diag("FAIL: scenario panicked");
                EXIT_FAIL
            }
        };
        unsafe { libc::_exit(code) };
    }
    unsafe { libc::close(wr) };

    let mut diagnostics = Vec::new();
    let mut skip_reason = None;
    let mut pending = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let mut child_exit: Option<sys::Exit> = None;
    let mut handle_line = |line: &str, diagnostics: &mut Vec<String>| {
        on_diag(line);
        diagnostics.push(line.to_string());
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        let mut pfd = libc::pollfd {
            fd: rd,
            events: libc::POLLIN,
            revents: 0,
        };
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(100) as i32) };
        if child_exit.is_none() {
            // A helper the scenario left behind (a stopped tracee, say) keeps
            // the pipe open: once the scenario process is gone, end its group
            // so the pipe reaches EOF instead of the timeout.
            let mut status = 0;
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                child_exit = Some(if libc::WIFSIGNALED(status) {
                    sys::Exit::Signal(libc::WTERMSIG(status))
                } else {
                    sys::Exit::Code(libc::WEXITSTATUS(status))
                });
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
        }
        if n <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        let got = unsafe { libc::read(rd, buf.as_mut_ptr().cast(), buf.len()) };
        if got <= 0 {
            break;
        }
        pending.extend_from_slice(&buf[..got as usize]);
        while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..nl]).trim_end().to_string();
            match text.strip_prefix(SKIP_MARK) {
                Some(reason) => skip_reason = Some(reason.to_string()),
                None => handle_line(&text, &mut diagnostics),
            }
        }
    }
    unsafe { libc::close(rd) };

    let exit = match (child_exit, timed_out) {
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

    let observed = match exit {
        sys::Exit::Code(EXIT_PASS) => Observed::Pass,
        sys::Exit::Code(EXIT_SKIP) => {
            Observed::Skip(skip_reason.unwrap_or_else(|| "no reason given".into()))
        }
        sys::Exit::Code(c) => {
            if c != EXIT_FAIL {
                handle_line(&format!("child exited with status {c}"), &mut diagnostics);
            }
            Observed::Fail
        }
        sys::Exit::Signal(sig) => {
            let line = match crash_info() {
                Some(ci) if ci.signo == sig => format!("crashed: {ci}"),
                _ => format!("crashed: killed by {} ({sig})", sys::signal_name(sig)),
            };
            handle_line(&line, &mut diagnostics);
            Observed::Fail
        }
        sys::Exit::TimedOut => {
            handle_line(
                &format!("timed out after {} s", timeout.as_secs()),
                &mut diagnostics,
            );
            Observed::Fail
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Expect, Outcome};

    fn scenario(id: &'static str, run: fn() -> Outcome) -> &'static Scenario {
        Box::leak(Box::new(Scenario {
            id,
            description: "test",
            proves: "test",
            vanilla: Expect::Pass,
            patched: Expect::Pass,
            run,
        }))
    }

    /// The crash page is per process: tests of this module take turns.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn run(id: &'static str, f: fn() -> Outcome, timeout_s: u64) -> ScenarioResult {
        let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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
        assert_eq!(r.observed, Observed::Fail);
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
        assert_eq!(r.observed, Observed::Fail);
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
        assert_eq!(r.observed, Observed::Pass);
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
        assert_eq!(r.observed, Observed::Fail);
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
        assert_eq!(r.observed, Observed::Skip("because".into()));
        assert_eq!(r.diagnostics, vec!["value 0x1234".to_string()]);
        let r = run("fail", || crate::fail!("observed {}", 7), 10);
        assert_eq!(r.observed, Observed::Fail);
        assert_eq!(r.diagnostics, vec!["FAIL: observed 7".to_string()]);
    }
}
