//! Shared pieces of the scenarios for the series' interface
//! (ARCH_SET_COMPAT 0x2004, ARCH_SET_NATIVE 0x2005, ARCH_GET_COMPAT 0x2006,
//! MAP_ABOVE4G 0x80): on vanilla they fail at the ARCH_GET_COMPAT probe
//! (EINVAL), the expected "before" result.

use crate::runner::{Expect, Failure, Outcome, Scenario};
use crate::sys;
use crate::{diag, fail};

/// A scenario of the series: fails on vanilla, passes patched.
pub const fn series(
    id: &'static str,
    description: &'static str,
    proves: &'static str,
    run: fn() -> Outcome,
) -> Scenario {
    Scenario {
        id,
        description,
        proves,
        vanilla: Expect::FAIL,
        patched: Expect::PASS,
        run,
    }
}

/// Fails (the expected result on vanilla) unless ARCH_GET_COMPAT works.
pub fn require_series() -> Outcome {
    match sys::get_compat() {
        Ok(v) => {
            diag!("ARCH_GET_COMPAT reads {v}: kernel has the series");
            Ok(())
        }
        Err(e) => fail!(
            "ARCH_GET_COMPAT: -1 {}: kernel lacks the compat-switch series",
            sys::errno_name(e)
        ),
    }
}

/// ARCH_SET_COMPAT(addr); on success glibc's cached 64-bit vDSO pointers
/// dangle, so callers must not use clock functions afterwards.
pub fn set_compat(addr: u64) -> Result<u64, Failure> {
    let r = sys::arch_prctl(sys::ARCH_SET_COMPAT, addr);
    diag!("arch_prctl(ARCH_SET_COMPAT, {addr:#x}) = {}", sys::show(r));
    r.map_err(|e| Failure::Fail(format!("ARCH_SET_COMPAT failed: {}", sys::errno_name(e))))
}
