//! ARCH_MAP_VDSO_32/64 (CONFIG_CHECKPOINT_RESTORE, v4.9): what CRIU uses
//! today to give a restored ia32 task its vDSO.

use crate::runner::{Checks, Expect, Failure, Outcome, Scenario};
use crate::sys::{self, nr32, FOUR_GIB};
use crate::sys::thunks::{self, Regs32};
use crate::sys::vdso::{self, MappedVdso};
use crate::{diag, ensure};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "map_vdso_32",
        description: "ARCH_MAP_VDSO_32 after unmapping [vdso]/[vvar]: ELFCLASS32 image below 4 GiB whose \
                      __kernel_vsyscall performs getpid from 32-bit code",
        proves: "The 32-bit vDSO works in a 64-bit process once mapped; the series builds ARCH_SET_COMPAT on the \
                 same image and landing pad.",
        vanilla: Expect::Pass,
        patched: Expect::Pass,
        run: map_vdso_32,
    },
    Scenario {
        id: "map_vdso_64_eexist",
        description: "ARCH_MAP_VDSO_64 and ARCH_MAP_VDSO_32 while a vDSO is mapped fail with EEXIST",
        proves: "The existing C/R interface refuses to stack a second vDSO; ARCH_SET_COMPAT must replace, not add.",
        vanilla: Expect::Pass,
        patched: Expect::Pass,
        run: map_vdso_64_eexist,
    },
];

/// A free, page-aligned address below 4 GiB with `len` bytes free after it.
pub fn free_low_address(len: u64) -> Result<u64, Failure> {
    let probe = sys::mmap_anon(0, len, libc::MAP_32BIT)
        .map_err(|e| Failure::Fail(format!("MAP_32BIT probe failed: {}", sys::errno_name(e))))?;
    let _ = sys::munmap(probe, len);
    Ok(probe)
}

/// Finds the mapped [vdso], prints its range and header, and checks that
/// it is the 32-bit (i386) or the 64-bit (x86-64) image.
pub fn check_mapped_image(c: &mut Checks, want_32bit: bool) -> Result<MappedVdso, Failure> {
    let v =
        MappedVdso::find().ok_or_else(|| Failure::Fail("no [vdso] in /proc/self/maps".into()))?;
    diag!(
        "[vdso] {:#x}-{:#x}, header {}",
        v.base,
        v.base + v.len,
        v.header_hex()
    );
    let (class, class_name, machine, machine_name) = if want_32bit {
        (vdso::ELFCLASS32, "ELFCLASS32", vdso::EM_386, "EM_386")
    } else {
        (vdso::ELFCLASS64, "ELFCLASS64", vdso::EM_X86_64, "EM_X86_64")
    };
    let elf = v.elf().map_err(Failure::Fail)?;
    c.check(
        elf.class() == class,
        format!("EI_CLASS {} (want {class}, {class_name})", elf.class()),
    );
    c.check(
        elf.machine() == machine,
        format!(
            "e_machine {} (want {machine}, {machine_name})",
            elf.machine()
        ),
    );
    Ok(v)
}

/// Checks that the mapped [vdso] is an ELFCLASS32 i386 image below 4 GiB
/// and that its __kernel_vsyscall performs getpid from 32-bit code.
pub fn check_vdso32_works(c: &mut Checks) -> Result<(), Failure> {
    let v = check_mapped_image(c, true)?;
    c.check(
        v.base + v.len <= FOUR_GIB,
        format!("[vdso] {:#x} below 4 GiB", v.base),
    );
    let elf = v.elf().map_err(Failure::Fail)?;
    if elf.class() != vdso::ELFCLASS32 || v.base + v.len > FOUR_GIB {
        return Ok(());
    }
    let vsyscall = v.symbol("__kernel_vsyscall").map_err(Failure::Fail)?;
    let pid = sys::getpid();
    let out = thunks::call32(vsyscall as u32, Regs32::syscall(nr32::GETPID, &[]));
    diag!(
        "__kernel_vsyscall at {vsyscall:#x}: getpid from 32-bit code = {}, getpid() = {pid}",
        out.eax as i32
    );
    c.check(
        out.eax as i32 == pid,
        format!("__kernel_vsyscall getpid {} (want {pid})", out.eax as i32),
    );
    Ok(())
}

fn map_vdso_32() -> Outcome {
    thunks::low();
    let removed = vdso::unmap_all();
    diag!("unmapped: {}", removed.join(", "));
    // From here on glibc's cached vDSO pointers dangle: no clock calls.
    let hint = free_low_address(1 << 20)?;
    let r = sys::arch_prctl(sys::ARCH_MAP_VDSO_32, hint);
    diag!(
        "arch_prctl(ARCH_MAP_VDSO_32, {hint:#x}) = {} (image size)",
        sys::show(r)
    );
    ensure!(r.is_ok(), "ARCH_MAP_VDSO_32 failed: {}", sys::show(r));
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
