//! What execve() resets and compat-exec must reset by hand, since the
//! process lives on: signal handlers, the alternate signal stack,
//! close-on-exec descriptors, the command name, glibc's rseq registration
//! (its area is in memory the trampoline unmaps).

use crate::abi::{errno, errno_name};

/// struct sigaction as the rt_sigaction syscall takes it.
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Handlers go back to SIG_DFL; ignored signals stay ignored.
pub fn reset_signal_handlers() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let mut old = KernelSigaction::default();
        let none = std::ptr::null::<KernelSigaction>();
        let r = unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, none, &mut old, 8) };
        if r == 0 && old.handler != libc::SIG_DFL && old.handler != libc::SIG_IGN {
            let dfl = KernelSigaction::default();
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8,
                )
            };
        }
    }
}

pub fn disable_sigaltstack() {
    let ss = libc::stack_t {
        ss_sp: std::ptr::null_mut(),
        ss_flags: libc::SS_DISABLE,
        ss_size: 0,
    };
    unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
}

/// Closes every descriptor marked close-on-exec, except `keep`.
pub fn close_cloexec_fds(keep: i32) {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if fd != keep && flags >= 0 && flags & libc::FD_CLOEXEC != 0 {
            unsafe { libc::close(fd) };
        }
    }
}

/// /proc/self/comm becomes the program's file name, as execve() sets it.
pub fn set_comm(path: &[u8]) {
    let base = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let mut name = [0u8; 16];
    let n = base.len().min(15);
    name[..n].copy_from_slice(&base[..n]);
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

extern "C" {
    static __rseq_offset: isize;
    static __rseq_size: u32;
}

const RSEQ_FLAG_UNREGISTER: i32 = 1;
const RSEQ_SIG: u32 = 0x5305_3053;

/// Unregisters glibc's rseq area: the kernel writes to it on preemption and
/// would kill the process with SIGSEGV once the area is unmapped; and the
/// 32-bit C library registers its own.
pub fn unregister_rseq() -> Result<(), String> {
    let (offset, size) = unsafe { (__rseq_offset, __rseq_size) };
    if size == 0 {
        return Ok(());
    }
    let tp: usize;
    unsafe { core::arch::asm!("mov {}, fs:0", out(reg) tp) };
    let area = (tp as isize + offset) as usize;
    // glibc registers sizeof(struct rseq_area), which __rseq_size reports
    // or (from glibc 2.40) rounds down from.
    for len in [size, 32] {
        let r = unsafe { libc::syscall(libc::SYS_rseq, area, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) };
        if r == 0 {
            return Ok(());
        }
    }
    Err(format!(
        "cannot unregister glibc's rseq area at {area:#x}: {}",
        errno_name(errno())
    ))
}
