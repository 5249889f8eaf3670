//! ARCH_MAP_VDSO_32/64 (CONFIG_CHECKPOINT_RESTORE, v4.9): what CRIU uses
//! today to give a restored ia32 task its vDSO.

use crate::diag;
use crate::runner::{Checks, Expect, Outcome, Scenario};
use crate::scenarios::common::{check_vdso32_works, map_vdso32_low};
use crate::sys;
use crate::sys::thunks;

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "map_vdso_32",
        description: "ARCH_MAP_VDSO_32 after unmapping [vdso]/[vvar]: ELFCLASS32 image below 4 GiB whose \
                      __kernel_vsyscall performs getpid from 32-bit code",
        proves: "The 32-bit vDSO works in a 64-bit process once mapped; the series builds ARCH_SET_COMPAT on the \
                 same image and landing pad.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: map_vdso_32,
    },
    Scenario {
        id: "map_vdso_64_eexist",
        description: "ARCH_MAP_VDSO_64 and ARCH_MAP_VDSO_32 while a vDSO is mapped fail with EEXIST",
        proves: "The existing C/R interface refuses to stack a second vDSO; ARCH_SET_COMPAT must replace, not add.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: map_vdso_64_eexist,
    },
];

fn map_vdso_32() -> Outcome {
    thunks::low();
    map_vdso32_low()?;
    let mut c = Checks::default();
    check_vdso32_works(&mut c)?;
    c.finish()
}

fn map_vdso_64_eexist() -> Outcome {
    let r64 = sys::arch_prctl(sys::ARCH_MAP_VDSO_64, 0);
    let r32 = sys::arch_prctl(sys::ARCH_MAP_VDSO_32, 0);
    diag!(
        "ARCH_MAP_VDSO_64 = {}, ARCH_MAP_VDSO_32 = {}",
        sys::show(r64),
        sys::show(r32)
    );
    let mut c = Checks::default();
    c.check(
        r64 == Err(libc::EEXIST),
        format!("ARCH_MAP_VDSO_64 {} (want EEXIST)", sys::show(r64)),
    );
    c.check(
        r32 == Err(libc::EEXIST),
        format!("ARCH_MAP_VDSO_32 {} (want EEXIST)", sys::show(r32)),
    );
    c.finish()
}
