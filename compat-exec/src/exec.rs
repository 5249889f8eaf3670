//! The sequence: check everything that can be checked while nothing has
//! changed, switch the mm to ia32 mode, load the program and its stack
//! below 4 GiB, reset what execve() resets, and leave through the
//! trampoline.

use crate::abi::{self, errno_name, PrctlMmMap};
use crate::elf32::Program;
use crate::load::{self, Loaded, LOADER_AREA, TASK_SIZE_32};
use crate::program::{self, Opened};
use crate::stack::{self, Aux, Stack};
use crate::trampoline::{self, Params, Trampoline};
use crate::{maps, process, vdso32, Fail};
use std::convert::Infallible;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// The program's stack: its top page ends at the 32-bit task size, as for
/// an ia32 execve() without stack randomisation. It grows down from there.
const STACK_TOP: u32 = TASK_SIZE_32 as u32;
const STACK_MIN: u32 = 128 * 1024;
const PAGE: u32 = 4096;

pub fn run(args: &[OsString]) -> Result<Infallible, Fail> {
    let opened = program::open(&args[0])?;
    let min_addr = mmap_min_addr();
    load::check_fixed_placement(&opened.program, min_addr, &maps::read())
        .map_err(|e| Fail::cannot_run(&args[0], e))?;
    check_exe_file(&args[0], opened.fd)?;
    switch_to_compat()?;
    let vdso = vdso32::find(&maps::read()).map_err(Fail::internal)?;
    let tramp = Trampoline::map(LOADER_AREA).map_err(Fail::internal)?;
    let loaded = load_program(&opened)?;
    let stack = build_stack(args, &opened, &loaded, vdso.as_ref())?;
    map_stack(&stack, opened.program.exec_stack)?;
    let params = tramp.params();
    fill_params(params, &tramp, &loaded, &stack, vdso.as_ref(), opened.fd);
    abi::probe_mm_map(unsafe { &(*params).mm_map }).map_err(|e| {
        Fail::internal(format!(
            "the kernel refuses PR_SET_MM_MAP for the loaded program: {}",
            errno_name(e)
        ))
    })?;
    process::reset_signal_handlers();
    process::disable_sigaltstack();
    process::close_cloexec_fds(opened.fd);
    process::set_comm(opened.path.as_os_str().as_bytes());
    process::unregister_rseq().map_err(Fail::internal)?;
    tramp.enter()
}

fn mmap_min_addr() -> u64 {
    std::fs::read_to_string("/proc/sys/vm/mmap_min_addr")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65536)
        .max(4096)
}

/// Pointing /proc/self/exe at PROGRAM needs CAP_CHECKPOINT_RESTORE (or
/// CAP_SYS_ADMIN), a kernel with CONFIG_CHECKPOINT_RESTORE, and a file the
/// kernel would execute. Asked now, before anything changes.
fn check_exe_file(name: &OsString, fd: i32) -> Result<(), Fail> {
    match abi::probe_mm_map(&abi::placeholder_mm_map(fd)) {
        Ok(()) => Ok(()),
        Err(libc::EPERM) => Err(Fail::cannot_run(
            name,
            "pointing /proc/self/exe at it needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (prctl PR_SET_MM_MAP: EPERM)",
        )),
        Err(libc::EACCES) => Err(Fail::cannot_run(name, "the kernel would not execute it (noexec mount?): EACCES")),
        Err(libc::EINVAL) => Err(Fail::internal(
            "prctl(PR_SET_MM_MAP) is not supported by this kernel (CONFIG_CHECKPOINT_RESTORE=n): EINVAL",
        )),
        Err(e) => Err(Fail::internal(format!("prctl(PR_SET_MM_MAP) probe failed: {}", errno_name(e)))),
    }
}

fn switch_to_compat() -> Result<(), Fail> {
    abi::arch_set_compat().map_err(|e| {
        let name = errno_name(e);
        Fail::internal(match e {
            libc::EINVAL | libc::ENOSYS => {
                format!("ARCH_SET_COMPAT is not supported by this kernel: {name}")
            }
            libc::ENODEV => {
                format!("ARCH_SET_COMPAT: ia32 emulation is disabled in this kernel: {name}")
            }
            libc::EBUSY => {
                format!("ARCH_SET_COMPAT: another task shares this address space: {name}")
            }
            libc::EOPNOTSUPP => format!("ARCH_SET_COMPAT: shadow stack or LAM is enabled: {name}"),
            _ => format!("ARCH_SET_COMPAT failed: {name}"),
        })
    })
}

fn load_program(opened: &Opened) -> Result<Loaded, Fail> {
    let p: &Program = &opened.program;
    let bias = load::reserve(p).map_err(Fail::internal)?;
    load::map_segments(opened.fd, p, bias).map_err(Fail::internal)?;
    Ok(load::layout(p, bias))
}

/// The auxv an ia32 execve() gives, in the kernel's order.
fn auxv(loaded: &Loaded, phnum: u16, vdso: Option<&vdso32::Vdso32>) -> Vec<Aux> {
    let host = |t: u32| unsafe { libc::getauxval(t as libc::c_ulong) } as u32;
    let mut a = Vec::new();
    if let Some(v) = vdso {
        a.push(Aux::Value(stack::AT_SYSINFO, v.vsyscall));
        a.push(Aux::Value(stack::AT_SYSINFO_EHDR, v.base));
    }
    a.push(Aux::Value(
        stack::AT_MINSIGSTKSZ,
        host(stack::AT_MINSIGSTKSZ),
    ));
    let ids = unsafe {
        [
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        ]
    };
    a.extend([
        Aux::Value(stack::AT_HWCAP, host(stack::AT_HWCAP)),
        Aux::Value(stack::AT_PAGESZ, PAGE),
        Aux::Value(stack::AT_CLKTCK, host(stack::AT_CLKTCK)),
        Aux::Value(stack::AT_PHDR, loaded.phdr),
        Aux::Value(stack::AT_PHENT, 32),
        Aux::Value(stack::AT_PHNUM, phnum as u32),
        Aux::Value(stack::AT_BASE, 0),
        Aux::Value(stack::AT_FLAGS, 0),
        Aux::Value(stack::AT_ENTRY, loaded.entry),
        Aux::Value(stack::AT_UID, ids[0]),
        Aux::Value(stack::AT_EUID, ids[1]),
        Aux::Value(stack::AT_GID, ids[2]),
        Aux::Value(stack::AT_EGID, ids[3]),
        Aux::Value(stack::AT_SECURE, host(stack::AT_SECURE)),
        Aux::Random,
        Aux::Value(stack::AT_HWCAP2, host(stack::AT_HWCAP2)),
        Aux::ExecFn,
        Aux::Platform,
    ]);
    if host(stack::AT_RSEQ_FEATURE_SIZE) != 0 {
        a.push(Aux::Value(
            stack::AT_RSEQ_FEATURE_SIZE,
            host(stack::AT_RSEQ_FEATURE_SIZE),
        ));
        a.push(Aux::Value(stack::AT_RSEQ_ALIGN, host(stack::AT_RSEQ_ALIGN)));
    }
    a
}

fn environment() -> Vec<Vec<u8>> {
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    let mut out = Vec::new();
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            out.push(std::ffi::CStr::from_ptr(*p).to_bytes().to_vec());
            p = p.add(1);
        }
    }
    out
}

fn build_stack(
    args: &[OsString],
    opened: &Opened,
    loaded: &Loaded,
    vdso: Option<&vdso32::Vdso32>,
) -> Result<Stack, Fail> {
    let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let env = environment();
    let envp: Vec<&[u8]> = env.iter().map(|e| e.as_slice()).collect();
    let mut random = [0u8; 16];
    unsafe { libc::getrandom(random.as_mut_ptr().cast(), 16, 0) };
    let aux = auxv(loaded, opened.program.phnum, vdso);
    let input = stack::Input {
        top: STACK_TOP,
        argv: &argv,
        envp: &envp,
        execfn: opened.path.as_os_str().as_bytes(),
        platform: b"i686",
        random,
        auxv: &aux,
    };
    // ARG_MAX on Linux: a quarter of the stack limit; keep 64 KiB free.
    stack::build(&input, 8 * 1024 * 1024).map_err(|e| Fail::cannot_run(&args[0], e))
}

/// Maps the stack (MAP_GROWSDOWN, like the kernel's stack VMA; populated
/// for QEMU 7.2's TCG) and copies the image to its top.
fn map_stack(stack: &Stack, exec: bool) -> Result<(), Fail> {
    let len = (stack.bytes.len() as u32 + 64 * 1024)
        .next_multiple_of(PAGE)
        .max(STACK_MIN);
    let start = STACK_TOP - len;
    let prot = libc::PROT_READ | libc::PROT_WRITE | if exec { libc::PROT_EXEC } else { 0 };
    let flags = libc::MAP_PRIVATE
        | libc::MAP_ANONYMOUS
        | libc::MAP_FIXED_NOREPLACE
        | libc::MAP_GROWSDOWN
        | libc::MAP_POPULATE;
    let p = unsafe { libc::mmap(start as usize as *mut _, len as usize, prot, flags, -1, 0) };
    if p as usize != start as usize {
        return Err(Fail::internal(format!(
            "mapping the 32-bit stack at {start:#x} failed: {}",
            errno_name(abi::errno())
        )));
    }
    unsafe {
        std::ptr::copy_nonoverlapping(
            stack.bytes.as_ptr(),
            stack.sp as usize as *mut u8,
            stack.bytes.len(),
        )
    };
    Ok(())
}

fn fill_params(
    params: *mut Params,
    tramp: &Trampoline,
    loaded: &Loaded,
    stack: &Stack,
    vdso: Option<&vdso32::Vdso32>,
    fd: i32,
) {
    let p = unsafe { &mut *params };
    let high = 1u64 << 32;
    p.high_start = high;
    p.high_len = 0x7fff_ffff_f000 - high;
    p.scratch_sp = (stack.sp as u64 - 256) & !15;
    p.sp = stack.sp as u64;
    p.entry = loaded.entry as u64;
    p.vsyscall = vdso.map_or(0, |v| v.vsyscall as u64);
    p.tramp_base = tramp.base;
    p.tramp_len = trampoline::LEN;
    p.exe_fd = fd as u64;
    assert!(
        stack.auxv.len() <= p.auxv.len() / 2,
        "auxv longer than the kernel's saved_auxv"
    );
    for (i, &(k, v)) in stack.auxv.iter().enumerate() {
        p.auxv[2 * i] = k;
        p.auxv[2 * i + 1] = v;
    }
    p.mm_map = PrctlMmMap {
        start_code: loaded.start_code as u64,
        end_code: loaded.end_code as u64,
        start_data: loaded.start_data as u64,
        end_data: loaded.end_data as u64,
        start_brk: loaded.brk as u64,
        brk: loaded.brk as u64,
        start_stack: stack.sp as u64,
        arg_start: stack.arg_start as u64,
        arg_end: stack.arg_end as u64,
        env_start: stack.env_start as u64,
        env_end: stack.env_end as u64,
        auxv: p.auxv.as_ptr() as u64,
        auxv_size: (stack.auxv.len() * 8) as u32,
        exe_fd: fd as u32,
    };
}
