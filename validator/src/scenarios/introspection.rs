//! How tracers and seccomp filters see the bitness of a 64-bit process
//! running 32-bit code or making compat syscalls.

use crate::runner::{Checks, Expect, Outcome, Scenario};
use crate::scenarios::common::wait_stop;
use crate::sys::thunks;
use crate::sys::{self, nr32, Exit};
use crate::{diag, ensure};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "ptrace_prstatus_size",
        description: "PTRACE_GETREGSET NT_PRSTATUS of a tracee stopped in 32-bit code is 68 bytes (cs 0x23), \
                      in 64-bit code 216 bytes (cs 0x33)",
        proves: "Debuggers and CRIU dump ia32 register sets by the current CS, so a process switched to compat \
                 is dumped correctly without further kernel help.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: ptrace_prstatus_size,
    },
    Scenario {
        id: "seccomp_int80_audit_arch",
        description: "A seccomp filter sees AUDIT_ARCH_I386 and nr 20 for int 0x80 getpid (from 64-bit and \
                      32-bit code), AUDIT_ARCH_X86_64 and nr 39 for syscall",
        proves: "Sandboxes keyed on the architecture keep working for compat syscalls of 64-bit processes.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: seccomp_int80_audit_arch,
    },
];

const NT_PRSTATUS: usize = 1;

/// NT_PRSTATUS of a stopped tracee: (size in bytes, cs).
pub fn prstatus(pid: i32) -> Result<(usize, u64), i32> {
    let mut buf = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: std::mem::size_of_val(&buf),
    };
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            pid,
            NT_PRSTATUS,
            &mut iov as *mut libc::iovec,
        )
    };
    if r < 0 {
        return Err(sys::errno());
    }
    let cs = if iov.iov_len == 68 {
        // struct user_regs_struct32: cs is the 14th u32.
        let words: &[u32] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), 17) };
        words[13] as u64
    } else {
        // struct user_regs_struct: cs is the 18th u64.
        buf[17]
    };
    Ok((iov.iov_len, cs))
}

fn ptrace_prstatus_size() -> Outcome {
    thunks::low();
    let child = sys::fork_child(|| {
        unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
        let pid = sys::getpid() as u32;
        // Stops at signal delivery while CS is 0x23.
        thunks::int80_from_32(nr32::KILL, &[pid, libc::SIGSTOP as u32]);
        // And again in 64-bit code.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        0
    });
    let mut c = Checks::default();
    for (mode, want_len, want_cs) in [("32-bit", 68usize, 0x23u64), ("64-bit", 216, 0x33)] {
        let sig = wait_stop(child)?;
        let r = prstatus(child);
        match r {
            Ok((len, cs)) => {
                diag!("stopped in {mode} code by signal {sig}: NT_PRSTATUS {len} bytes, cs {cs:#x}")
            }
            Err(e) => diag!(
                "stopped in {mode} code by signal {sig}: GETREGSET -1 {}",
                sys::errno_name(e)
            ),
        }
        match r {
            Ok((len, cs)) => {
                c.check(
                    len == want_len,
                    format!("{mode}: NT_PRSTATUS {len} bytes (want {want_len})"),
                );
                c.check(
                    cs == want_cs,
                    format!("{mode}: cs {cs:#x} (want {want_cs:#x})"),
                );
            }
            Err(e) => c.check(
                false,
                format!("{mode}: GETREGSET failed: {}", sys::errno_name(e)),
            ),
        }
        unsafe { libc::ptrace(libc::PTRACE_CONT, child, 0, 0) };
    }
    let exit = sys::wait_exit(child, 5000);
    c.check(exit == Exit::Code(0), format!("tracee {exit}"));
    c.finish()
}

const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const ERRNO_I386: u32 = 123;
const ERRNO_X86_64: u32 = 124;

/// A seccomp filter that fails getpid with ERRNO_I386 when the kernel
/// reports AUDIT_ARCH_I386 (nr 20) and with ERRNO_X86_64 for
/// AUDIT_ARCH_X86_64 (nr 39): the errno tells which arch the filter saw.
fn getpid_filter() -> [libc::sock_filter; 11] {
    use libc::sock_filter as F;
    let ld = |k| F {
        code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k, jt, jf| F {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ret = |k| F {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k,
    };
    // offsetof(struct seccomp_data, nr) = 0, arch = 4
    [
        ld(4),
        jeq(AUDIT_ARCH_I386, 0, 4),
        ld(0),
        jeq(nr32::GETPID, 0, 1),
        ret(libc::SECCOMP_RET_ERRNO | ERRNO_I386),
        ret(libc::SECCOMP_RET_ALLOW),
        jeq(AUDIT_ARCH_X86_64, 0, 3),
        ld(0),
        jeq(libc::SYS_getpid as u32, 0, 1),
        ret(libc::SECCOMP_RET_ERRNO | ERRNO_X86_64),
        ret(libc::SECCOMP_RET_ALLOW),
    ]
}

/// Installs `getpid_filter` in this process (no new privileges first, as
/// an unprivileged filter requires); a kernel without seccomp filters skips.
fn install_getpid_filter() -> Outcome {
    let prog = getpid_filter();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    unsafe {
        ensure!(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0,
            "PR_SET_NO_NEW_PRIVS failed"
        );
        let r = libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const _,
        );
        let e = sys::errno();
        if r != 0 && e == libc::EINVAL {
            crate::skip!("PR_SET_SECCOMP(SECCOMP_MODE_FILTER): EINVAL, kernel without CONFIG_SECCOMP_FILTER (which needs CONFIG_NET)");
        }
        ensure!(r == 0, "PR_SET_SECCOMP failed: {}", sys::errno_name(e));
    }
    Ok(())
}

fn seccomp_int80_audit_arch() -> Outcome {
    thunks::low();
    let pid = sys::getpid();
    install_getpid_filter()?;
    let from64 = thunks::int80_from_64(nr32::GETPID, &[]);
    let from32 = thunks::int80_from_32(nr32::GETPID, &[]);
    let native = unsafe { libc::syscall(libc::SYS_getpid) };
    let native_errno = sys::errno();
    diag!(
        "pid {pid}; int 0x80 getpid from 64-bit = {from64}, from 32-bit = {from32}; syscall getpid = {native} (errno {native_errno})"
    );
    let mut c = Checks::default();
    c.check(
        from64 == -(ERRNO_I386 as i64),
        format!("int 0x80 from 64-bit {from64} (want -{ERRNO_I386}: filter saw I386/20)"),
    );
    c.check(
        from32 == -(ERRNO_I386 as i32),
        format!("int 0x80 from 32-bit {from32} (want -{ERRNO_I386})"),
    );
    c.check(
        native == -1 && native_errno == ERRNO_X86_64 as i32,
        format!(
            "64-bit syscall {native}/{native_errno} (want -1/{ERRNO_X86_64}: filter saw X86_64/39)"
        ),
    );
    c.finish()
}
