//! ia32 signal frames delivered to 32-bit code of a 64-bit process.

use crate::runner;
use crate::runner::{Checks, Expect, Outcome, Scenario};
use crate::sys::{self, nr32, Exit};
use crate::sys::thunks::{self, Entry};
use crate::{diag, ensure};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "compat_sigaction_ia32_frame",
        description: "A handler installed by compat rt_sigaction with SA_RESTORER gets an ia32 frame (cs 0x23, \
                      eip after the int 0x80) for a signal raised in 32-bit code and returns to it",
        proves: "Signal delivery to 32-bit code already works when userspace supplies its restorer; the series \
                 must keep this path.",
        vanilla: Expect::Pass,
        patched: Expect::Pass,
        run: compat_sigaction_ia32_frame,
    },
    Scenario {
        id: "compat_sigaction_nonrt_frame",
        description: "Without SA_SIGINFO the handler gets the old ia32 sigframe (cs 0x23, eip after the int 0x80) \
                      and returns through sigreturn (119)",
        proves: "The second ia32 frame layout and compat sigreturn also work for 32-bit code of a 64-bit process.",
        vanilla: Expect::Pass,
        patched: Expect::Pass,
        run: compat_sigaction_nonrt_frame,
    },
    Scenario {
        id: "compat_sigaction_no_restorer",
        description: "A compat handler installed without SA_RESTORER (rt and non-rt frame) returns correctly \
                      while the 64-bit vDSO is mapped",
        proves: "Vanilla returns through context.vdso plus a 32-bit-image offset, i.e. into the 64-bit image, \
                 and kills the task; the series must not jump into the wrong image. Its fallback is the retcode in \
                 the frame, so the 32-bit stack is made executable, as legacy ia32 programs have it.",
        vanilla: Expect::Fail,
        patched: Expect::Pass,
        run: compat_sigaction_no_restorer,
    },
];

const SA_RESTORER: u32 = 0x0400_0000;

/// Which ia32 frame the kernel builds: rt (SA_SIGINFO) or the old sigframe.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    Rt,
    NonRt,
}

/// Installs the 32-bit recording handler for SIGUSR1 with compat
/// rt_sigaction (int 0x80 from 64-bit code, so SA_IA32_ABI is set).
pub fn install_compat_handler(with_restorer: bool, frame: Frame) -> Result<(), i32> {
    let act = thunks::scratch() as *mut u32;
    let (handler, own_restorer, siginfo) = match frame {
        Frame::Rt => (
            Entry::RtHandler32,
            Entry::RtRestorer32,
            libc::SA_SIGINFO as u32,
        ),
        Frame::NonRt => (Entry::Handler32, Entry::Restorer32, 0),
    };
    let flags = siginfo | if with_restorer { SA_RESTORER } else { 0 };
    let restorer = if with_restorer {
        thunks::entry(own_restorer)
    } else {
        0
    };
    let words = [thunks::entry(handler), flags, restorer, 0, 0];
    for (i, w) in words.iter().enumerate() {
        unsafe { act.add(i).write_volatile(*w) };
    }
    let r = thunks::int80_from_64(
        nr32::RT_SIGACTION,
        &[libc::SIGUSR1 as u32, act as u64 as u32, 0, 8],
    );
    sys::decode_raw(r).map(|_| ())
}

/// In a child: install the compat handler, raise SIGUSR1 from 32-bit code
/// and check what the handler recorded once control is back.
pub fn raise_in_32bit(with_restorer: bool, frame: Frame) -> Outcome {
    thunks::low();
    if !with_restorer {
        // Without SA_RESTORER and without a 32-bit vDSO the only correct
        // return path is the retcode the kernel writes into the frame, as
        // for an ia32 process booted with vdso32=0: it needs an executable
        // stack, like legacy ia32 programs have.
        let r = thunks::make_stack_executable();
        diag!(
            "32-bit stack made executable: {}",
            r.map_or_else(
                |e| format!("mprotect failed: {}", sys::errno_name(e)),
                |_| "ok".to_string()
            )
        );
    }
    runner::clear_crash_info();
    let child = sys::fork_child(|| {
        thunks::reset_handler_record();
        if let Err(e) = install_compat_handler(with_restorer, frame) {
            diag!("compat rt_sigaction failed: {}", sys::errno_name(e));
            return 1;
        }
        let pid = sys::getpid() as u32;
        let r = thunks::int80_from_32(nr32::KILL, &[pid, libc::SIGUSR1 as u32]);
        let [sig, cs, eip, count, restorer] = thunks::handler_record();
        let after = thunks::entry(Entry::Int80After);
        let place = sys::map_containing(restorer as u64)
            .map(|m| m.line)
            .unwrap_or_else(|| "unmapped".into());
        diag!("the handler returned to {restorer:#x}: {place}");
        diag!("back in 32-bit caller: kill = {r}; handler saw sig {sig}, saved cs {:#x}, saved eip {eip:#x} (int 0x80 returns to {after:#x}), ran {count} time(s)", cs & 0xffff);
        let mut c = Checks::default();
        c.check(r == 0, format!("kill returned {r}"));
        c.check(sig == libc::SIGUSR1 as u32, format!("handler signal {sig}"));
        c.check(
            cs & 0xffff == 0x23,
            format!("ia32 frame cs {:#x} (want 0x23)", cs & 0xffff),
        );
        c.check(
            eip == after,
            format!("ia32 frame eip {eip:#x} (want {after:#x})"),
        );
        c.check(count == 1, format!("handler ran {count} time(s)"));
        match c.finish() {
            Ok(()) => 0,
            Err(_) => 1,
        }
    });
    let exit = sys::wait_exit(child, 10_000);
    let crash = runner::crash_info();
    let crash_text = crash.map(|c| format!(": {c}")).unwrap_or_default();
    diag!(
        "child {exit}{}",
        if matches!(exit, Exit::Signal(_)) {
            crash_text.as_str()
        } else {
            ""
        }
    );
    if let (Exit::Signal(_), Some(c)) = (exit, crash) {
        crate::scenarios::gate::diag_truncated_vdso_address(c.rip);
    }
    ensure!(
        exit == Exit::Code(0),
        "handler did not return correctly to the 32-bit caller ({exit})"
    );
    Ok(())
}

fn compat_sigaction_ia32_frame() -> Outcome {
    raise_in_32bit(true, Frame::Rt)
}

fn compat_sigaction_nonrt_frame() -> Outcome {
    raise_in_32bit(true, Frame::NonRt)
}

fn compat_sigaction_no_restorer() -> Outcome {
    let vdso = sys::find_map("[vdso]")
        .map(|m| m.line)
        .unwrap_or_else(|| "none".into());
    diag!("vDSO while the signal is delivered: {vdso}");
    diag!("rt frame (SA_SIGINFO):");
    let rt = raise_in_32bit(false, Frame::Rt);
    diag!("non-rt frame:");
    let non_rt = raise_in_32bit(false, Frame::NonRt);
    match (rt, non_rt) {
        (Ok(()), Ok(())) => Ok(()),
        (rt, non_rt) => crate::fail!(
            "handler without SA_RESTORER did not return: rt frame {}, non-rt frame {}",
            if rt.is_ok() { "ok" } else { "failed" },
            if non_rt.is_ok() { "ok" } else { "failed" }
        ),
    }
}
