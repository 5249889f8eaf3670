//! Processes and signals: fork (the child continues the sequence),
//! signals delivered in 32-bit and in 64-bit code, int 0x80 from 32-bit
//! code, and another process reading this one's /proc files under ptrace.

use super::check::Snapshot;
use super::ops::Op;
use super::worker::{broken, Broken, Worker};
use crate::diag;
use crate::scenarios::common::{install_compat_handler, Frame};
use crate::sys::thunks::{self, Entry};
use crate::sys::{self, nr32, Exit, MapLine};
use std::sync::atomic::{AtomicU32, Ordering};

pub fn run(w: &mut Worker, op: Op) -> Result<(), Broken> {
    match op {
        Op::Fork => fork_and_continue(w),
        Op::Signal32 => signal32(w, true),
        Op::Signal32NoRestorer => signal32(w, false),
        Op::Signal64 | Op::Signal64In32 => signal64(w, op == Op::Signal64In32),
        Op::Int80Getpid => int80_getpid(w),
        _ => proc_reader(w),
    }
}

/// The child takes over the worker's sequence (and its slot); the parent
/// leaves. The scenario process, a subreaper, collects both.
fn fork_and_continue(w: &mut Worker) -> Result<(), Broken> {
    let child = unsafe { libc::fork() };
    match child {
        0 => {
            w.slot.set_pid(sys::getpid());
            w.slot.note(sys::getpid() as u64, 0);
            w.slot.result(Ok(0));
            Ok(())
        }
        c if c > 0 => {
            w.slot.hand_over(sys::getpid(), c);
            unsafe { libc::_exit(0) };
        }
        _ => {
            // EAGAIN under memory pressure is not the kernel breaking a rule.
            w.slot.result(Err(sys::errno()));
            Ok(())
        }
    }
}

/// An ia32 handler (installed with the compat rt_sigaction) for SIGUSR1
/// raised from 32-bit code; without SA_RESTORER it returns through the
/// 32-bit vDSO when one is mapped, else through the frame's retcode.
fn signal32(w: &mut Worker, restorer: bool) -> Result<(), Broken> {
    let frame = if w.rng.chance(50) {
        Frame::Rt
    } else {
        Frame::NonRt
    };
    w.slot
        .note(u64::from(restorer), u64::from(frame == Frame::Rt));
    if let Err(e) = install_compat_handler(restorer, frame) {
        let what = format!("compat rt_sigaction = -1 {}", sys::errno_name(e));
        return Err(broken("signal32_delivered", what));
    }
    thunks::reset_handler_record();
    let pid = sys::getpid() as u32;
    let r = thunks::int80_from_32(nr32::KILL, &[pid, libc::SIGUSR1 as u32]);
    w.slot.result(Ok(r as u64));
    let [sig, cs, eip, count, back_to] = thunks::handler_record();
    let after = thunks::entry(Entry::Int80After);
    let ok =
        r == 0 && sig == libc::SIGUSR1 as u32 && cs & 0xffff == 0x23 && eip == after && count == 1;
    if !ok {
        let what = format!(
            "kill = {r}; handler saw sig {sig}, cs {:#x}, eip {eip:#x} (want {after:#x}), ran {count} time(s), returned to {back_to:#x}",
            cs & 0xffff
        );
        return Err(broken("signal32_delivered", what));
    }
    Ok(())
}

static SIGNALS64: AtomicU32 = AtomicU32::new(0);

extern "C" fn count_signal64(_sig: i32) {
    SIGNALS64.fetch_add(1, Ordering::SeqCst);
}

/// A 64-bit handler for SIGUSR2 (glibc's restorer, no vDSO involved).
pub fn install_signal64_handler() {
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = count_signal64 as *const () as usize;
        libc::sigaction(libc::SIGUSR2, &act, std::ptr::null_mut());
    }
}

/// SIGUSR2 to the 64-bit handler, raised from 64-bit or from 32-bit code
/// (the kernel builds a 64-bit frame and sigreturn goes back to CS 0x23).
fn signal64(w: &mut Worker, from_32bit: bool) -> Result<(), Broken> {
    let before = SIGNALS64.load(Ordering::SeqCst);
    let pid = sys::getpid();
    w.slot.note(u64::from(from_32bit), u64::from(before));
    let r = if from_32bit {
        thunks::int80_from_32(nr32::KILL, &[pid as u32, libc::SIGUSR2 as u32]) as i64
    } else {
        unsafe { libc::syscall(libc::SYS_kill, pid, libc::SIGUSR2) }
    };
    let count = SIGNALS64.load(Ordering::SeqCst) - before;
    w.slot.result(Ok(u64::from(count)));
    if r != 0 || count != 1 {
        let what = format!("kill = {r}, the 64-bit handler ran {count} time(s) (want once)");
        return Err(broken("signal64_delivered", what));
    }
    Ok(())
}

fn int80_getpid(w: &mut Worker) -> Result<(), Broken> {
    let got = thunks::int80_from_32(nr32::GETPID, &[]);
    w.slot.result(Ok(got as u64));
    let pid = sys::getpid();
    if got != pid {
        let what = format!("int 0x80 getpid from 32-bit code = {got} (want {pid})");
        return Err(broken("int80_from_32bit", what));
    }
    Ok(())
}

/// A child attaches to this worker with ptrace, reads its maps, smaps and
/// the [vdso] through /proc/PID/mem, and tries PTRACE_ARCH_PRCTL
/// (ARCH_SET_COMPAT), which must fail; nothing of the worker changes.
fn proc_reader(w: &mut Worker) -> Result<(), Broken> {
    let (parent, compat) = (sys::getpid(), w.compat);
    let mut snap = Snapshot::take();
    let child = sys::fork_child(|| read_under_ptrace(parent, compat));
    let exit = sys::wait_exit(child, 10_000);
    w.slot.note(child as u64, 0);
    w.slot.result(match exit {
        Exit::Code(c) => Ok(c as u64),
        _ => Err(libc::ECHILD),
    });
    if exit != Exit::Code(0) {
        let what = format!("the reader ended with {exit} (its diagnostic is above)");
        return Err(broken("proc_view", what));
    }
    snap.unchanged("PTRACE_ARCH_PRCTL(ARCH_SET_COMPAT) from a tracer")
}

const PTRACE_ARCH_PRCTL: libc::c_uint = 30;

fn read_under_ptrace(pid: i32, compat: bool) -> i32 {
    let seized = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) };
    if seized != 0 {
        diag!(
            "proc reader: PTRACE_SEIZE -1 {}",
            sys::errno_name(sys::errno())
        );
        return 1;
    }
    unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0) };
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    let problem = check_proc_files(pid, compat).err().or_else(|| {
        let r = unsafe { libc::ptrace(PTRACE_ARCH_PRCTL, pid, 0, sys::ARCH_SET_COMPAT as usize) };
        let e = sys::errno();
        (r != -1 || e != libc::EINVAL).then(|| {
            format!(
                "PTRACE_ARCH_PRCTL(ARCH_SET_COMPAT) = {r} {} (want -1 EINVAL)",
                sys::errno_name(e)
            )
        })
    });
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
    match problem {
        None => 0,
        Some(p) => {
            diag!("proc reader: {p}");
            1
        }
    }
}

/// maps and smaps list the same [vdso], and /proc/PID/mem shows an ELF
/// header of the mode's class there.
fn check_proc_files(pid: i32, compat: bool) -> Result<(), String> {
    let maps = sys::maps_of(&pid.to_string());
    let smaps =
        std::fs::read_to_string(format!("/proc/{pid}/smaps")).map_err(|e| format!("smaps: {e}"))?;
    let Some(vdso) = maps.iter().find(|m| m.name == "[vdso]") else {
        return Ok(());
    };
    let range = vdso.line.split_whitespace().next().unwrap_or("");
    if !smaps
        .lines()
        .any(|l| l.starts_with(range) && l.ends_with("[vdso]"))
    {
        return Err(format!("smaps does not list [vdso] {range}"));
    }
    read_header(pid, vdso, compat)
}

fn read_header(pid: i32, vdso: &MapLine, compat: bool) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).map_err(|e| format!("mem: {e}"))?;
    let mut header = [0u8; 5];
    mem.read_exact_at(&mut header, vdso.start).map_err(|e| {
        format!(
            "reading [vdso] at {:#x} through /proc/PID/mem: {e}",
            vdso.start
        )
    })?;
    let want_class = if compat { 1 } else { 2 };
    if &header[..4] != b"\x7fELF" || header[4] != want_class {
        return Err(format!(
            "[vdso] header {header:02x?} (want class {want_class})"
        ));
    }
    Ok(())
}
