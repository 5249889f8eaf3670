//! Helpers that several scenario themes use. A theme imports `runner`,
//! `sys`, this file and `series`, never another theme: what two themes
//! share lives here.

use crate::runner::{self, Checks, Failure, Outcome};
use crate::sys::thunks::{self, Entry, Regs32};
use crate::sys::vdso::{self, MappedVdso};
use crate::sys::{self, nr32, Exit, FOUR_GIB};
use crate::{diag, fail_because};

/// A free, page-aligned address below 4 GiB with `len` bytes free after it.
pub fn free_low_address(len: u64) -> Result<u64, Failure> {
    let probe = sys::mmap_anon(0, len, libc::MAP_32BIT)
        .map_err(|e| Failure::Fail(format!("MAP_32BIT probe failed: {}", sys::errno_name(e))))?;
    let _ = sys::munmap(probe, len);
    Ok(probe)
}

/// Replaces the 64-bit vDSO with the 32-bit one the upstream way, as CRIU
/// does: unmaps [vdso] and [vvar*], then ARCH_MAP_VDSO_32 at a free
/// address below 4 GiB, which it returns. From then on glibc's cached vDSO
/// pointers dangle: no clock calls.
pub fn map_vdso32_low() -> Result<u64, Failure> {
    let removed = vdso::unmap_all();
    diag!("unmapped: {}", removed.join(", "));
    let hint = free_low_address(1 << 20)?;
    let r = sys::arch_prctl(sys::ARCH_MAP_VDSO_32, hint);
    diag!(
        "arch_prctl(ARCH_MAP_VDSO_32, {hint:#x}) = {} (image size)",
        sys::show(r)
    );
    r.map(|_| hint).map_err(|e| {
        Failure::Fail(format!(
            "ARCH_MAP_VDSO_32 at {hint:#x} failed: {}",
            sys::errno_name(e)
        ))
    })
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
    c.check_because(
        elf.class() == class,
        class_token(elf.class()),
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

/// The reason token for an observed ELF class: `ELFCLASS32`,
/// `ELFCLASS64`, or `ELFCLASS-other`.
pub fn class_token(class: u8) -> &'static str {
    match class {
        vdso::ELFCLASS32 => "ELFCLASS32",
        vdso::ELFCLASS64 => "ELFCLASS64",
        _ => "ELFCLASS-other",
    }
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
    let (vsyscall, got) = kernel_vsyscall(&v, nr32::GETPID, &[]).map_err(Failure::Fail)?;
    let pid = sys::getpid();
    diag!("__kernel_vsyscall at {vsyscall:#x}: getpid from 32-bit code = {got}, getpid() = {pid}");
    c.check(
        got == pid,
        format!("__kernel_vsyscall getpid {got} (want {pid})"),
    );
    Ok(())
}

/// Makes the ia32 system call `nr` from 32-bit code through the mapped
/// 32-bit vDSO's __kernel_vsyscall (sysenter on Intel, syscall on AMD).
/// Returns the entry's address and eax. Prints nothing: stress calls it
/// after every step.
pub fn kernel_vsyscall(v: &MappedVdso, nr: u32, args: &[u32]) -> Result<(u64, i32), String> {
    let vsyscall = v.symbol("__kernel_vsyscall")?;
    if vsyscall >= FOUR_GIB {
        return Err(format!("__kernel_vsyscall at {vsyscall:#x} is above 4 GiB"));
    }
    let out = thunks::call32(vsyscall as u32, Regs32::syscall(nr, args));
    Ok((vsyscall, out.eax as i32))
}

/// Waits for the traced child to stop; returns the stop signal.
pub fn wait_stop(pid: i32) -> Result<i32, Failure> {
    let mut status = 0;
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    if r != pid || !libc::WIFSTOPPED(status) {
        let crash = runner::crash_info()
            .map(|c| c.to_string())
            .unwrap_or_default();
        return Err(Failure::Fail(format!(
            "tracee did not stop (waitpid {r}, status {status:#x}) {crash}"
        )));
    }
    Ok(libc::WSTOPSIG(status))
}

/// Says so when a fault address is the 64-bit [vdso] base cut to 32 bits
/// plus an offset: the kernel sent 32-bit code to `context.vdso + <offset
/// in the 32-bit image>` while the 64-bit image is mapped.
pub fn diag_truncated_vdso_address(addr: u64) {
    if let Some(v) = sys::find_map("[vdso]") {
        let low_base = v.start & 0xffff_ffff;
        if addr >= low_base && addr < low_base + (v.end - v.start) {
            diag!(
                "{addr:#x} is the 64-bit [vdso] base {:#x} truncated to 32 bits, + {:#x}",
                v.start,
                addr - low_base
            );
        }
    }
}

const SA_RESTORER: u32 = 0x0400_0000;

/// Which ia32 frame the kernel builds: rt (SA_SIGINFO) or the old sigframe.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Frame {
    Rt,
    NonRt,
}

/// The return path a 32-bit handler must be given, which decides both how
/// the handler is installed and where its return address must point.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Restorer {
    /// SA_RESTORER with our own restorer: the frame returns to it.
    Own,
    /// No SA_RESTORER and no 32-bit vDSO: the contract is the retcode the
    /// kernel writes into the frame, so the 32-bit stack is made
    /// executable (as a legacy ia32 program's is) and the return address
    /// must lie in that stack.
    Retcode,
    /// No SA_RESTORER with the 32-bit vDSO mapped: the return address must
    /// be the vDSO's `__kernel_rt_sigreturn` (`__kernel_sigreturn` for the
    /// non-rt frame). The stack stays non-executable, so a kernel that
    /// picks the retcode instead kills the task rather than passing.
    Vdso32,
}

/// Reason token: the handler's return address is not the expected restorer.
pub const WRONG_RESTORER: &str = "wrong-restorer";

/// Reason token: the handler returned into the page mapped where an
/// unmapped vDSO was (see `stale_vdso_trap`).
pub const STALE_VDSO: &str = "stale-vdso";

/// Exit status of the code `stale_vdso_trap` returns: reaching it means a
/// signal frame returned to where an unmapped vDSO used to be.
pub const CHILD_IN_STALE_VDSO: i32 = 4;

/// The end of `stale_vdso_trap`: `exit_group(CHILD_IN_STALE_VDSO)`
/// through int 0x80.
#[rustfmt::skip]
const STALE_VDSO_EXIT: [u8; 12] = [
    0xb8, 0xfc, 0x00, 0x00, 0x00,                       // mov $252 (exit_group), %eax
    0xbb, CHILD_IN_STALE_VDSO as u8, 0x00, 0x00, 0x00,  // mov $status, %ebx
    0xcd, 0x80,                                         // int $0x80
];

/// 32-bit code to map over the range an unmapped vDSO occupied, `len`
/// bytes: a NOP slide to `STALE_VDSO_EXIT`, so a return to any address
/// before the last `STALE_VDSO_EXIT.len()` bytes ends the process with
/// that status instead of running whatever happens to be there.
pub fn stale_vdso_trap(len: usize) -> Vec<u8> {
    let mut code = vec![0x90; len - STALE_VDSO_EXIT.len()];
    code.extend_from_slice(&STALE_VDSO_EXIT);
    code
}

/// The addresses in `[start, start + len)` that a return into
/// `stale_vdso_trap` must not reach: the exit code's own bytes, where a
/// return would start mid-instruction.
pub fn stale_vdso_trap_tail(start: u64, len: u64) -> std::ops::Range<u64> {
    start + len - STALE_VDSO_EXIT.len() as u64..start + len
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

/// Where the handler must return for `restorer` and `frame`, as a range
/// `[start, end)` of acceptable return addresses, with its name; `Err`
/// names why there is no such place (no 32-bit vDSO mapped).
pub fn expected_restorer(restorer: Restorer, frame: Frame) -> Result<(u64, u64, String), String> {
    match restorer {
        Restorer::Own => {
            let own = match frame {
                Frame::Rt => Entry::RtRestorer32,
                Frame::NonRt => Entry::Restorer32,
            };
            let a = thunks::entry(own) as u64;
            Ok((a, a + 1, format!("our SA_RESTORER {a:#x}")))
        }
        Restorer::Retcode => {
            let (start, end) = thunks::stack_range();
            Ok((
                start,
                end,
                format!("the retcode on the 32-bit stack {start:#x}-{end:#x}"),
            ))
        }
        Restorer::Vdso32 => {
            let symbol = match frame {
                Frame::Rt => "__kernel_rt_sigreturn",
                Frame::NonRt => "__kernel_sigreturn",
            };
            let v = MappedVdso::find().ok_or("no [vdso] mapped")?;
            let elf = v.elf()?;
            if elf.class() != vdso::ELFCLASS32 {
                return Err(format!("the mapped [vdso] is {}", class_token(elf.class())));
            }
            let a = v.symbol(symbol)?;
            Ok((a, a + 1, format!("{symbol} of the 32-bit vDSO at {a:#x}")))
        }
    }
}

/// Checks a recorded return address against the expected restorer; the
/// error says what it is instead.
pub fn check_restorer(
    recorded: u32,
    expected: &Result<(u64, u64, String), String>,
) -> Result<(), String> {
    let got = recorded as u64;
    match expected {
        Ok((start, end, _)) if (*start..*end).contains(&got) => Ok(()),
        Ok((_, _, want)) => Err(format!("returned to {got:#x}, want {want}")),
        Err(why) => Err(format!(
            "returned to {got:#x}, but no 32-bit vDSO restorer exists: {why}"
        )),
    }
}

/// In a child: install the compat handler for `restorer`, raise SIGUSR1
/// from 32-bit code and check what the handler recorded, including where
/// it returned, once control is back. A child killed by a signal fails on
/// that signal's name; a wrong return address on `wrong-restorer`.
pub fn raise_in_32bit(restorer: Restorer, frame: Frame) -> Outcome {
    thunks::low();
    if restorer == Restorer::Retcode {
        let r = thunks::make_stack_executable();
        diag!(
            "32-bit stack made executable: {}",
            r.map_or_else(
                |e| format!("mprotect failed: {}", sys::errno_name(e)),
                |_| "ok".to_string()
            )
        );
    }
    let expected = expected_restorer(restorer, frame);
    match &expected {
        Ok((_, _, want)) => diag!("the handler must return to {want}"),
        Err(why) => diag!("no {restorer:?} restorer to expect: {why}"),
    }
    runner::clear_crash_info();
    let child = sys::fork_child(|| raise_and_check_in_child(restorer, frame, &expected));
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
        diag_truncated_vdso_address(c.rip);
    }
    match exit {
        Exit::Code(0) => Ok(()),
        Exit::Code(CHILD_WRONG_RESTORER) => fail_because!(
            WRONG_RESTORER,
            "the handler did not return through the expected restorer"
        ),
        Exit::Code(CHILD_IN_STALE_VDSO) => fail_because!(
            STALE_VDSO,
            "the handler returned into the page mapped where the unmapped vDSO was"
        ),
        Exit::Signal(sig) => fail_because!(
            runner::signal_reason(sig),
            "handler did not return correctly to the 32-bit caller ({exit})"
        ),
        _ => crate::fail!("handler did not return correctly to the 32-bit caller ({exit})"),
    }
}

/// Raises with the rt frame, then the non-rt one. A failure names its
/// reason only if both frames failed on it: one frame failing, or the two
/// on different reasons, is an unnamed failure (never what a declaration
/// expects).
pub fn both_frames(restorer: Restorer) -> Outcome {
    diag!("rt frame (SA_SIGINFO):");
    let rt = raise_in_32bit(restorer, Frame::Rt);
    diag!("non-rt frame:");
    let non_rt = raise_in_32bit(restorer, Frame::NonRt);
    both_frames_outcome(rt, non_rt)
}

fn both_frames_outcome(rt: Outcome, non_rt: Outcome) -> Outcome {
    let said = |o: &Outcome| match o {
        Ok(()) => "pass".to_string(),
        Err(Failure::Because(reason, _)) => format!("fail ({reason})"),
        Err(Failure::Fail(m)) => format!("fail ({m})"),
        Err(Failure::Skip(m)) => format!("skip ({m})"),
    };
    match (&rt, &non_rt) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(Failure::Because(a, _)), Err(Failure::Because(b, _))) if a == b => rt,
        _ => crate::fail!(
            "not one named failure for both frames: rt frame {}, non-rt frame {}",
            said(&rt),
            said(&non_rt)
        ),
    }
}

/// Exit status of `raise_and_check_in_child` when only the return address
/// was wrong.
const CHILD_WRONG_RESTORER: i32 = 3;

/// The forked child of `raise_in_32bit`: installs the handler, raises
/// SIGUSR1 from 32-bit code and checks what the handler recorded. Returns
/// the child's exit code: 0 if every check held, `CHILD_WRONG_RESTORER`
/// if the frame was right but the return address was not, 1 otherwise.
fn raise_and_check_in_child(
    restorer: Restorer,
    frame: Frame,
    expected: &Result<(u64, u64, String), String>,
) -> i32 {
    thunks::reset_handler_record();
    if let Err(e) = install_compat_handler(restorer == Restorer::Own, frame) {
        diag!("compat rt_sigaction failed: {}", sys::errno_name(e));
        return 1;
    }
    let pid = sys::getpid() as u32;
    let r = thunks::int80_from_32(nr32::KILL, &[pid, libc::SIGUSR1 as u32]);
    let [sig, cs, eip, count, returned_to] = thunks::handler_record();
    let after = thunks::entry(Entry::Int80After);
    let place = sys::map_containing(returned_to as u64)
        .map(|m| m.line)
        .unwrap_or_else(|| "unmapped".into());
    diag!("the handler returned to {returned_to:#x}: {place}");
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
    let frame_ok = c.finish().is_ok();
    let restorer_ok = check_restorer(returned_to, expected);
    match &restorer_ok {
        Ok(()) => diag!("ok: returned through the expected restorer"),
        Err(e) => diag!("MISMATCH ({WRONG_RESTORER}): {e}"),
    }
    match (frame_ok, restorer_ok) {
        (true, Ok(())) => 0,
        (true, Err(_)) => CHILD_WRONG_RESTORER,
        (false, _) => 1,
    }
}

/// Programs the validator initramfs carries (initramfs/validator.list and
/// initramfs/criu.list) for the scenarios that run real programs.
pub const COMPAT_EXEC: &str = "/bin/compat-exec";
pub const BUSYBOX_I386: &str = "/bin/busybox-i386";
pub const CRIU: &str = "/usr/sbin/criu";
/// compat-exec's own failure (docs/compat-exec.md).
pub const COMPAT_EXEC_FAILED: i32 = 125;

/// Skips, naming the first absent program: a validator run on a host has
/// none of them; in the VM a skip is unexpected.
pub fn require_programs(programs: &[&str]) -> Outcome {
    for program in programs {
        if !std::path::Path::new(program).is_file() {
            crate::skip!("{program} is absent: the validator initramfs carries it (initramfs/validator.list, criu.list); a host run has neither");
        }
    }
    Ok(())
}

/// compat-exec's refusal to switch, given its exit status and stderr: on a
/// kernel without the series it exits 125 with `ARCH_SET_COMPAT is not
/// supported by this kernel: EINVAL`, and that errno is the reason. Any
/// other 125 is an unnamed failure; another status is not a refusal.
pub fn compat_exec_refusal(exit: Exit, stderr: &str) -> Outcome {
    if exit != Exit::Code(COMPAT_EXEC_FAILED) {
        return Ok(());
    }
    diag!("compat-exec {exit}: {}", stderr.trim_end());
    let line = stderr.lines().find(|l| l.contains("ARCH_SET_COMPAT"));
    match line.and_then(|l| l.rsplit(": ").next()) {
        Some(errno) if contract::reason::check(errno).is_ok() => fail_because!(
            errno,
            "compat-exec could not switch the process: {}",
            line.unwrap_or_default()
        ),
        _ => Err(Failure::Fail(format!(
            "compat-exec failed (status {COMPAT_EXEC_FAILED}) before running the program: {}",
            stderr.trim_end()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_frames_name_a_reason_only_when_both_failed_on_it() {
        let on = |r: &str| Err(Failure::because(r, "m"));
        let reason = |o: Outcome| match o {
            Ok(()) => "pass".to_string(),
            Err(Failure::Because(r, _)) => r,
            Err(Failure::Fail(_)) => "unnamed".to_string(),
            Err(Failure::Skip(_)) => "skip".to_string(),
        };
        assert_eq!(reason(both_frames_outcome(Ok(()), Ok(()))), "pass");
        assert_eq!(
            reason(both_frames_outcome(on(STALE_VDSO), on(STALE_VDSO))),
            STALE_VDSO
        );
        assert_eq!(
            reason(both_frames_outcome(on(STALE_VDSO), Ok(()))),
            "unnamed"
        );
        assert_eq!(
            reason(both_frames_outcome(Ok(()), on("SIGSEGV"))),
            "unnamed"
        );
        assert_eq!(
            reason(both_frames_outcome(on(STALE_VDSO), on("SIGSEGV"))),
            "unnamed"
        );
    }

    #[test]
    fn the_stale_vdso_trap_slides_into_exit_group_with_its_status() {
        let trap = stale_vdso_trap(0x2000);
        assert_eq!(trap.len(), 0x2000);
        assert!(trap[..0x2000 - 12].iter().all(|&b| b == 0x90));
        // mov $252,%eax; mov $4,%ebx; int $0x80 (252: i386 exit_group).
        assert_eq!(
            trap[0x2000 - 12..],
            [
                0xb8,
                252,
                0,
                0,
                0,
                0xbb,
                CHILD_IN_STALE_VDSO as u8,
                0,
                0,
                0,
                0xcd,
                0x80
            ]
        );
        assert_eq!(stale_vdso_trap_tail(0x1000, 0x2000), 0x2ff4..0x3000);
    }

    fn stack_is_executable() -> bool {
        let (start, _) = thunks::stack_range();
        sys::map_containing(start).is_some_and(|m| m.line.contains("rwx"))
    }

    #[test]
    fn a_return_address_elsewhere_than_the_expected_restorer_fails() {
        let vdso_symbol = Ok((
            0x1000_0610,
            0x1000_0611,
            "__kernel_rt_sigreturn".to_string(),
        ));
        assert!(check_restorer(0x1000_0610, &vdso_symbol).is_ok());
        // The retcode on the stack, or the 64-bit image's offset: wrong.
        for wrong in [0x4020_0ff8u32, 0x1000_0600, 0x1000_0611] {
            let e = check_restorer(wrong, &vdso_symbol).unwrap_err();
            assert!(e.contains(&format!("{wrong:#x}")), "{e}");
        }
        let none = Err("the mapped [vdso] is ELFCLASS64".to_string());
        let e = check_restorer(0x1000_0610, &none).unwrap_err();
        assert!(e.contains("ELFCLASS64"), "{e}");
    }

    #[test]
    fn a_crash_after_an_ia32_signal_round_trip_is_still_recorded() {
        // ia32 rt_sigreturn restores the alternate stack from a 32-bit
        // field: the crash handler's stack must survive that.
        fn signal_then_crash() -> Outcome {
            thunks::low();
            install_compat_handler(true, Frame::Rt).map_err(|e| Failure::Fail(e.to_string()))?;
            let pid = sys::getpid() as u32;
            thunks::int80_from_32(nr32::KILL, &[pid, libc::SIGUSR1 as u32]);
            unsafe { std::ptr::read_volatile(0x18 as *const u8) };
            Ok(())
        }
        let _turn = runner::serial_for_tests();
        let s: &'static runner::Scenario = Box::leak(Box::new(runner::Scenario {
            id: "ia32_signal_then_crash",
            description: "test",
            proves: "test",
            vanilla: runner::Expect::PASS,
            patched: runner::Expect::PASS,
            changed_by: None,
            run: signal_then_crash,
        }));
        let r = runner::run_one(s, std::time::Duration::from_secs(10), &mut |_| {});
        let last = r.diagnostics.last().cloned().unwrap_or_default();
        assert!(
            last.contains("SIGSEGV at address 0x18"),
            "{:?}",
            r.diagnostics
        );
    }

    #[test]
    fn only_the_retcode_contract_gets_an_executable_stack() {
        // In a forked child: raise_in_32bit maps and mprotects low memory.
        let _turn = runner::serial_for_tests();
        let pid = sys::fork_child(|| {
            let _ = raise_in_32bit(Restorer::Own, Frame::Rt);
            let own = stack_is_executable();
            let _ = raise_in_32bit(Restorer::Vdso32, Frame::Rt);
            let vdso32 = stack_is_executable();
            let _ = raise_in_32bit(Restorer::Retcode, Frame::Rt);
            let retcode = stack_is_executable();
            i32::from(!(!own && !vdso32 && retcode))
        });
        assert_eq!(sys::wait_exit(pid, 30_000), Exit::Code(0));
    }

    #[test]
    fn vdso_restorer_scenario_fails_where_no_32bit_vdso_restorer_exists() {
        // Here (a host process, 64-bit vDSO) the kernel cannot return
        // through a 32-bit __kernel_rt_sigreturn: whatever it picks, the
        // check must fail, for the rt and the non-rt frame.
        let _turn = runner::serial_for_tests();
        let pid = sys::fork_child(|| {
            let rt = raise_in_32bit(Restorer::Vdso32, Frame::Rt);
            let non_rt = raise_in_32bit(Restorer::Vdso32, Frame::NonRt);
            i32::from(rt.is_ok() || non_rt.is_ok())
        });
        assert_eq!(sys::wait_exit(pid, 30_000), Exit::Code(0));
    }
}
