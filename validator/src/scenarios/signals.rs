//! ia32 signal frames delivered to 32-bit code of a 64-bit process.

use crate::diag;
use crate::runner::Failure;
use crate::runner::{Expect, Outcome, Scenario};
use crate::scenarios::common::{
    both_frames, map_vdso32_low, raise_in_32bit, stale_vdso_trap, stale_vdso_trap_tail, Frame,
    Restorer, CHILD_IN_STALE_VDSO, STALE_VDSO,
};
use crate::scenarios::series::patches;
use crate::sys;
use crate::sys::vdso::MappedVdso;
use crate::sys::{thunks, FOUR_GIB};
use crate::{ensure, fail};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "compat_sigaction_ia32_frame",
        description: "A handler installed by compat rt_sigaction with SA_RESTORER gets an ia32 frame (cs 0x23, \
                      eip after the int 0x80) for a signal raised in 32-bit code and returns to it",
        proves: "Signal delivery to 32-bit code already works when userspace supplies its restorer; the series \
                 must keep this path.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: compat_sigaction_ia32_frame,
    },
    Scenario {
        id: "compat_sigaction_nonrt_frame",
        description: "Without SA_SIGINFO the handler gets the old ia32 sigframe (cs 0x23, eip after the int 0x80) \
                      and returns through sigreturn (119)",
        proves: "The second ia32 frame layout and compat sigreturn also work for 32-bit code of a 64-bit process.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: compat_sigaction_nonrt_frame,
    },
    Scenario {
        id: "compat_sigaction_no_restorer",
        description: "A compat handler installed without SA_RESTORER (rt and non-rt frame) returns through the \
                      retcode on its (executable) stack while the 64-bit vDSO is mapped",
        proves: "Vanilla returns through context.vdso plus a 32-bit-image offset, i.e. into the 64-bit image, \
                 and kills the task; the series must not jump into the wrong image. Its fallback is the retcode in \
                 the frame, so the 32-bit stack is made executable, as legacy ia32 programs have it.",
        vanilla: Expect::fail("SIGSEGV"),
        patched: Expect::PASS,
        changed_by: Some(patches::RETCODE),
        run: compat_sigaction_no_restorer,
    },
    Scenario {
        id: "compat_signal_after_vdso32_munmap",
        description: "After ARCH_MAP_VDSO_32 and munmap() of that [vdso], with code mapped where it was, a compat \
                      handler without SA_RESTORER (rt and non-rt frame) returns through the retcode on its \
                      (executable) stack, not into the new code",
        proves: "Vanilla keeps context.vdso after the vDSO is unmapped and sends the handler's return to the stale \
                 address plus __kernel_sigreturn's offset, into whatever was mapped there since; with the vDSO \
                 address forgotten on munmap() the kernel falls back to the frame's retcode.",
        vanilla: Expect::fail(STALE_VDSO),
        patched: Expect::PASS,
        changed_by: Some(patches::FORGET_VDSO),
        run: compat_signal_after_vdso32_munmap,
    },
];

fn compat_sigaction_ia32_frame() -> Outcome {
    raise_in_32bit(Restorer::Own, Frame::Rt)
}

fn compat_sigaction_nonrt_frame() -> Outcome {
    raise_in_32bit(Restorer::Own, Frame::NonRt)
}

fn compat_sigaction_no_restorer() -> Outcome {
    let vdso = sys::find_map("[vdso]")
        .map(|m| m.line)
        .unwrap_or_else(|| "none".into());
    diag!("vDSO while the signal is delivered: {vdso}");
    both_frames(Restorer::Retcode)
}

fn compat_signal_after_vdso32_munmap() -> Outcome {
    thunks::low();
    map_vdso32_low()?;
    let Some(v32) = sys::find_map("[vdso]") else {
        fail!("ARCH_MAP_VDSO_32 succeeded but no [vdso] is listed");
    };
    diag!("32-bit vDSO: {}", v32.line);
    // A stale context.vdso must send both frames into the slide: below
    // 4 GiB (the frame holds 32 bits) and before the trap's exit code.
    ensure!(v32.end <= FOUR_GIB, "the 32-bit vDSO is not below 4 GiB");
    let tail = stale_vdso_trap_tail(v32.start, v32.end - v32.start);
    let image = MappedVdso::find().ok_or_else(|| Failure::Fail("no [vdso] to read".into()))?;
    for symbol in ["__kernel_rt_sigreturn", "__kernel_sigreturn"] {
        let at = image.symbol(symbol).map_err(Failure::Fail)?;
        diag!("a stale context.vdso would send a frame to {symbol} at {at:#x}");
        ensure!(
            (v32.start..tail.start).contains(&at),
            "{symbol} at {at:#x} is not in the trap's slide {:#x}-{:#x}",
            v32.start,
            tail.start
        );
    }
    let len = v32.end - v32.start;
    let r = sys::munmap(v32.start, len);
    ensure!(r.is_ok(), "munmap of [vdso] failed: {}", sys::show(r));
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
    let prot = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
    let r = sys::mmap(v32.start, len, prot, flags, -1, 0);
    ensure!(
        r == Ok(v32.start),
        "mapping the trap where [vdso] was ({:#x}) gave {}",
        v32.start,
        sys::show(r)
    );
    let trap = stale_vdso_trap(len as usize);
    unsafe {
        std::ptr::copy_nonoverlapping(trap.as_ptr(), v32.start as *mut u8, trap.len());
    }
    ensure!(
        sys::find_map("[vdso]").is_none(),
        "a [vdso] is still listed after its munmap()"
    );
    diag!(
        "code mapped at {:#x}-{:#x}: any return there exits with status {CHILD_IN_STALE_VDSO}",
        v32.start,
        v32.end,
    );
    both_frames(Restorer::Retcode)
}
