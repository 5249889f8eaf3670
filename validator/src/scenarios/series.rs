//! The interface the series adds: ARCH_SET_COMPAT (0x2004), ARCH_SET_NATIVE
//! (0x2005), ARCH_GET_COMPAT (0x2006) and MAP_ABOVE4G. On vanilla the
//! scenarios here fail at the ARCH_GET_COMPAT probe (EINVAL), except
//! ptrace_map_vdso_rejected, whose vanilla behaviour is observed directly.

use crate::scenario::{Checks, Expect, Failure, Outcome, Scenario};
use crate::scenarios::introspection::wait_stop;
use crate::scenarios::vdso_upstream::{check_vdso32_works, free_low_address};
use crate::sys::{self, Exit, FOUR_GIB, PAGE};
use crate::thunks;
use crate::vdso::{self, MappedVdso};
use crate::{diag, ensure, fail, skip};

const fn series(
    id: &'static str,
    description: &'static str,
    proves: &'static str,
    run: fn() -> Outcome,
) -> Scenario {
    Scenario {
        id,
        description,
        proves,
        vanilla: Expect::Fail,
        patched: Expect::Pass,
        run,
    }
}

pub const SCENARIOS: &[Scenario] = &[
    series(
        "get_compat_reads_native",
        "ARCH_GET_COMPAT is implemented and reads 0 in an ordinary 64-bit process",
        "The probe userspace (and this validator) uses to detect the series; vanilla answers EINVAL.",
        get_compat_reads_native,
    ),
    series(
        "set_compat_returns_low_base",
        "ARCH_SET_COMPAT(0) returns the new [vdso] base, page aligned and below 4 GiB; ARCH_GET_COMPAT reads 1; \
         CS stays 0x33",
        "The core contract of the new arch_prctl: one call switches the mm to compat and tells userspace where \
         the 32-bit vDSO went.",
        set_compat_returns_low_base,
    ),
    series(
        "compat_vdso32_vsyscall",
        "After ARCH_SET_COMPAT the [vdso] is an ELFCLASS32 image and its __kernel_vsyscall performs getpid \
         from 32-bit code",
        "Fast 32-bit syscalls (sysenter on Intel, syscall on AMD) need the 32-bit landing pad; this proves the \
         in-place vDSO replacement updated context.vdso.",
        compat_vdso32_vsyscall,
    ),
    series(
        "vsyscall_gone_after_set_compat",
        "After ARCH_SET_COMPAT [vsyscall] is no longer listed in /proc/self/maps",
        "CRIU compares maps of ia32 tasks, which never have [vsyscall]; a switched task must look the same.",
        vsyscall_gone_after_set_compat,
    ),
    series(
        "compat_mmap_placement",
        "After ARCH_SET_COMPAT a hint-less 64-bit mmap lands below 4 GiB and one with MAP_ABOVE4G (0x80) above",
        "Memory that libraries allocate after the switch must be reachable from 32-bit code, while 64-bit \
         helpers can still opt out.",
        compat_mmap_placement,
    ),
    series(
        "set_compat_at_address",
        "ARCH_SET_COMPAT(addr) with a free page-aligned address below 4 GiB puts the 32-bit vDSO text at addr \
         (its vvar just below) and returns addr",
        "CRIU restores the vDSO at the address the dumped task had; the kernel must honour an explicit address.",
        set_compat_at_address,
    ),
    series(
        "set_compat_without_vdso",
        "ARCH_SET_COMPAT after [vdso]/[vvar] were unmapped maps a working ELFCLASS32 vDSO below 4 GiB",
        "A restorer often unmaps everything it does not need before switching; the call must not depend on the \
         old image still being there.",
        set_compat_without_vdso,
    ),
    series(
        "compat_signal_vdso_restorer",
        "After ARCH_SET_COMPAT a compat handler without SA_RESTORER returns through the 32-bit vDSO's \
         __kernel_rt_sigreturn",
        "Proves vdso_image (not only context.vdso) was switched: the kernel computes the default restorer \
         from it.",
        compat_signal_vdso_restorer,
    ),
    series(
        "fork_inherits_compat",
        "A child forked after ARCH_SET_COMPAT reads ARCH_GET_COMPAT 1 and has the ELFCLASS32 vDSO",
        "fork copies the vDSO mappings, so the compat state must follow them or the child would run with a \
         32-bit image but 64-bit rules.",
        fork_inherits_compat,
    ),
    series(
        "execve_resets_compat",
        "execve of a 64-bit program after ARCH_SET_COMPAT starts native: ARCH_GET_COMPAT 0, ELFCLASS64 vDSO, \
         [vsyscall], mmap above 4 GiB",
        "The switch must not leak into the next program; exec is the usual way back for a launcher.",
        execve_resets_compat,
    ),
    series(
        "native_signal_after_set_compat",
        "After ARCH_SET_COMPAT a 64-bit handler (glibc sigaction) still runs and returns for a signal raised in \
         64-bit code",
        "The switched process still runs its 64-bit code; native signal delivery must not depend on the vDSO \
         image that was swapped.",
        native_signal_after_set_compat,
    ),
    series(
        "set_native_restores",
        "ARCH_SET_NATIVE returns the new base of an ELFCLASS64 vDSO whose clock_gettime works, [vsyscall] is \
         back, mmap lands above 4 GiB and ARCH_GET_COMPAT reads 0",
        "The switch is fully reversible, so a process can leave compat mode without execve.",
        set_native_restores,
    ),
    series(
        "set_compat_ebusy_threads",
        "ARCH_SET_COMPAT fails with EBUSY and changes nothing while a second thread or a CLONE_VM child \
         shares the mm",
        "Switching an mm shared with running threads would change their address-space rules under them.",
        set_compat_ebusy_threads,
    ),
    series(
        "set_compat_einval_bad_addr",
        "ARCH_SET_COMPAT with an unaligned address or one at or above 4 GiB fails with EINVAL",
        "The 32-bit vDSO must be reachable from 32-bit code; bad input is refused instead of mapped high.",
        set_compat_einval_bad_addr,
    ),
    series(
        "set_compat_twice_ealready",
        "ARCH_SET_COMPAT twice fails with EALREADY, as does ARCH_SET_NATIVE on a native process",
        "Repeated calls must not remap the vDSO again behind userspace's back.",
        set_compat_twice_ealready,
    ),
    series(
        "ptrace_map_vdso_rejected",
        "PTRACE_ARCH_PRCTL(ARCH_MAP_VDSO_32) from a tracer without a vDSO fails with EINVAL instead of mapping \
         a vDSO into the tracer",
        "Vanilla's map_vdso_once() works on current->mm, so the tracer gets the vDSO meant for the tracee; the \
         series closes this hole next to its own ptrace check.",
        ptrace_map_vdso_rejected,
    ),
    series(
        "set_compat_ptrace_rejected",
        "PTRACE_ARCH_PRCTL(ARCH_SET_COMPAT) on a stopped tracee is rejected (EINVAL) and neither mm changes",
        "do_arch_prctl_64 through ptrace acts on the tracer's mm for vDSO codes; the series must refuse it.",
        set_compat_ptrace_rejected,
    ),
];

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
    require_series()?;
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
    require_series()?;
    thunks::low();
    set_compat(0)?;
    let mut c = Checks::default();
    check_vdso32_works(&mut c)?;
    c.finish()
}

fn vsyscall_gone_after_set_compat() -> Outcome {
    require_series()?;
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
    set_compat(0)?;
    let after = sys::find_map("[vsyscall]");
    diag!(
        "after: {}",
        after
            .as_ref()
            .map(|m| m.line.as_str())
            .unwrap_or("no [vsyscall]")
    );
    ensure!(
        after.is_none(),
        "[vsyscall] still listed after ARCH_SET_COMPAT"
    );
    Ok(())
}

fn compat_mmap_placement() -> Outcome {
    require_series()?;
    set_compat(0)?;
    let plain = sys::mmap_anon(0, PAGE, 0);
    let above = sys::mmap_anon(0, PAGE, sys::MAP_ABOVE4G);
    diag!(
        "mmap(0, 4096) = {}, mmap(0, 4096, MAP_ABOVE4G) = {}",
        sys::show(plain),
        sys::show(above)
    );
    let mut c = Checks::default();
    c.check(
        matches!(plain, Ok(a) if a + PAGE <= FOUR_GIB),
        "hint-less mmap below 4 GiB",
    );
    c.check(
        matches!(above, Ok(a) if a >= FOUR_GIB),
        "MAP_ABOVE4G mmap at or above 4 GiB",
    );
    c.finish()
}

fn set_compat_at_address() -> Outcome {
    require_series()?;
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
    require_series()?;
    thunks::low();
    let removed = vdso::unmap_all();
    diag!("unmapped: {}", removed.join(", "));
    let base = set_compat(0)?;
    let mut c = Checks::default();
    let text = sys::find_map("[vdso]").map(|m| m.start);
    c.check(
        text == Some(base),
        format!("[vdso] at the returned base {base:#x}"),
    );
    check_vdso32_works(&mut c)?;
    let g = sys::get_compat();
    c.check(
        g == Ok(1),
        format!("ARCH_GET_COMPAT {} (want 1)", sys::show(g)),
    );
    c.finish()
}

fn compat_signal_vdso_restorer() -> Outcome {
    require_series()?;
    thunks::low();
    set_compat(0)?;
    let v = MappedVdso::find().ok_or_else(|| Failure::Fail("no [vdso]".into()))?;
    match v.symbol("__kernel_rt_sigreturn") {
        Ok(a) => diag!("__kernel_rt_sigreturn of the new image at {a:#x}"),
        Err(e) => diag!("{e}"),
    }
    crate::scenarios::signals::raise_in_32bit(false, crate::scenarios::signals::Frame::Rt)
}

fn fork_inherits_compat() -> Outcome {
    require_series()?;
    set_compat(0)?;
    let child = sys::fork_child(|| {
        let g = sys::get_compat();
        let class = MappedVdso::find().and_then(|v| v.elf().ok().map(|e| e.class()));
        diag!(
            "child: ARCH_GET_COMPAT = {}, [vdso] EI_CLASS {class:?}",
            sys::show(g)
        );
        i32::from(!(g == Ok(1) && class == Some(vdso::ELFCLASS32)))
    });
    let exit = sys::wait_exit(child, 5000);
    diag!("child {exit}");
    ensure!(
        exit == Exit::Code(0),
        "forked child does not inherit the compat state ({exit})"
    );
    Ok(())
}

/// Argument that makes the validator run [`exec_probe`] instead of the suite.
pub const EXEC_PROBE_ARG: &str = "--internal-exec-probe";

/// Run after execve: reports the new program's state as exit-status bits
/// (1 ARCH_GET_COMPAT reads 0, 2 ELFCLASS64 vDSO, 4 [vsyscall] listed,
/// 8 hint-less mmap above 4 GiB).
pub fn exec_probe() -> i32 {
    let mut bits = 0;
    if sys::get_compat() == Ok(0) {
        bits |= 1;
    }
    if MappedVdso::find().and_then(|v| v.elf().ok().map(|e| e.class())) == Some(vdso::ELFCLASS64) {
        bits |= 2;
    }
    if sys::find_map("[vsyscall]").is_some() {
        bits |= 4;
    }
    if matches!(sys::mmap_anon(0, PAGE, 0), Ok(a) if a >= FOUR_GIB) {
        bits |= 8;
    }
    bits
}

fn execve_resets_compat() -> Outcome {
    require_series()?;
    let child = sys::fork_child(|| {
        if set_compat(0).is_err() {
            return 100;
        }
        let exe = std::ffi::CString::new("/proc/self/exe").unwrap();
        let arg0 = std::ffi::CString::new("validator").unwrap();
        let arg1 = std::ffi::CString::new(EXEC_PROBE_ARG).unwrap();
        let argv = [arg0.as_ptr(), arg1.as_ptr(), std::ptr::null()];
        unsafe { libc::execv(exe.as_ptr(), argv.as_ptr()) };
        diag!(
            "execv /proc/self/exe failed: {}",
            sys::errno_name(sys::errno())
        );
        101
    });
    let exit = sys::wait_exit(child, 10_000);
    diag!("exec'd program {exit} (bits: 1 native, 2 ELFCLASS64 vDSO, 4 [vsyscall], 8 mmap above 4 GiB; want 0xf)");
    ensure!(exit == Exit::Code(0xf), "state after execve: {exit}");
    Ok(())
}

fn set_native_restores() -> Outcome {
    require_series()?;
    set_compat(0)?;
    let r = sys::arch_prctl(sys::ARCH_SET_NATIVE, 0);
    diag!("arch_prctl(ARCH_SET_NATIVE, 0) = {}", sys::show(r));
    let base =
        r.map_err(|e| Failure::Fail(format!("ARCH_SET_NATIVE failed: {}", sys::errno_name(e))))?;
    let mut c = Checks::default();
    let v = MappedVdso::find()
        .ok_or_else(|| Failure::Fail("no [vdso] after ARCH_SET_NATIVE".into()))?;
    diag!(
        "[vdso] {:#x}-{:#x}, header {}",
        v.base,
        v.base + v.len,
        v.header_hex()
    );
    c.check(
        v.base == base,
        format!("[vdso] at {:#x} is the returned base {base:#x}", v.base),
    );
    let elf = v.elf().map_err(Failure::Fail)?;
    c.check(
        elf.class() == vdso::ELFCLASS64,
        format!("EI_CLASS {} (want 2, ELFCLASS64)", elf.class()),
    );
    c.check(
        elf.machine() == vdso::EM_X86_64,
        format!("e_machine {} (want 62, EM_X86_64)", elf.machine()),
    );
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

fn set_compat_ebusy_threads() -> Outcome {
    require_series()?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let r = sys::arch_prctl(sys::ARCH_SET_COMPAT, 0);
    let g = sys::get_compat();
    diag!(
        "with 2 threads: ARCH_SET_COMPAT = {}, ARCH_GET_COMPAT = {}",
        sys::show(r),
        sys::show(g)
    );
    let _ = tx.send(());
    let _ = t.join();
    let mut c = Checks::default();
    c.check(
        r == Err(libc::EBUSY),
        format!("thread: ARCH_SET_COMPAT {} (want EBUSY)", sys::show(r)),
    );
    c.check(g == Ok(0), "still native");
    let (r, g) =
        with_clone_vm_child(|| (sys::arch_prctl(sys::ARCH_SET_COMPAT, 0), sys::get_compat()))?;
    diag!(
        "with a CLONE_VM child: ARCH_SET_COMPAT = {}, ARCH_GET_COMPAT = {}",
        sys::show(r),
        sys::show(g)
    );
    c.check(
        r == Err(libc::EBUSY),
        format!(
            "CLONE_VM child: ARCH_SET_COMPAT {} (want EBUSY)",
            sys::show(r)
        ),
    );
    c.check(g == Ok(0), "still native");
    c.finish()
}

/// Runs `f` while a CLONE_VM child (sharing our mm, not a thread) blocks
/// on a pipe; the child exits once `f` returns.
fn with_clone_vm_child<T>(f: impl FnOnce() -> T) -> Result<T, Failure> {
    extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
        let fd = arg as usize as i32;
        let mut b = 0u8;
        unsafe {
            libc::syscall(libc::SYS_read, fd, &mut b as *mut u8, 1);
            libc::syscall(libc::SYS_exit, 0);
        }
        0
    }
    let mut fds = [0; 2];
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(Failure::Fail("pipe failed".into()));
    }
    let stack = sys::mmap_anon(0, 64 * 1024, 0).map_err(|e| Failure::Fail(sys::errno_name(e)))?;
    let pid = unsafe {
        libc::clone(
            child_main,
            (stack + 64 * 1024 - 64) as *mut libc::c_void,
            libc::CLONE_VM | libc::SIGCHLD,
            fds[0] as usize as *mut libc::c_void,
        )
    };
    if pid < 0 {
        return Err(Failure::Fail(format!(
            "clone(CLONE_VM) failed: {}",
            sys::errno_name(sys::errno())
        )));
    }
    let out = f();
    unsafe {
        libc::write(fds[1], b"x".as_ptr().cast(), 1);
    }
    sys::wait_exit(pid, 5000);
    Ok(out)
}

fn set_compat_einval_bad_addr() -> Outcome {
    require_series()?;
    let low = free_low_address(1 << 20)?;
    let mut c = Checks::default();
    for addr in [low + 1, low + 0x800, FOUR_GIB, 0x7fff_0000_0000] {
        let r = sys::arch_prctl(sys::ARCH_SET_COMPAT, addr);
        diag!("arch_prctl(ARCH_SET_COMPAT, {addr:#x}) = {}", sys::show(r));
        c.check(
            r == Err(libc::EINVAL),
            format!("{addr:#x}: {} (want EINVAL)", sys::show(r)),
        );
    }
    let g = sys::get_compat();
    c.check(g == Ok(0), format!("still native ({})", sys::show(g)));
    c.finish()
}

fn set_compat_twice_ealready() -> Outcome {
    require_series()?;
    let native_twice = sys::arch_prctl(sys::ARCH_SET_NATIVE, 0);
    set_compat(0)?;
    let again = sys::arch_prctl(sys::ARCH_SET_COMPAT, 0);
    let back = sys::arch_prctl(sys::ARCH_SET_NATIVE, 0);
    diag!(
        "ARCH_SET_NATIVE while native = {}; ARCH_SET_COMPAT again = {}; ARCH_SET_NATIVE = {}",
        sys::show(native_twice),
        sys::show(again),
        sys::show(back)
    );
    let mut c = Checks::default();
    c.check(
        native_twice == Err(libc::EALREADY),
        "ARCH_SET_NATIVE on a native process: EALREADY",
    );
    c.check(
        again == Err(libc::EALREADY),
        "second ARCH_SET_COMPAT: EALREADY",
    );
    c.check(back.is_ok(), "ARCH_SET_NATIVE after the switch succeeds");
    c.finish()
}

const PTRACE_ARCH_PRCTL: libc::c_uint = 30;

static NATIVE_HANDLER_RAN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn native_handler(_sig: i32) {
    NATIVE_HANDLER_RAN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

fn native_signal_after_set_compat() -> Outcome {
    require_series()?;
    set_compat(0)?;
    let old = unsafe {
        libc::signal(
            libc::SIGUSR2,
            native_handler as extern "C" fn(i32) as libc::sighandler_t,
        )
    };
    ensure!(
        old != libc::SIG_ERR,
        "sigaction failed: {}",
        sys::errno_name(sys::errno())
    );
    let r = unsafe { libc::kill(sys::getpid(), libc::SIGUSR2) };
    let ran = NATIVE_HANDLER_RAN.load(std::sync::atomic::Ordering::SeqCst);
    let cs = thunks::current_cs();
    diag!(
        "kill(self, SIGUSR2) = {r}; 64-bit handler ran {ran} time(s); back in code with cs {cs:#x}"
    );
    ensure!(
        r == 0 && ran == 1 && cs == 0x33,
        "64-bit signal delivery after ARCH_SET_COMPAT"
    );
    Ok(())
}

/// Not gated on the series: vanilla's behaviour is observable (it maps a
/// vDSO into the tracer).
fn ptrace_map_vdso_rejected() -> Outcome {
    let tracee = sys::fork_child(|| {
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::kill(sys::getpid(), libc::SIGSTOP);
        }
        0
    });
    wait_stop(tracee)?;
    // Without a vDSO of its own the tracer would accept a new one.
    let removed = vdso::unmap_all();
    diag!("tracer unmapped {}", removed.join(", "));
    let hint = free_low_address(1 << 20)?;
    let r = unsafe {
        libc::ptrace(
            PTRACE_ARCH_PRCTL,
            tracee,
            hint as usize,
            sys::ARCH_MAP_VDSO_32 as usize,
        )
    };
    let err = sys::errno();
    let tracer_vdso = sys::find_map("[vdso]").map(|m| m.line);
    let tracee_vdso = sys::maps_of(&tracee.to_string())
        .into_iter()
        .find(|m| m.name == "[vdso]")
        .map(|m| m.line);
    unsafe { libc::ptrace(libc::PTRACE_CONT, tracee, 0, 0) };
    sys::wait_exit(tracee, 5000);
    diag!(
        "ptrace(PTRACE_ARCH_PRCTL, tracee, {hint:#x}, ARCH_MAP_VDSO_32) = {}",
        if r < 0 {
            format!("-1 {}", sys::errno_name(err))
        } else {
            format!("{r:#x}")
        }
    );
    diag!(
        "tracer [vdso]: {}",
        tracer_vdso.as_deref().unwrap_or("none")
    );
    diag!(
        "tracee [vdso]: {}",
        tracee_vdso.as_deref().unwrap_or("none")
    );
    let mut c = Checks::default();
    c.check(
        r < 0 && err == libc::EINVAL,
        "PTRACE_ARCH_PRCTL(ARCH_MAP_VDSO_32) rejected with EINVAL",
    );
    c.check(tracer_vdso.is_none(), "nothing mapped into the tracer");
    c.finish()
}

fn set_compat_ptrace_rejected() -> Outcome {
    require_series()?;
    let child = sys::fork_child(|| {
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::kill(sys::getpid(), libc::SIGSTOP);
        }
        // Exit status tells the tracer whether our mm changed.
        match sys::get_compat() {
            Ok(v) => v as i32,
            Err(_) => 100,
        }
    });
    wait_stop(child)?;
    let r = unsafe {
        libc::ptrace(
            PTRACE_ARCH_PRCTL,
            child,
            0usize,
            sys::ARCH_SET_COMPAT as usize,
        )
    };
    let err = sys::errno();
    let tracer = sys::get_compat();
    unsafe { libc::ptrace(libc::PTRACE_CONT, child, 0, 0) };
    let exit = sys::wait_exit(child, 5000);
    diag!(
        "ptrace(PTRACE_ARCH_PRCTL, ARCH_SET_COMPAT) = {}; tracer ARCH_GET_COMPAT = {}; tracee then {exit}",
        if r < 0 { format!("-1 {}", sys::errno_name(err)) } else { r.to_string() },
        sys::show(tracer)
    );
    let mut c = Checks::default();
    c.check(
        r < 0 && err == libc::EINVAL,
        "PTRACE_ARCH_PRCTL rejected with EINVAL",
    );
    c.check(tracer == Ok(0), "tracer still native");
    c.check(
        exit == Exit::Code(0),
        "tracee still native (exit status = its ARCH_GET_COMPAT)",
    );
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_vm_child_runs_alongside_and_exits() {
        // In a forked child: the test harness itself is multi-threaded.
        let pid = sys::fork_child(|| match with_clone_vm_child(|| 42) {
            Ok(42) => 0,
            _ => 1,
        });
        assert_eq!(sys::wait_exit(pid, 5000), Exit::Code(0));
    }
}
