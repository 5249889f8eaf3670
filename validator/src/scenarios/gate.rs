//! Switching between 64-bit and 32-bit mode, and the syscall instructions
//! available to 32-bit code in a 64-bit process.

use crate::runner::{Checks, Expect, Outcome, Scenario};
use crate::scenarios::common::diag_truncated_vdso_address;
use crate::sys::thunks::{self, Entry, Regs32};
use crate::sys::{self, nr32, Exit};
use crate::{diag, ensure};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "gate_round_trip",
        description: "lret to 0x23 runs 32-bit code (0x48 is dec eax, push moves esp by 4) and ljmp to 0x33 comes back",
        proves: "The mechanism every other scenario (and a CRIU-style restorer) relies on: a 64-bit process can \
                 enter compatibility mode and return with its 64-bit state intact.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: gate_round_trip,
    },
    Scenario {
        id: "int80_from_32bit",
        description: "int 0x80 getpid (20) from 32-bit code returns the process id",
        proves: "The ia32 syscall table is reachable from 32-bit code of a 64-bit process, the baseline the series \
                 must keep working.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: int80_from_32bit,
    },
    Scenario {
        id: "int80_from_64bit",
        description: "int 0x80 getpid (20) from 64-bit code is a compat syscall returning the process id",
        proves: "int 0x80 selects the ia32 table regardless of CS, so compat syscalls can be made without leaving \
                 64-bit mode.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: int80_from_64bit,
    },
    Scenario {
        id: "sysenter_without_vdso32",
        description: "sysenter from 32-bit code with only the 64-bit vDSO mapped does not return to its caller \
                      (Intel: killed; AMD: SIGILL)",
        proves: "Documents why a 64-bit process needs a 32-bit vDSO for fast 32-bit syscalls: the kernel resumes \
                 at the 32-bit vDSO landing pad, which does not exist.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: sysenter_without_vdso32,
    },
];

fn gate_round_trip() -> Outcome {
    let out = thunks::call32(
        thunks::entry(Entry::Probe32),
        Regs32 {
            eax: 5,
            ..Default::default()
        },
    );
    let cs_after = thunks::current_cs();
    diag!(
        "32-bit: eax 5 -> {} after byte 0x48, cs {:#x}, push moved esp by {}",
        out.eax,
        out.ebx & 0xffff,
        out.ecx
    );
    diag!("64-bit again: cs {:#x}", cs_after);
    let mut c = Checks::default();
    c.check(
        out.eax == 4,
        format!("0x48 decoded as dec eax (eax {}, want 4)", out.eax),
    );
    c.check(
        out.ebx & 0xffff == 0x23,
        format!("cs in 32-bit code {:#x} (want 0x23)", out.ebx & 0xffff),
    );
    c.check(out.ecx == 4, format!("push size {} (want 4)", out.ecx));
    c.check(
        cs_after == 0x33,
        format!("cs after return {cs_after:#x} (want 0x33)"),
    );
    c.finish()
}

fn int80_from_32bit() -> Outcome {
    let pid = sys::getpid();
    let got = thunks::int80_from_32(nr32::GETPID, &[]);
    diag!("int 0x80 eax=20 from 32-bit code returned {got}, getpid() = {pid}");
    ensure!(got == pid, "compat getpid returned {got}, want {pid}");
    Ok(())
}

fn int80_from_64bit() -> Outcome {
    let pid = sys::getpid();
    let got = thunks::int80_from_64(nr32::GETPID, &[]);
    // 64-bit getpid is 39; eax=20 would be getpid only through the ia32 table.
    diag!("int 0x80 eax=20 from 64-bit code returned {got}, getpid() = {pid}");
    ensure!(
        got == pid as i64,
        "compat getpid returned {got}, want {pid}"
    );
    Ok(())
}

fn sysenter_without_vdso32() -> Outcome {
    let intel = sys::is_intel();
    let vendor = sys::cpu_vendor();
    let vdso = sys::find_map("[vdso]")
        .map(|m| m.line)
        .unwrap_or_else(|| "none".into());
    let hypervisor = sys::hypervisor_signature();
    diag!("CPU vendor {vendor}, hypervisor '{hypervisor}'; vDSO: {vdso}");
    thunks::low();
    crate::runner::clear_crash_info();
    let child = sys::fork_child(|| {
        let out = thunks::call32(
            thunks::entry(Entry::Sysenter32),
            Regs32::syscall(nr32::GETPID, &[]),
        );
        diag!(
            "sysenter returned to its caller with eax {}",
            out.eax as i32
        );
        0
    });
    let exit = sys::wait_exit(child, 5000);
    match (exit, crate::runner::crash_info()) {
        (Exit::Signal(_), Some(c)) => {
            diag!("child {exit}: {c}");
            diag_truncated_vdso_address(c.rip);
        }
        _ => diag!("child {exit}"),
    }
    match exit {
        Exit::Signal(libc::SIGSEGV) if !intel && hypervisor == "TCGTCGTCGTCG" => {
            // QEMU's TCG executes sysenter in compat mode whatever the
            // vendor, so the kernel resumes at the missing landing pad as
            // on Intel: the caller is still not returned to.
            diag!("QEMU TCG models sysenter like Intel even for vendor {vendor}: SIGSEGV accepted");
        }
        Exit::Signal(sig) if !intel => {
            ensure!(
                sig == libc::SIGILL,
                "AMD-style CPU: want SIGILL (sysenter is #UD in compat mode), got {}",
                sys::signal_name(sig)
            );
        }
        Exit::Signal(sig) => {
            ensure!(sig != libc::SIGKILL, "Intel: child hung until killed");
        }
        other => crate::fail!("sysenter did not kill the caller: {other}"),
    }
    Ok(())
}
