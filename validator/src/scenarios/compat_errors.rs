//! How ARCH_SET_COMPAT refuses: shared mm (EBUSY), bad address (EINVAL),
//! repeated calls (EALREADY) and ptrace (EINVAL), plus the ARCH_MAP_VDSO
//! ptrace hole the series closes next to it.

use crate::runner::{Checks, Failure, Outcome, Scenario};
use crate::scenarios::common::{free_low_address, wait_stop};
use crate::scenarios::series::{patches, require_series, result_reason, series, set_compat};
use crate::sys::vdso;
use crate::sys::{self, Exit, FOUR_GIB};
use crate::{diag, ensure_because};

pub const SCENARIOS: &[Scenario] = &[
    series(
        "set_compat_ebusy_threads",
        "ARCH_SET_COMPAT fails with EBUSY and changes nothing while a second thread or a CLONE_VM child \
         shares the mm",
        "Switching an mm shared with running threads would change their address-space rules under them.",
        "EINVAL",
        set_compat_ebusy_threads,
    ),
    series(
        "set_compat_einval_bad_addr",
        "ARCH_SET_COMPAT with an unaligned address or one at or above 4 GiB fails with EINVAL",
        "The 32-bit vDSO must be reachable from 32-bit code; bad input is refused instead of mapped high.",
        "EINVAL",
        set_compat_einval_bad_addr,
    ),
    series(
        "set_compat_twice_ealready",
        "ARCH_SET_COMPAT twice fails with EALREADY, as does ARCH_SET_NATIVE on a native process",
        "Repeated calls must not remap the vDSO again behind userspace's back.",
        "EINVAL",
        set_compat_twice_ealready,
    ),
    // A fix of its own (0001), not the interface: it changes there.
    Scenario {
        changed_by: Some(patches::PTRACE_MAP_VDSO),
        ..series(
        "ptrace_map_vdso_rejected",
        "PTRACE_ARCH_PRCTL(ARCH_MAP_VDSO_32) from a tracer without a vDSO fails with EINVAL instead of mapping \
         a vDSO into the tracer",
        "Vanilla's map_vdso_once() works on current->mm, so the tracer gets the vDSO meant for the tracee; the \
         series closes this hole next to its own ptrace check.",
        "vdso-in-tracer",
        ptrace_map_vdso_rejected,
    )
    },
    series(
        "set_compat_ptrace_rejected",
        "PTRACE_ARCH_PRCTL(ARCH_SET_COMPAT) on a stopped tracee is rejected (EINVAL) and neither mm changes",
        "do_arch_prctl_64 through ptrace acts on the tracer's mm for vDSO codes; the series must refuse it.",
        "EINVAL",
        set_compat_ptrace_rejected,
    ),
];

fn set_compat_ebusy_threads() -> Outcome {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let r = sys::switch_mode(sys::ARCH_SET_COMPAT, 0);
    let g = sys::get_compat();
    diag!(
        "with 2 threads: ARCH_SET_COMPAT = {}, ARCH_GET_COMPAT = {}",
        sys::show(r),
        sys::show(g)
    );
    let _ = tx.send(());
    let _ = t.join();
    let mut c = Checks::default();
    c.check_because(
        r == Err(libc::EBUSY),
        &result_reason(r),
        format!("thread: ARCH_SET_COMPAT {} (want EBUSY)", sys::show(r)),
    );
    c.check(g == Ok(0), "still native");
    let (r, g) =
        with_clone_vm_child(|| (sys::switch_mode(sys::ARCH_SET_COMPAT, 0), sys::get_compat()))?;
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
        let r = sys::switch_mode(sys::ARCH_SET_COMPAT, addr);
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
    let native_twice = sys::switch_mode(sys::ARCH_SET_NATIVE, 0);
    diag!("ARCH_SET_NATIVE while native = {}", sys::show(native_twice));
    ensure_because!(
        native_twice == Err(libc::EALREADY),
        result_reason(native_twice),
        "ARCH_SET_NATIVE on a native process: {} (want EALREADY)",
        sys::show(native_twice)
    );
    set_compat(0)?;
    let again = sys::switch_mode(sys::ARCH_SET_COMPAT, 0);
    let back = sys::switch_mode(sys::ARCH_SET_NATIVE, 0);
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

/// Reason token: PTRACE_ARCH_PRCTL(ARCH_MAP_VDSO_32) mapped a vDSO into
/// the tracer's own mm.
const VDSO_IN_TRACER: &str = "vdso-in-tracer";

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
    c.check_because(
        tracer_vdso.is_none(),
        VDSO_IN_TRACER,
        "nothing mapped into the tracer",
    );
    c.check(
        r < 0 && err == libc::EINVAL,
        "PTRACE_ARCH_PRCTL(ARCH_MAP_VDSO_32) rejected with EINVAL",
    );
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
