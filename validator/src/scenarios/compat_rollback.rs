//! The v2 contract of ARCH_SET_COMPAT: a failed switch leaves the process
//! exactly as it was (sealed vDSO, no room below 4 GiB after [vvar] moved),
//! an address is honoured exactly or refused (0x4000, an occupied range),
//! the cheap EALREADY comes before EBUSY, a live io_uring ring gives EBUSY,
//! the vDSO address survives the C library's int-returning arch_prctl(),
//! and a 64-bit mmap() that does not fit below 4 GiB in compat mode falls
//! back above it.
//!
//! On vanilla each fails at `require_series` (EINVAL): without the
//! interface there is no switch to roll back.

use crate::runner::{errno_reason, Checks, Failure, Outcome, Scenario};
use crate::scenarios::series::{require_series, result_reason, series};
use crate::sys::vdso::MappedVdso;
use crate::sys::{self, FOUR_GIB, PAGE};
use crate::{diag, ensure_because};

const NR_MSEAL: i64 = 462;

pub const SCENARIOS: &[Scenario] = &[
    series(
        "rollback_sealed_vdso",
        "ARCH_SET_COMPAT with [vdso] sealed by mseal(2) fails with EPERM; /proc/self/maps is unchanged and \
         clock_gettime through the old vDSO still works",
        "v1 unmapped [vvar] before finding the sealed [vdso]: the next vDSO call died with SIGSEGV.",
        "EINVAL",
        rollback_sealed_vdso,
    ),
    series(
        "rollback_vvar_moved_no_room",
        "With [vvar] moved away, its slot reused and no room below 4 GiB, ARCH_SET_COMPAT fails with ENOMEM \
         and changes nothing",
        "v1 unmapped the old image first and put it back at text + vvar offset, which was taken: the \
         process was left without [vdso] and [vvar].",
        "EINVAL",
        rollback_vvar_moved_no_room,
    ),
    series(
        "set_compat_addr_honoured_or_einval",
        "ARCH_SET_COMPAT at 0x4000 (vvar would start at 0) fails with EINVAL; inside a mapping below 4 GiB \
         with EEXIST; maps unchanged both times",
        "v1 read a vvar start of 0 as \"kernel's choice\" and mapped the vDSO elsewhere with success.",
        "EINVAL",
        set_compat_addr_honoured_or_einval,
    ),
    series(
        "set_native_ealready_before_ebusy",
        "ARCH_SET_NATIVE in a native process with a second thread fails with EALREADY (checked before the \
         task walk), ARCH_SET_COMPAT with EBUSY",
        "The cheap mode check runs without the mmap lock and without walking the tasks.",
        "EINVAL",
        set_native_ealready_before_ebusy,
    ),
    series(
        "set_compat_ebusy_io_uring",
        "ARCH_SET_COMPAT fails with EBUSY while an io_uring SQPOLL ring is alive (its thread runs in the mm)",
        "io_uring threads are users of the mm that v1's own task walk was not meant for; the check now \
         comes from current_is_single_threaded().",
        "EINVAL",
        set_compat_ebusy_io_uring,
    ),
    series(
        "set_compat_via_libc_int_wrapper",
        "ARCH_SET_COMPAT through glibc's int-returning arch_prctl() with the vDSO wanted at 0xc0000000 \
         returns 0 and stores 0xc0000000 through the pointer",
        "v1 returned the address, which reads as negative in an int for addresses at or above 2 GiB.",
        "EINVAL",
        set_compat_via_libc_int_wrapper,
    ),
    series(
        "compat_mmap_4g_falls_back_high",
        "In compat mode a 64-bit mmap() of 4 GiB, which cannot fit below 4 GiB, lands above 4 GiB instead \
         of failing with ENOMEM",
        "The compat layout is a preference for 64-bit syscalls; their caller is 64-bit code.",
        "EINVAL",
        compat_mmap_4g_falls_back_high,
    ),
];

/// /proc/self/maps without [heap], which the reading itself may grow.
fn maps_snapshot() -> String {
    let text = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    text.lines()
        .filter(|l| !l.ends_with("[heap]"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A switch that must fail with `want`: same maps, same mode after it.
fn expect_rollback(c: &mut Checks, code: i32, addr: u64, want: i32) {
    let _ = maps_snapshot();
    let before = maps_snapshot();
    let r = sys::switch_mode(code, addr);
    let after = maps_snapshot();
    diag!("arch_prctl({code:#x}, &{addr:#x}) = {}", sys::show(r));
    c.check_because(
        r == Err(want),
        &result_reason(r),
        format!(
            "fails with {} (got {})",
            sys::errno_name(want),
            sys::show(r)
        ),
    );
    if before != after {
        diag!("maps before:\n{before}maps after:\n{after}");
    }
    c.check_because(before == after, "maps-changed", "/proc/self/maps unchanged");
}

/// clock_gettime through the 64-bit vDSO that is mapped now (SIGSEGV if
/// its [vvar] is gone).
fn vdso64_clock_works(c: &mut Checks) {
    let Some(v) = MappedVdso::find() else {
        c.check_because(false, "vdso-absent", "a [vdso] is mapped");
        return;
    };
    let Ok(sym) = v.symbol("__vdso_clock_gettime") else {
        c.check(false, "__vdso_clock_gettime in the vDSO");
        return;
    };
    let f: extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int =
        unsafe { std::mem::transmute(sym as usize) };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let r = f(libc::CLOCK_MONOTONIC, &mut ts);
    diag!(
        "__vdso_clock_gettime = {r}, {}.{:09}",
        ts.tv_sec,
        ts.tv_nsec
    );
    c.check(
        r == 0 && ts.tv_sec + ts.tv_nsec > 0,
        "the old vDSO still works",
    );
}

fn rollback_sealed_vdso() -> Outcome {
    require_series()?;
    let v = MappedVdso::find().ok_or_else(|| Failure::Fail("no [vdso]".into()))?;
    let r = unsafe { libc::syscall(NR_MSEAL, v.base, v.len, 0) };
    ensure_because!(
        r == 0,
        errno_reason(sys::errno()),
        "mseal([vdso]) failed: {}",
        sys::errno_name(sys::errno())
    );
    let mut c = Checks::default();
    expect_rollback(&mut c, sys::ARCH_SET_COMPAT, 0, libc::EPERM);
    c.check(sys::get_compat() == Ok(0), "still native");
    vdso64_clock_works(&mut c);
    c.finish()
}

/// Fills every gap in [mmap_min_addr, 4 GiB) with PROT_NONE mappings.
fn fill_low() -> Result<(), Failure> {
    let min = std::fs::read_to_string("/proc/sys/vm/mmap_min_addr")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(PAGE)
        .max(PAGE);
    let mut prev = min;
    let mut ends: Vec<(u64, u64)> = sys::self_maps().iter().map(|m| (m.start, m.end)).collect();
    ends.push((FOUR_GIB, FOUR_GIB));
    for (start, end) in ends {
        let start = start.min(FOUR_GIB);
        if start > prev {
            let flags = libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE;
            if sys::mmap_anon(prev, start - prev, flags) != Ok(prev) {
                return Err(Failure::Fail(format!(
                    "filling {prev:#x}-{start:#x} failed"
                )));
            }
        }
        if end >= FOUR_GIB {
            return Ok(());
        }
        prev = prev.max(end);
    }
    Ok(())
}

fn rollback_vvar_moved_no_room() -> Outcome {
    require_series()?;
    let vvar = sys::find_map("[vvar]").ok_or_else(|| Failure::Fail("no [vvar]".into()))?;
    let len = vvar.end - vvar.start;
    let to = sys::mmap_anon(0, len, sys::MAP_ABOVE4G)
        .map_err(|e| Failure::Fail(format!("mmap: {}", sys::errno_name(e))))?;
    let moved = unsafe {
        libc::mremap(
            vvar.start as *mut libc::c_void,
            len as usize,
            len as usize,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            to as *mut libc::c_void,
        )
    };
    ensure_because!(moved as u64 == to, "mremap", "mremap([vvar]) failed");
    let slot = sys::mmap_anon(vvar.start, len, libc::MAP_FIXED_NOREPLACE);
    ensure_because!(
        slot == Ok(vvar.start),
        "mmap",
        "taking the old [vvar] slot failed"
    );
    diag!("[vvar] moved to {to:#x}, its slot {:#x} taken", vvar.start);
    fill_low()?;
    let mut c = Checks::default();
    expect_rollback(&mut c, sys::ARCH_SET_COMPAT, 0, libc::ENOMEM);
    c.check(sys::get_compat() == Ok(0), "still native");
    vdso64_clock_works(&mut c);
    c.finish()
}

fn set_compat_addr_honoured_or_einval() -> Outcome {
    require_series()?;
    let mut c = Checks::default();
    expect_rollback(&mut c, sys::ARCH_SET_COMPAT, 0x4000, libc::EINVAL);
    let taken = sys::mmap_anon(0, 0x10_0000, libc::MAP_32BIT)
        .map_err(|e| Failure::Fail(format!("mmap(MAP_32BIT): {}", sys::errno_name(e))))?;
    expect_rollback(&mut c, sys::ARCH_SET_COMPAT, taken + 0x8_0000, libc::EEXIST);
    c.check(sys::get_compat() == Ok(0), "still native");
    vdso64_clock_works(&mut c);
    c.finish()
}

fn set_native_ealready_before_ebusy() -> Outcome {
    require_series()?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let native = sys::switch_mode(sys::ARCH_SET_NATIVE, 0);
    let compat = sys::switch_mode(sys::ARCH_SET_COMPAT, 0);
    let _ = tx.send(());
    let _ = t.join();
    diag!(
        "with 2 threads: ARCH_SET_NATIVE = {}, ARCH_SET_COMPAT = {}",
        sys::show(native),
        sys::show(compat)
    );
    let mut c = Checks::default();
    c.check_because(
        native == Err(libc::EALREADY),
        &result_reason(native),
        "ARCH_SET_NATIVE while native: EALREADY",
    );
    c.check_because(
        compat == Err(libc::EBUSY),
        &result_reason(compat),
        "ARCH_SET_COMPAT with a second thread: EBUSY",
    );
    c.finish()
}

extern "C" {
    /// glibc's wrapper: `int arch_prctl(int, unsigned long)`.
    fn arch_prctl(code: libc::c_int, addr: libc::c_ulong) -> libc::c_int;
}

fn set_compat_via_libc_int_wrapper() -> Outcome {
    require_series()?;
    let want: u64 = 0xc000_0000;
    ensure_because!(
        sys::range_is_free(want - 0x10000, want + 0x10000),
        "occupied",
        "{want:#x} is not free"
    );
    let mut addr = want;
    let r = unsafe { arch_prctl(sys::ARCH_SET_COMPAT, &mut addr as *mut u64 as libc::c_ulong) };
    diag!("arch_prctl(ARCH_SET_COMPAT, &{want:#x}) = {r}, addr = {addr:#x}");
    let mut c = Checks::default();
    c.check_because(
        r == 0,
        &if r < 0 {
            errno_reason(sys::errno())
        } else {
            "nonzero".into()
        },
        "the int result is 0",
    );
    c.check(
        addr == want,
        format!("the vDSO text {addr:#x} is where asked"),
    );
    let v = MappedVdso::find();
    c.check(
        v.as_ref().is_some_and(|v| v.base == want),
        "[vdso] is mapped there",
    );
    c.finish()
}

fn compat_mmap_4g_falls_back_high() -> Outcome {
    require_series()?;
    sys::switch_mode(sys::ARCH_SET_COMPAT, 0).map_err(|e| {
        Failure::because(
            errno_reason(e),
            format!("ARCH_SET_COMPAT: {}", sys::errno_name(e)),
        )
    })?;
    let r = sys::mmap_anon(0, FOUR_GIB, libc::MAP_NORESERVE);
    diag!("64-bit mmap(NULL, 4 GiB) in compat mode = {}", sys::show(r));
    let mut c = Checks::default();
    c.check_because(r.is_ok(), &result_reason(r), "succeeds");
    c.check(
        r.is_ok_and(|a| a >= FOUR_GIB),
        "lands above 4 GiB (nothing of 4 GiB fits below)",
    );
    c.finish()
}

/// `struct io_uring_params` as 30 u32: flags at 2, sq_thread_idle at 4.
const IORING_SETUP_SQPOLL: u32 = 2;

fn set_compat_ebusy_io_uring() -> Outcome {
    require_series()?;
    let mut params = [0u32; 30];
    params[2] = IORING_SETUP_SQPOLL;
    params[4] = 1000;
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()) };
    ensure_because!(
        fd >= 0,
        errno_reason(sys::errno()),
        "io_uring_setup(SQPOLL) failed: {} (CONFIG_IO_URING in the test config?)",
        sys::errno_name(sys::errno())
    );
    let r = sys::switch_mode(sys::ARCH_SET_COMPAT, 0);
    let mode = sys::get_compat();
    unsafe { libc::close(fd as i32) };
    diag!(
        "with an SQPOLL ring: ARCH_SET_COMPAT = {}, ARCH_GET_COMPAT = {}",
        sys::show(r),
        sys::show(mode)
    );
    let mut c = Checks::default();
    c.check_because(r == Err(libc::EBUSY), &result_reason(r), "EBUSY");
    c.check(mode == Ok(0), "still native");
    c.finish()
}
