//! The kernel interface compat-exec uses: the series' arch_prctl codes and
//! prctl(PR_SET_MM_MAP). The series' ABI may still change (how
//! ARCH_SET_COMPAT reports the new vDSO); `arch_set_compat` is the only
//! function that knows, and compat-exec finds the vDSO in /proc/self/maps
//! instead of trusting a return value.

pub const ARCH_SET_COMPAT: i32 = 0x2004;
const PR_SET_MM: i32 = 35;
const PR_SET_MM_MAP: i32 = 14;

/// Switches this (single-threaded) process's mm to ia32 mode, with the
/// 32-bit vDSO where the kernel places it. The wanted vDSO text address
/// goes in through a pointer (0: the kernel's choice) and the new one comes
/// back through it; compat-exec finds the vDSO in /proc/self/maps instead.
pub fn arch_set_compat() -> Result<(), i32> {
    let mut vdso_text: u64 = 0;
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_SET_COMPAT,
            &mut vdso_text as *mut u64,
        )
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// struct prctl_mm_map of <linux/prctl.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PrctlMmMap {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    pub auxv: u64,
    pub auxv_size: u32,
    pub exe_fd: u32,
}

pub const PRCTL_MM_MAP_SIZE: usize = std::mem::size_of::<PrctlMmMap>();
const _: () = assert!(PRCTL_MM_MAP_SIZE == 104);

pub fn prctl_set_mm_map(map: &PrctlMmMap) -> Result<(), i32> {
    let r = unsafe {
        libc::prctl(
            PR_SET_MM,
            PR_SET_MM_MAP as libc::c_ulong,
            map as *const PrctlMmMap as libc::c_ulong,
            PRCTL_MM_MAP_SIZE as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// Asks the kernel whether `map` with `exe_fd` would be accepted, without
/// changing anything: every check runs before the one that the still
/// mapped compat-exec binary fails with EBUSY ("old exe file still
/// mapped"), and nothing is written before it. Ok means EBUSY.
pub fn probe_mm_map(map: &PrctlMmMap) -> Result<(), i32> {
    match prctl_set_mm_map(map) {
        Err(libc::EBUSY) => Ok(()),
        Ok(()) => panic!("PR_SET_MM_MAP replaced the exe file while compat-exec is mapped"),
        Err(e) => Err(e),
    }
}

/// A map the kernel's address checks accept, to probe the exe_fd checks
/// before anything is loaded.
pub fn placeholder_mm_map(exe_fd: i32) -> PrctlMmMap {
    let a = 0x10_0000;
    PrctlMmMap {
        start_code: a,
        end_code: a + 0x1000,
        start_data: a + 0x1000,
        end_data: a + 0x1000,
        start_brk: a + 0x2000,
        brk: a + 0x2000,
        start_stack: a + 0x3000,
        arg_start: a + 0x3000,
        arg_end: a + 0x3000,
        env_start: a + 0x3000,
        env_end: a + 0x3000,
        auxv: 0,
        auxv_size: 0,
        exe_fd: exe_fd as u32,
    }
}

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// "EINVAL", "EBUSY"... for the errnos compat-exec can meet.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EBADF => "EBADF",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EALREADY => "EALREADY",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ETXTBSY => "ETXTBSY",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}
