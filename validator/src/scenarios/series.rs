//! Shared pieces of the scenarios for the series' interface
//! (ARCH_SET_COMPAT 0x2004, ARCH_SET_NATIVE 0x2005, ARCH_GET_COMPAT 0x2006,
//! MAP_ABOVE4G 0x80). On vanilla each fails on its own "before"
//! observable where one exists (see `try_set_compat`); only where the call
//! itself is all there is to observe does it fail at the call (EINVAL).

use crate::runner::{errno_reason, Expect, Failure, Outcome, Scenario};
use crate::sys;
use crate::{diag, fail_because};

/// Reason tokens (see `contract::reason`) for the observables the series
/// changes, as vanilla shows them.
pub mod reasons {
    /// A hint-less mmap returned an address at or above 4 GiB.
    pub const ADDR_ABOVE_4G: &str = "addr>=4G";
    /// `[vsyscall]` is listed in /proc/self/maps.
    pub const VSYSCALL_LISTED: &str = "vsyscall-listed";
    /// No `[vdso]` is mapped.
    pub const VDSO_ABSENT: &str = "vdso-absent";
    /// A mapping made or grown by compat code crosses 4 GiB.
    pub const CROSSES_4G: &str = "crosses-4G";
    /// A call that must fail succeeded.
    pub const SUCCESS: &str = "success";
}

/// Words of the subjects of the patches that change scenario results: the
/// patch each scenario names in `changed_by` must have them in its subject
/// (`compare --per-patch` flags a change anywhere else).
pub mod patches {
    /// 0001: PTRACE_ARCH_PRCTL no longer maps a vDSO into the tracer.
    pub const PTRACE_MAP_VDSO: &str = "through PTRACE_ARCH_PRCTL";
    /// 0002: the ia32 signal frame's retcode when no 32-bit vDSO is mapped.
    pub const RETCODE: &str = "on-stack retcode";
    /// 0003: compat mmap()/mremap() ranges end at 4 GiB.
    pub const COMPAT_BOUNDS: &str = "Bound compat mmap() and mremap()";
    /// 0004: munmap() of [vdso] clears context.vdso.
    pub const FORGET_VDSO: &str = "Forget the vDSO address";
    /// 0008: the interface itself; every scenario that needs it changes here.
    pub const ABI: &str = "Add ARCH_SET_COMPAT";
}

/// A scenario of the series: fails on vanilla on the observable
/// `vanilla_reason` (a token), passes patched.
pub const fn series(
    id: &'static str,
    description: &'static str,
    proves: &'static str,
    vanilla_reason: &'static str,
    run: fn() -> Outcome,
) -> Scenario {
    Scenario {
        id,
        description,
        proves,
        vanilla: Expect::fail(vanilla_reason),
        patched: Expect::PASS,
        changed_by: Some(patches::ABI),
        run,
    }
}

/// Fails with ARCH_GET_COMPAT's errno (EINVAL on vanilla) unless it works.
/// Only for scenarios with no "before" observable of their own.
pub fn require_series() -> Outcome {
    match sys::get_compat() {
        Ok(v) => {
            diag!("ARCH_GET_COMPAT reads {v}: kernel has the series");
            Ok(())
        }
        Err(e) => fail_because!(
            errno_reason(e),
            "ARCH_GET_COMPAT: -1 {}: kernel lacks the compat-switch series",
            sys::errno_name(e)
        ),
    }
}

/// ARCH_SET_COMPAT(addr); on success glibc's cached 64-bit vDSO pointers
/// dangle, so callers must not use clock functions afterwards. Fails with
/// the call's errno.
pub fn set_compat(addr: u64) -> Result<u64, Failure> {
    let r = sys::switch_mode(sys::ARCH_SET_COMPAT, addr);
    diag!("arch_prctl(ARCH_SET_COMPAT, {addr:#x}) = {}", sys::show(r));
    r.map_err(|e| {
        Failure::because(
            errno_reason(e),
            format!("ARCH_SET_COMPAT failed: {}", sys::errno_name(e)),
        )
    })
}

/// ARCH_SET_COMPAT(addr) for a scenario that checks the state after the
/// switch: a failure is printed and the scenario goes on, so that on
/// vanilla it fails on that state (the "before" observable), not on the
/// missing call.
pub fn try_set_compat(addr: u64) -> Option<u64> {
    let r = sys::switch_mode(sys::ARCH_SET_COMPAT, addr);
    diag!("arch_prctl(ARCH_SET_COMPAT, {addr:#x}) = {}", sys::show(r));
    if r.is_err() {
        diag!("going on without the switch: what follows is the state it should have changed");
    }
    r.ok()
}

/// The reason token for the result of a call that should have failed
/// otherwise: its errno name, or `success`.
pub fn result_reason(r: Result<u64, i32>) -> String {
    match r {
        Ok(_) => reasons::SUCCESS.to_string(),
        Err(e) => errno_reason(e),
    }
}
