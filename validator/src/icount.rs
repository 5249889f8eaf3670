//! Marked loops for instruction counting (`cargo xtask bench
//! --instructions`): each iteration of each operation is bracketed by the
//! two marker instructions of `contract::icount`, and the QEMU plugin
//! `qemu/plugins/icount.c` writes the instructions executed in between
//! (user and kernel). Without the plugin a marker is a plain no-op.
//!
//! Runs in a forked child of the caller (an ordinary process, not PID 1:
//! the kernel treats signals to init specially). Each operation is run
//! `WARMUP` times unmarked first (page tables, caches, translation), then
//! measured per iteration; the harness takes the median. An operation that
//! cannot run prints `# icount skipped <id> <reason>` instead of samples,
//! and the harness decides whether that is allowed (only the series'
//! operation on a kernel without the series). The last line is
//! `contract::icount::DONE_LINE`.

use crate::ktap::emit;
use crate::scenarios::common::{install_compat_handler, Frame};
use crate::sys::thunks::{self, Entry, Regs32};
use crate::sys::vdso::MappedVdso;
use crate::sys::{self, nr32, PAGE};
use contract::icount::{self, Op, DONE_LINE};
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};

const WARMUP: usize = 10;
const ITERATIONS: usize = 200;
/// fork and execve cost far more guest time per iteration under TCG.
const PROCESS_ITERATIONS: usize = 60;

/// The argument that makes the validator exit at once: the static binary
/// that the execve operation runs.
pub const EXIT_AT_ONCE_ARG: &str = "--internal-exit-at-once";

/// The marker instruction with displacement `$disp` (a constant: it is
/// assembled in). `asm!` without `nomem` is a compiler barrier, so what is
/// measured stays between two markers.
macro_rules! marker {
    ($disp:expr) => {
        unsafe {
            core::arch::asm!(
                ".byte 0x0f, 0x1f, 0x80",
                ".long {d}",
                d = const $disp,
                options(nostack, preserves_flags)
            )
        }
    };
}

/// Runs `$f` WARMUP times, then `$n` times between the markers of `$op`.
macro_rules! measure {
    ($op:expr, $n:expr, $f:expr) => {{
        #[allow(unused_mut)]
        let mut f = $f;
        for _ in 0..WARMUP {
            f();
        }
        for _ in 0..$n {
            marker!(icount::start($op));
            f();
            marker!(icount::stop($op));
        }
    }};
}

fn skipped(op: Op, why: &str) {
    emit(&format!("# icount skipped {} {why}", op.id()));
}

/// Every operation, in a forked child; then the done line.
pub fn run() {
    let pid = sys::fork_child(|| {
        run_all();
        0
    });
    let exit = sys::wait_exit(pid, 600_000);
    if exit != sys::Exit::Code(0) {
        emit(&format!("# icount child {exit}"));
    }
    emit(DONE_LINE);
}

fn run_all() {
    getpid();
    memory();
    processes();
    signals();
    clock_gettime_vdso();
    int80_getpid();
    set_compat_native_pair();
}

fn getpid() {
    measure!(Op::GetpidSyscall64, ITERATIONS, || {
        unsafe { libc::syscall(libc::SYS_getpid) };
    });
}

fn memory() {
    measure!(Op::MmapMunmap, ITERATIONS, || {
        if let Ok(a) = sys::mmap_anon(0, PAGE, 0) {
            let _ = sys::munmap(a, PAGE);
        }
    });
    // A hint that is free: where the kernel just put a page.
    let hint = match sys::mmap_anon(0, PAGE, 0) {
        Ok(a) => {
            let _ = sys::munmap(a, PAGE);
            a
        }
        Err(e) => return skipped(Op::MmapMunmapHint, &sys::errno_name(e)),
    };
    measure!(Op::MmapMunmapHint, ITERATIONS, || {
        if let Ok(a) = sys::mmap_anon(hint, PAGE, 0) {
            let _ = sys::munmap(a, PAGE);
        }
    });
    mremap_grow();
}

/// Only the mremap is marked; the mapping it grows is made and removed
/// outside the window.
fn mremap_grow() {
    const OP: Op = Op::MremapGrow;
    for _ in 0..WARMUP + ITERATIONS {
        let Ok(a) = sys::mmap_anon(0, PAGE, 0) else {
            return skipped(OP, "mmap failed");
        };
        marker!(icount::start(Op::MremapGrow));
        let grown = sys::mremap(a, PAGE, 2 * PAGE, libc::MREMAP_MAYMOVE, 0);
        marker!(icount::stop(Op::MremapGrow));
        match grown {
            Ok(b) => drop(sys::munmap(b, 2 * PAGE)),
            Err(e) => return skipped(OP, &format!("mremap: {}", sys::errno_name(e))),
        }
    }
}

fn processes() {
    measure!(Op::ForkExitWait, PROCESS_ITERATIONS, || {
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
    });
    const OP: Op = Op::ForkExecveExitWait;
    let exe = match std::fs::read_link("/proc/self/exe") {
        Ok(p) => CString::new(p.into_os_string().into_encoded_bytes()).unwrap(),
        Err(e) => return skipped(OP, &format!("/proc/self/exe: {e}")),
    };
    let arg = CString::new(EXIT_AT_ONCE_ARG).unwrap();
    let argv = [exe.as_ptr(), arg.as_ptr(), std::ptr::null()];
    let env = [std::ptr::null()];
    let run = || {
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                libc::execve(exe.as_ptr(), argv.as_ptr(), env.as_ptr());
                libc::_exit(127);
            }
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        status
    };
    let status = run();
    if status != 0 {
        return skipped(OP, &format!("execve of {exe:?}: wait status {status:#x}"));
    }
    measure!(OP, PROCESS_ITERATIONS, || {
        run();
    });
}

static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn count_signal(_sig: i32) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

fn signals() {
    let pid = sys::getpid();
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = count_signal as *const () as usize;
        libc::sigaction(libc::SIGUSR1, &act, std::ptr::null_mut());
    }
    measure!(Op::Signal64, ITERATIONS, || {
        unsafe { libc::syscall(libc::SYS_kill, pid, libc::SIGUSR1) };
    });
    let delivered = SIGNALS.load(Ordering::Relaxed) as usize;
    if delivered != WARMUP + ITERATIONS {
        emit(&format!(
            "# icount skipped {} the 64-bit handler ran {delivered} times",
            Op::Signal64.id()
        ));
    }
    signal_ia32(pid as u32);
}

/// The compat handler (SA_IA32_ABI: an ia32 frame) for SIGUSR1 raised by
/// int 0x80 kill from 32-bit code; the window also holds the 64 -> 32 ->
/// 64 trip around it.
fn signal_ia32(pid: u32) {
    const OP: Op = Op::SignalIa32;
    if let Err(e) = install_compat_handler(true, Frame::Rt) {
        return skipped(OP, &format!("compat rt_sigaction: {}", sys::errno_name(e)));
    }
    thunks::reset_handler_record();
    measure!(OP, ITERATIONS, || {
        thunks::int80_from_32(nr32::KILL, &[pid, libc::SIGUSR1 as u32]);
    });
    let count = thunks::handler_record()[3] as usize;
    if count != WARMUP + ITERATIONS {
        emit(&format!(
            "# icount skipped {} the ia32 handler ran {count} times",
            OP.id()
        ));
    }
}

fn clock_gettime_vdso() {
    const OP: Op = Op::ClockGettimeVdso;
    let symbol = MappedVdso::find()
        .ok_or_else(|| "no [vdso]".to_string())
        .and_then(|v| v.symbol("__vdso_clock_gettime"));
    let address = match symbol {
        Ok(a) => a,
        Err(e) => return skipped(OP, &e),
    };
    let clock_gettime: extern "C" fn(libc::clockid_t, *mut libc::timespec) -> i32 =
        unsafe { std::mem::transmute(address as *const ()) };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    measure!(OP, ITERATIONS, || {
        clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    });
}

fn int80_getpid() {
    let int80 = thunks::entry(Entry::Int80);
    measure!(Op::GetpidInt80From32, ITERATIONS, || {
        thunks::call32_with(int80, Regs32::syscall(nr32::GETPID, &[]), false);
    });
}

fn set_compat_native_pair() {
    const OP: Op = Op::SetCompatNativePair;
    if let Err(e) = sys::get_compat() {
        let why = format!(
            "kernel lacks the series (ARCH_GET_COMPAT: {})",
            sys::errno_name(e)
        );
        return skipped(OP, &why);
    }
    let mut failure = None;
    measure!(OP, ITERATIONS / 2, || {
        if let Err(e) = sys::compat_native_pair() {
            failure.get_or_insert(e);
        }
    });
    if let Some(why) = failure {
        skipped(OP, &why);
    }
}
