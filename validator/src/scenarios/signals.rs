//! ia32 signal frames delivered to 32-bit code of a 64-bit process.

use crate::diag;
use crate::runner::{Expect, Outcome, Scenario};
use crate::scenarios::common::{both_frames, raise_in_32bit, Frame, Restorer};
use crate::scenarios::series::patches;
use crate::sys;

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
