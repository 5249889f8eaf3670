//! Thin wrappers over the system calls the scenarios observe, returning
//! `Result<value, errno>` so that diagnostics can name the errno.

pub mod thunks;
pub mod vdso;

pub const ARCH_MAP_VDSO_32: i32 = 0x2002;
pub const ARCH_MAP_VDSO_64: i32 = 0x2003;
/// The series' interface (see docs/scenarios.md).
pub const ARCH_SET_COMPAT: i32 = 0x2004;
pub const ARCH_SET_NATIVE: i32 = 0x2005;
pub const ARCH_GET_COMPAT: i32 = 0x2006;
pub const MAP_ABOVE4G: i32 = 0x80;

pub const FOUR_GIB: u64 = 1 << 32;
pub const PAGE: u64 = 4096;

/// ia32 syscall numbers (arch/x86/entry/syscalls/syscall_32.tbl).
pub mod nr32 {
    pub const GETPID: u32 = 20;
    pub const BRK: u32 = 45;
    pub const CLOCK_GETTIME64: u32 = 403;
    pub const KILL: u32 = 37;
    pub const MREMAP: u32 = 163;
    pub const RT_SIGACTION: u32 = 174;
    pub const MMAP2: u32 = 192;
    pub const IO_SETUP: u32 = 245;
    pub const SHMAT: u32 = 397;
}

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EIO => "EIO",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOMEM => "ENOMEM",
        libc::ENOSYS => "ENOSYS",
        libc::EALREADY => "EALREADY",
        libc::EACCES => "EACCES",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EINTR => "EINTR",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

/// Renders a syscall result for a diagnostic: `0x1234` or `-1 EINVAL`.
pub fn show(r: Result<u64, i32>) -> String {
    match r {
        Ok(v) => format!("{v:#x}"),
        Err(e) => format!("-1 {}", errno_name(e)),
    }
}

/// Decodes a raw kernel return value (negative errno in -4095..-1).
pub fn decode_raw(ret: i64) -> Result<u64, i32> {
    if (-4095..0).contains(&ret) {
        Err(-ret as i32)
    } else {
        Ok(ret as u64)
    }
}

fn libc_result(ret: i64) -> Result<u64, i32> {
    if ret == -1 {
        Err(errno())
    } else {
        Ok(ret as u64)
    }
}

pub fn arch_prctl(code: i32, arg: u64) -> Result<u64, i32> {
    libc_result(unsafe { libc::syscall(libc::SYS_arch_prctl, code, arg) })
}

/// ARCH_SET_COMPAT / ARCH_SET_NATIVE: the wanted vDSO text address (0: the
/// kernel's choice) goes in through a pointer, and the address of the new
/// text comes back through it (the call itself returns 0), so that it
/// survives the C library's int-returning arch_prctl().
pub fn switch_mode(code: i32, addr: u64) -> Result<u64, i32> {
    let mut inout = addr;
    arch_prctl(code, &mut inout as *mut u64 as u64).map(|_| inout)
}

/// ARCH_SET_COMPAT then ARCH_SET_NATIVE, both at the kernel's choice of
/// address (what the benchmarks time and count); Err names both results.
pub fn compat_native_pair() -> Result<(), String> {
    let a = switch_mode(ARCH_SET_COMPAT, 0);
    let b = switch_mode(ARCH_SET_NATIVE, 0);
    match (a, b) {
        (Ok(_), Ok(_)) => Ok(()),
        _ => Err(format!(
            "ARCH_SET_COMPAT {} / ARCH_SET_NATIVE {}",
            show(a),
            show(b)
        )),
    }
}

/// ARCH_GET_COMPAT: Ok(0 or 1) on a kernel with the series.
pub fn get_compat() -> Result<u64, i32> {
    let mut v: u64 = 0xdead;
    arch_prctl(ARCH_GET_COMPAT, &mut v as *mut u64 as u64).map(|_| v)
}

pub fn getpid() -> i32 {
    unsafe { libc::syscall(libc::SYS_getpid) as i32 }
}

/// 64-bit mmap of anonymous read-write memory.
pub fn mmap_anon(hint: u64, len: u64, extra_flags: i32) -> Result<u64, i32> {
    mmap(
        hint,
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags,
        -1,
        0,
    )
}

/// 64-bit mmap with every argument.
pub fn mmap(hint: u64, len: u64, prot: i32, flags: i32, fd: i32, offset: u64) -> Result<u64, i32> {
    // fd widened by hand: a variadic i32 leaves the register's upper half
    // undefined, and the kernel reads all of it.
    let fd = i64::from(fd);
    libc_result(unsafe { libc::syscall(libc::SYS_mmap, hint, len, prot, flags, fd, offset) })
}

pub fn munmap(addr: u64, len: u64) -> Result<u64, i32> {
    libc_result(unsafe { libc::syscall(libc::SYS_munmap, addr, len) })
}

/// 64-bit mremap; `new` is used with MREMAP_FIXED only.
pub fn mremap(old: u64, old_len: u64, new_len: u64, flags: i32, new: u64) -> Result<u64, i32> {
    libc_result(unsafe { libc::syscall(libc::SYS_mremap, old, old_len, new_len, flags, new) })
}

pub fn mprotect(addr: u64, len: u64, prot: i32) -> Result<u64, i32> {
    libc_result(unsafe { libc::syscall(libc::SYS_mprotect, addr, len, prot) })
}

pub fn madvise(addr: u64, len: u64, advice: i32) -> Result<u64, i32> {
    libc_result(unsafe { libc::syscall(libc::SYS_madvise, addr, len, advice) })
}

/// mseal(2) (Linux 6.10); ENOSYS before.
pub fn mseal(addr: u64, len: u64) -> Result<u64, i32> {
    const SYS_MSEAL: i64 = 462;
    libc_result(unsafe { libc::syscall(SYS_MSEAL, addr, len, 0) })
}

/// CLOCK_MONOTONIC in nanoseconds through the system call, never the
/// vDSO: callers may have replaced or unmapped the image glibc knows.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

const PROT_RW: u32 = (libc::PROT_READ | libc::PROT_WRITE) as u32;
const PRIVATE_ANON: u32 = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u32;

/// int 0x80 mmap2(hint, len, RW, PRIVATE|ANON|extra) from 64-bit code.
pub fn int80_mmap2(hint: u32, len: u32, extra_flags: u32) -> Result<u64, i32> {
    decode_raw(thunks::int80_from_64(
        nr32::MMAP2,
        &[hint, len, PROT_RW, PRIVATE_ANON | extra_flags, u32::MAX, 0],
    ))
}

/// One line of /proc/<pid>/maps.
#[derive(Clone, Debug)]
pub struct MapLine {
    pub start: u64,
    pub end: u64,
    /// `r-xp` and the like.
    pub perms: String,
    pub name: String,
    pub line: String,
}

pub fn parse_maps(text: &str) -> Vec<MapLine> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?.to_string();
            let name = fields.nth(3).unwrap_or("").to_string();
            let (s, e) = range.split_once('-')?;
            Some(MapLine {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                perms,
                name,
                line: line.to_string(),
            })
        })
        .collect()
}

pub fn maps_of(pid: &str) -> Vec<MapLine> {
    parse_maps(&std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default())
}

pub fn self_maps() -> Vec<MapLine> {
    maps_of("self")
}

pub fn find_map(name: &str) -> Option<MapLine> {
    self_maps().into_iter().find(|m| m.name == name)
}

/// The mapping containing `addr`, if any.
pub fn map_containing(addr: u64) -> Option<MapLine> {
    self_maps()
        .into_iter()
        .find(|m| m.start <= addr && addr < m.end)
}

/// True if no mapping intersects [start, end).
pub fn range_is_free(start: u64, end: u64) -> bool {
    self_maps().iter().all(|m| m.end <= start || m.start >= end)
}

pub fn is_intel() -> bool {
    cpu_vendor() == "GenuineIntel"
}

pub fn cpu_vendor() -> String {
    let r = core::arch::x86_64::__cpuid(0);
    let mut v = Vec::new();
    for w in [r.ebx, r.edx, r.ecx] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    String::from_utf8_lossy(&v).into_owned()
}

/// CPUID leaf 0x40000000 signature ("TCGTCGTCGTCG" under QEMU TCG,
/// "KVMKVMKVM" under KVM), empty on bare metal.
pub fn hypervisor_signature() -> String {
    let leaf1 = core::arch::x86_64::__cpuid(1);
    if leaf1.ecx & (1 << 31) == 0 {
        return String::new();
    }
    let r = core::arch::x86_64::__cpuid(0x4000_0000);
    let mut v = Vec::new();
    for w in [r.ebx, r.ecx, r.edx] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    String::from_utf8_lossy(&v)
        .trim_end_matches('\0')
        .to_string()
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGILL => "SIGILL",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGKILL => "SIGKILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSYS => "SIGSYS",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGUSR1 => "SIGUSR1",
        _ => "signal",
    }
}

/// How a forked process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c:#x}"),
            Exit::Signal(s) => write!(f, "killed by {} ({s})", signal_name(*s)),
            Exit::TimedOut => write!(f, "timed out"),
        }
    }
}

/// Waits for `pid` for at most `ms` milliseconds, killing it afterwards.
/// Polls with nanosleep rather than a clock: callers may have unmapped the
/// vDSO glibc's clock_gettime uses.
pub fn wait_exit(pid: i32, ms: u64) -> Exit {
    for _ in 0..ms.div_ceil(5).max(1) {
        match try_wait(pid) {
            Ok(Some(exit)) => return exit,
            Ok(None) => sleep_ms(5),
            Err(_) => return Exit::TimedOut,
        }
    }
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    Exit::TimedOut
}

/// How `pid`, a child of ours, ended, if it has: None while it runs;
/// waitpid's errno if it is not (or no longer) ours to wait for.
pub fn try_wait(pid: i32) -> Result<Option<Exit>, i32> {
    let mut status = 0;
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r < 0 {
        return Err(errno());
    }
    if r == pid && libc::WIFEXITED(status) {
        return Ok(Some(Exit::Code(libc::WEXITSTATUS(status))));
    }
    if r == pid && libc::WIFSIGNALED(status) {
        return Ok(Some(Exit::Signal(libc::WTERMSIG(status))));
    }
    Ok(None)
}

pub fn sleep_ms(ms: u64) {
    let ts = libc::timespec {
        tv_sec: (ms / 1000) as i64,
        tv_nsec: ((ms % 1000) * 1_000_000) as i64,
    };
    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
}

/// Forks; the child runs `f` and exits with its return value (never
/// unwinding into the caller's code).
pub fn fork_child(f: impl FnOnce() -> i32) -> i32 {
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        unsafe { libc::_exit(code) };
    }
    pid
}

/// What [`run_program`] runs: an executable, its argv (argv[0] included)
/// and environment, its working folder, and the files its stdin, stdout and
/// stderr are opened on (stdout and stderr are created or truncated).
pub struct Program<'a> {
    pub path: &'a str,
    pub argv: &'a [&'a str],
    pub env: &'a [&'a str],
    pub dir: &'a str,
    pub stdin: &'a str,
    pub stdout: &'a str,
    pub stderr: &'a str,
    /// setsid() before execve: a process tree of its own, as CRIU wants
    /// what it checkpoints.
    pub new_session: bool,
}

/// Runs `p` with fork and execve and waits at most `ms` for it. Files, not
/// pipes, and not std::process: the test kernel has no AF_UNIX, which
/// Rust's process spawning uses. An execve failure is exit status 127.
pub fn run_program(p: &Program, ms: u64) -> Result<Exit, String> {
    Ok(wait_exit(spawn_program(p)?, ms))
}

/// Starts `p` (see [`run_program`]); returns its pid.
pub fn spawn_program(p: &Program) -> Result<i32, String> {
    let c = |s: &str| std::ffi::CString::new(s).map_err(|e| format!("{s:?}: {e}"));
    let path = c(p.path)?;
    let argv: Vec<std::ffi::CString> = p.argv.iter().map(|a| c(a)).collect::<Result<_, _>>()?;
    let env: Vec<std::ffi::CString> = p.env.iter().map(|a| c(a)).collect::<Result<_, _>>()?;
    let ptrs = |v: &[std::ffi::CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|s| s.as_ptr())
            .chain([std::ptr::null()])
            .collect()
    };
    let (argv_p, env_p) = (ptrs(&argv), ptrs(&env));
    let (dir, stdin, stdout, stderr) = (c(p.dir)?, c(p.stdin)?, c(p.stdout)?, c(p.stderr)?);
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", errno_name(errno())));
    }
    if pid == 0 {
        // Only async-signal-safe calls from here to execve.
        unsafe {
            let out = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
            let fds = [
                libc::open(stdin.as_ptr(), libc::O_RDONLY),
                libc::open(stdout.as_ptr(), out, 0o644),
                libc::open(stderr.as_ptr(), out, 0o644),
            ];
            for (target, fd) in fds.iter().enumerate() {
                if *fd < 0 || libc::dup2(*fd, target as i32) < 0 {
                    libc::_exit(126);
                }
            }
            if libc::chdir(dir.as_ptr()) != 0 || (p.new_session && libc::setsid() < 0) {
                libc::_exit(126);
            }
            libc::execve(path.as_ptr(), argv_p.as_ptr(), env_p.as_ptr());
            libc::_exit(127);
        }
    }
    Ok(pid)
}

/// Brings the loopback interface up (CRIU binds a TCP socket to 127.0.0.1
/// to probe TCP repair; the guest's init configures no network).
pub fn loopback_up() -> Result<(), i32> {
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(errno());
    }
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags =
        (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as libc::c_short;
    let r = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) };
    let e = errno();
    unsafe { libc::close(fd) };
    if r < 0 {
        return Err(e);
    }
    Ok(())
}
