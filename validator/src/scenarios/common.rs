//! Helpers that several scenario themes use. A theme imports `runner`,
//! `sys`, this file and `series`, never another theme: what two themes
//! share lives here.

use crate::runner::{self, Checks, Failure, Outcome};
use crate::sys::thunks::{self, Entry, Regs32};
use crate::sys::vdso::{self, MappedVdso};
use crate::sys::{self, nr32, Exit, FOUR_GIB};
use crate::{diag, ensure};

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
    let child = sys::fork_child(|| raise_and_check_in_child(with_restorer, frame));
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
    ensure!(
        exit == Exit::Code(0),
        "handler did not return correctly to the 32-bit caller ({exit})"
    );
    Ok(())
}

/// The forked child of `raise_in_32bit`: installs the handler, raises
/// SIGUSR1 from 32-bit code and checks what the handler recorded. Returns
/// the child's exit code (0 if every check held).
fn raise_and_check_in_child(with_restorer: bool, frame: Frame) -> i32 {
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
}
