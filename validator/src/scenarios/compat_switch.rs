//! ARCH_SET_COMPAT / ARCH_SET_NATIVE / ARCH_GET_COMPAT themselves: what the
//! switch does to the vDSO, [vsyscall] and mmap placement, and back.

use crate::runner::{errno_reason, Checks, Failure, Outcome, Scenario};
use crate::scenarios::common::{check_mapped_image, check_vdso32_works, free_low_address};
use crate::scenarios::series::{reasons, require_series, series, set_compat, try_set_compat};
use crate::sys::thunks;
use crate::sys::vdso;
use crate::sys::{self, FOUR_GIB, PAGE};
use crate::{diag, ensure, ensure_because, skip};

pub const SCENARIOS: &[Scenario] = &[
    series(
        "get_compat_reads_native",
        "ARCH_GET_COMPAT is implemented and reads 0 in an ordinary 64-bit process",
        "The probe userspace (and this validator) uses to detect the series; vanilla answers EINVAL. The \
         prerequisite of the series' scenarios: the one that fails on vanilla because the interface is missing.",
        "EINVAL",
        get_compat_reads_native,
    ),
    series(
        "set_compat_returns_low_base",
        "ARCH_SET_COMPAT(&0) writes back the new [vdso] base, page aligned and below 4 GiB; ARCH_GET_COMPAT reads 1; \
         CS stays 0x33",
        "The core contract of the new arch_prctl: one call switches the mm to compat and tells userspace where \
         the 32-bit vDSO went.",
        "EINVAL",
        set_compat_returns_low_base,
    ),
    series(
        "compat_vdso32_vsyscall",
        "After ARCH_SET_COMPAT the [vdso] is an ELFCLASS32 image and its __kernel_vsyscall performs getpid \
         from 32-bit code",
        "Fast 32-bit syscalls (sysenter on Intel, syscall on AMD) need the 32-bit landing pad; this proves the \
         in-place vDSO replacement updated context.vdso.",
        "ELFCLASS64",
        compat_vdso32_vsyscall,
    ),
    series(
        "vsyscall_gone_after_set_compat",
        "After ARCH_SET_COMPAT [vsyscall] is no longer listed in /proc/self/maps",
        "CRIU compares maps of ia32 tasks, which never have [vsyscall]; a switched task must look the same.",
        "vsyscall-listed",
        vsyscall_gone_after_set_compat,
    ),
    series(
        "compat_mmap_placement",
        "After ARCH_SET_COMPAT a hint-less 64-bit mmap lands below 4 GiB and one with MAP_ABOVE4G (0x80) above",
        "Memory that libraries allocate after the switch must be reachable from 32-bit code, while 64-bit \
         helpers can still opt out.",
        "addr>=4G",
        compat_mmap_placement,
    ),
    series(
        "set_compat_at_address",
        "ARCH_SET_COMPAT(addr) with a free page-aligned address below 4 GiB puts the 32-bit vDSO text at addr \
         (its vvar just below) and returns addr",
        "CRIU restores the vDSO at the address the dumped task had; the kernel must honour an explicit address.",
        "EINVAL",
        set_compat_at_address,
    ),
    series(
        "set_compat_without_vdso",
        "ARCH_SET_COMPAT after [vdso]/[vvar] were unmapped maps a working ELFCLASS32 vDSO below 4 GiB",
        "A restorer often unmaps everything it does not need before switching; the call must not depend on the \
         old image still being there.",
        "vdso-absent",
        set_compat_without_vdso,
    ),
    series(
        "set_native_restores",
        "ARCH_SET_NATIVE writes back the new base of an ELFCLASS64 vDSO whose clock_gettime works, [vsyscall] is \
         back, mmap lands above 4 GiB and ARCH_GET_COMPAT reads 0",
        "The switch is fully reversible, so a process can leave compat mode without execve.",
        "EINVAL",
        set_native_restores,
    ),
];

fn get_compat_reads_native() -> Outcome {
    require_series()?;
    let v = sys::get_compat().unwrap_or(u64::MAX);
    ensure!(
        v == 0,
        "ARCH_GET_COMPAT reads {v} in a native process (want 0)"
    );
    Ok(())
}

fn set_compat_returns_low_base() -> Outcome {
    thunks::low();
    let before = sys::find_map("[vdso]").map(|m| m.line).unwrap_or_default();
    diag!("before: {before}");
    let base = set_compat(0)?;
    let after = sys::find_map("[vdso]");
    diag!(
        "after: {}",
        after
            .as_ref()
            .map(|m| m.line.as_str())
            .unwrap_or("no [vdso]")
    );
    let compat = sys::get_compat();
    let cs = thunks::current_cs();
    diag!("ARCH_GET_COMPAT = {}, cs {cs:#x}", sys::show(compat));
    let mut c = Checks::default();
    c.check(
        base < FOUR_GIB,
        format!("returned base {base:#x} below 4 GiB"),
    );
    c.check(
        base % PAGE == 0,
        format!("returned base {base:#x} page aligned"),
    );
    c.check(
        after.as_ref().map(|m| m.start) == Some(base),
        "[vdso] starts at the returned base",
    );
    c.check(
        compat == Ok(1),
        format!("ARCH_GET_COMPAT {} (want 1)", sys::show(compat)),
    );
    c.check(cs == 0x33, format!("cs {cs:#x} untouched (want 0x33)"));
    let high: Vec<String> = sys::self_maps()
        .into_iter()
        .filter(|m| (m.name == "[vdso]" || m.name.starts_with("[vvar")) && m.end > FOUR_GIB)
        .map(|m| m.line)
        .collect();
    c.check(
        high.is_empty(),
        format!("no [vdso]/[vvar] left above 4 GiB: {}", high.join(" | ")),
    );
    c.finish()
}

fn compat_vdso32_vsyscall() -> Outcome {
    thunks::low();
    try_set_compat(0);
    let mut c = Checks::default();
    check_vdso32_works(&mut c)?;
    c.finish()
}

fn vsyscall_gone_after_set_compat() -> Outcome {
    let before = sys::find_map("[vsyscall]");
    diag!(
        "before: {}",
        before
            .as_ref()
            .map(|m| m.line.as_str())
            .unwrap_or("no [vsyscall]")
    );
    if before.is_none() {
        skip!("no [vsyscall] before the switch (vsyscall=none or no emulation)");
    }
    try_set_compat(0);
    let after = sys::find_map("[vsyscall]");
    diag!(
        "after: {}",
        after
            .as_ref()
            .map(|m| m.line.as_str())
            .unwrap_or("no [vsyscall]")
    );
    ensure_because!(
        after.is_none(),
        reasons::VSYSCALL_LISTED,
        "[vsyscall] still listed after ARCH_SET_COMPAT"
    );
    Ok(())
}

fn compat_mmap_placement() -> Outcome {
    try_set_compat(0);
    let plain = sys::mmap_anon(0, PAGE, 0);
    let above = sys::mmap_anon(0, PAGE, sys::MAP_ABOVE4G);
    diag!(
        "mmap(0, 4096) = {}, mmap(0, 4096, MAP_ABOVE4G) = {}",
        sys::show(plain),
        sys::show(above)
    );
    let mut c = Checks::default();
    let plain_reason = match plain {
        Ok(_) => reasons::ADDR_ABOVE_4G.to_string(),
        Err(e) => errno_reason(e),
    };
    c.check_because(
        matches!(plain, Ok(a) if a + PAGE <= FOUR_GIB),
        &plain_reason,
        "hint-less mmap below 4 GiB",
    );
    c.check(
        matches!(above, Ok(a) if a >= FOUR_GIB),
        "MAP_ABOVE4G mmap at or above 4 GiB",
    );
    c.finish()
}

fn set_compat_at_address() -> Outcome {
    // The middle of a free MiB: room for the vvar pages below the text.
    let free = free_low_address(1 << 20)?;
    let addr = free + (1 << 19);
    let base = set_compat(addr)?;
    let image: Vec<sys::MapLine> = sys::self_maps()
        .into_iter()
        .filter(|m| m.name == "[vdso]" || m.name.starts_with("[vvar"))
        .collect();
    for m in &image {
        diag!("{}", m.line);
    }
    let text = image.iter().find(|m| m.name == "[vdso]").map(|m| m.start);
    let inside = image
        .iter()
        .all(|m| m.start >= free && m.end <= free + (1 << 20));
    let mut c = Checks::default();
    c.check(
        base == addr,
        format!("returned base {base:#x} (want {addr:#x})"),
    );
    let shown = text.map_or("none".to_string(), |t| format!("{t:#x}"));
    c.check(
        text == Some(addr),
        format!("[vdso] text at {shown} (want {addr:#x})"),
    );
    c.check(
        inside,
        format!(
            "vvar and text inside the free range {free:#x}-{:#x}",
            free + (1 << 20)
        ),
    );
    c.finish()
}

fn set_compat_without_vdso() -> Outcome {
    thunks::low();
    let removed = vdso::unmap_all();
    diag!("unmapped: {}", removed.join(", "));
    let base = try_set_compat(0);
    let mut c = Checks::default();
    let text = sys::find_map("[vdso]").map(|m| m.start);
    c.check_because(
        text.is_some(),
        reasons::VDSO_ABSENT,
        "a [vdso] is mapped after ARCH_SET_COMPAT",
    );
    let shown = |a: Option<u64>| a.map_or("none".to_string(), |a| format!("{a:#x}"));
    c.check(
        base.is_some() && text == base,
        format!(
            "[vdso] at {} is the returned base {}",
            shown(text),
            shown(base)
        ),
    );
    if text.is_some() {
        check_vdso32_works(&mut c)?;
    }
    let g = sys::get_compat();
    c.check(
        g == Ok(1),
        format!("ARCH_GET_COMPAT {} (want 1)", sys::show(g)),
    );
    c.finish()
}

fn set_native_restores() -> Outcome {
    try_set_compat(0);
    let r = sys::switch_mode(sys::ARCH_SET_NATIVE, 0);
    diag!("arch_prctl(ARCH_SET_NATIVE, 0) = {}", sys::show(r));
    let base = r.map_err(|e| {
        Failure::because(
            errno_reason(e),
            format!("ARCH_SET_NATIVE failed: {}", sys::errno_name(e)),
        )
    })?;
    let mut c = Checks::default();
    let v = check_mapped_image(&mut c, false)?;
    c.check(
        v.base == base,
        format!("[vdso] at {:#x} is the returned base {base:#x}", v.base),
    );
    let elf = v.elf().map_err(Failure::Fail)?;
    if elf.class() == vdso::ELFCLASS64 {
        match v.symbol("__vdso_clock_gettime") {
            Ok(f) => {
                // glibc still points at the old image: call the new one directly.
                let f: extern "C" fn(libc::clockid_t, *mut libc::timespec) -> i32 =
                    unsafe { std::mem::transmute(f) };
                let mut ts = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                let mut ks = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                let rv = f(libc::CLOCK_MONOTONIC, &mut ts);
                unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ks) };
                diag!(
                    "vDSO clock_gettime = {rv}, {}.{:09} s; syscall after it says {}.{:09} s",
                    ts.tv_sec,
                    ts.tv_nsec,
                    ks.tv_sec,
                    ks.tv_nsec
                );
                let ns = |t: &libc::timespec| t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128;
                let (v, k) = (ns(&ts), ns(&ks));
                c.check(
                    rv == 0 && v > 0 && v <= k && k - v < 2_000_000_000,
                    "vDSO CLOCK_MONOTONIC is non-zero, not after the syscall's and within 2 s of it",
                );
            }
            Err(e) => c.check(false, e),
        }
    }
    let vsys = sys::find_map("[vsyscall]");
    diag!(
        "{}",
        vsys.as_ref()
            .map(|m| m.line.as_str())
            .unwrap_or("no [vsyscall]")
    );
    c.check(vsys.is_some(), "[vsyscall] listed again");
    let m = sys::mmap_anon(0, PAGE, 0);
    diag!("mmap(0, 4096) = {}", sys::show(m));
    c.check(
        matches!(m, Ok(a) if a >= FOUR_GIB),
        "hint-less mmap above 4 GiB again",
    );
    let g = sys::get_compat();
    c.check(
        g == Ok(0),
        format!("ARCH_GET_COMPAT {} (want 0)", sys::show(g)),
    );
    c.finish()
}
