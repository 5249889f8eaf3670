//! Crash capture: a scenario child that dies on a fatal signal records the
//! signal, faulting address, rip and cs in a page shared with the parent,
//! so the runner can name the crash in that scenario's result.

use crate::sys;
use std::sync::atomic::{AtomicU64, Ordering};

/// Page shared by parent and children: [magic, signo, si_addr, rip, cs].
static CRASH_PAGE: AtomicU64 = AtomicU64::new(0);
const CRASH_MAGIC: u64 = 0x6372_6173_6821;

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

/// Child side: record fatal signals, on an alternate stack (the fault may
/// be a bad stack pointer left by 32-bit code). The alternate stack lies
/// below 4 GiB: an ia32 rt_sigreturn restores the alternate stack from the
/// 32-bit `uc_stack` of its frame, which would cut a higher address to 32
/// bits, and every later fatal signal would then fail to find its stack
/// (SIGSEGV from the kernel instead of the recorded one; stress seed 3).
pub(super) fn install_crash_handlers() {
    unsafe {
        let stack_len = 256 * 1024;
        let stack = libc::mmap(
            std::ptr::null_mut(),
            stack_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
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
