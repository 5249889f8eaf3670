//! A switched process's life: signals (ia32 with the vDSO restorer, native
//! 64-bit), fork and execve.

use crate::runner::{Outcome, Scenario};
use crate::scenarios::common::{both_frames, check_mapped_image, Restorer};
use crate::scenarios::series::{require_series, series, set_compat, try_set_compat};
use crate::sys::thunks;
use crate::sys::vdso::{self, MappedVdso};
use crate::sys::{self, Exit, FOUR_GIB, PAGE};
use crate::{diag, ensure};

pub const SCENARIOS: &[Scenario] = &[
    series(
        "compat_signal_vdso_restorer",
        "After ARCH_SET_COMPAT a compat handler without SA_RESTORER, on a non-executable stack, returns to the \
         32-bit vDSO's __kernel_rt_sigreturn (rt frame) and __kernel_sigreturn (non-rt frame)",
        "Proves vdso_image (not only context.vdso) was switched: the kernel computes the default restorer \
         from it. The stack is not executable, so the on-stack retcode cannot stand in for the vDSO \
         restorer; the return address is checked against the symbol. Vanilla (no switch) returns into the \
         64-bit image and dies.",
        "SIGSEGV",
        compat_signal_vdso_restorer,
    ),
    series(
        "fork_inherits_compat",
        "A child forked after ARCH_SET_COMPAT reads ARCH_GET_COMPAT 1 and has the ELFCLASS32 vDSO",
        "fork copies the vDSO mappings, so the compat state must follow them or the child would run with a \
         32-bit image but 64-bit rules.",
        "ELFCLASS64",
        fork_inherits_compat,
    ),
    series(
        "execve_resets_compat",
        "execve of a 64-bit program after ARCH_SET_COMPAT starts native: ARCH_GET_COMPAT 0, ELFCLASS64 vDSO, \
         [vsyscall], mmap above 4 GiB",
        "The switch must not leak into the next program; exec is the usual way back for a launcher.",
        "EINVAL",
        execve_resets_compat,
    ),
    series(
        "native_signal_after_set_compat",
        "After ARCH_SET_COMPAT a 64-bit handler (glibc sigaction) still runs and returns for a signal raised in \
         64-bit code",
        "The switched process still runs its 64-bit code; native signal delivery must not depend on the vDSO \
         image that was swapped.",
        "EINVAL",
        native_signal_after_set_compat,
    ),
];

fn compat_signal_vdso_restorer() -> Outcome {
    thunks::low();
    try_set_compat(0);
    both_frames(Restorer::Vdso32)
}

/// Exit status of the forked child whose [vdso] is not ELFCLASS32.
const CHILD_VDSO_NOT_32: i32 = 2;

fn fork_inherits_compat() -> Outcome {
    try_set_compat(0);
    let child = sys::fork_child(|| {
        let g = sys::get_compat();
        let class = MappedVdso::find().and_then(|v| v.elf().ok().map(|e| e.class()));
        diag!(
            "child: ARCH_GET_COMPAT = {}, [vdso] EI_CLASS {class:?}",
            sys::show(g)
        );
        match (class, g) {
            (Some(vdso::ELFCLASS32), Ok(1)) => 0,
            (Some(vdso::ELFCLASS32), _) => 1,
            _ => CHILD_VDSO_NOT_32,
        }
    });
    let exit = sys::wait_exit(child, 5000);
    diag!("child {exit}");
    if exit == Exit::Code(CHILD_VDSO_NOT_32) {
        // The child's image is a copy of the parent's: name its class.
        let mut c = crate::runner::Checks::default();
        check_mapped_image(&mut c, true)?;
        c.finish()?;
        crate::fail!("the child's [vdso] is not ELFCLASS32 while the parent's is");
    }
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
