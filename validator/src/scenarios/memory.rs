//! Where memory lands for compat syscalls made by a 64-bit process, as
//! upstream already handles it.

use crate::runner::{Checks, Expect, Outcome, Scenario};
use crate::sys::thunks;
use crate::sys::{self, int80_mmap2, nr32, FOUR_GIB, PAGE};
use crate::{diag, ensure, fail, skip};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "int80_mmap2_below_4g",
        description: "int 0x80 mmap2 without a hint from a 64-bit process returns a mapping below 4 GiB",
        proves: "Upstream (v4.12) already places compat mmaps with the compat base; the series must not regress it.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: int80_mmap2_below_4g,
    },
    Scenario {
        id: "map_32bit_range",
        description: "mmap(MAP_32BIT) lands in [0x40000000, 0x80000000)",
        proves: "MAP_32BIT gives only 1 GiB, which is why a real compat switch (not MAP_32BIT) is needed for \
                 32-bit programs.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: map_32bit_range,
    },
    Scenario {
        id: "personality_addr_limit_no_effect",
        description: "personality(ADDR_LIMIT_32BIT) without execve leaves a later hint-less mmap above 4 GiB",
        proves: "personality() is not a way to make a running process compat; the series adds an explicit \
                 arch_prctl instead.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: personality_addr_limit_no_effect,
    },
    Scenario {
        id: "int80_io_setup_below_4g",
        description: "io_setup through int 0x80 returns an AIO ring context below 4 GiB",
        proves: "Kernel-chosen addresses returned by other compat syscalls also fit in 32 bits.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: int80_io_setup_below_4g,
    },
    Scenario {
        id: "int80_shmat_below_4g",
        description: "shmat through int 0x80 attaches the segment below 4 GiB",
        proves: "SysV shared memory attached by compat code is addressable from 32-bit code.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: int80_shmat_below_4g,
    },
    Scenario {
        id: "vsyscall_present",
        description: "[vsyscall] is listed in /proc/self/maps of an ordinary 64-bit process",
        proves: "Baseline for vsyscall_gone_after_set_compat: the line exists before the switch and after \
                 ARCH_SET_NATIVE.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: vsyscall_present,
    },
];

fn int80_mmap2_below_4g() -> Outcome {
    let r = int80_mmap2(0, PAGE as u32, 0);
    diag!("int 0x80 mmap2(0, 4096) = {}", sys::show(r));
    let addr = r.map_err(|e| {
        crate::runner::Failure::Fail(format!("mmap2 failed: {}", sys::errno_name(e)))
    })?;
    let line = sys::map_containing(addr)
        .map(|m| m.line)
        .unwrap_or_else(|| "none".into());
    diag!("maps line: {line}");
    ensure!(addr + PAGE <= FOUR_GIB, "mapping {addr:#x} is above 4 GiB");
    ensure!(line != "none", "no mapping at {addr:#x} in /proc/self/maps");
    Ok(())
}

fn map_32bit_range() -> Outcome {
    let r = sys::mmap_anon(0, PAGE, libc::MAP_32BIT);
    diag!("mmap(MAP_32BIT) = {}", sys::show(r));
    let addr = r.map_err(|e| crate::runner::Failure::Fail(sys::errno_name(e)))?;
    ensure!(
        (0x4000_0000..0x8000_0000).contains(&addr),
        "{addr:#x} outside [0x40000000, 0x80000000)"
    );
    Ok(())
}

fn personality_addr_limit_no_effect() -> Outcome {
    let old = unsafe { libc::personality(0xffff_ffff) };
    let set =
        unsafe { libc::personality((old as u32 | libc::ADDR_LIMIT_32BIT as u32) as libc::c_ulong) };
    let now = unsafe { libc::personality(0xffff_ffff) };
    let r = sys::mmap_anon(0, PAGE, 0);
    diag!(
        "personality {old:#x} -> {now:#x} (set returned {set}); mmap(0, 4096) = {}",
        sys::show(r)
    );
    unsafe { libc::personality(old as libc::c_ulong) };
    ensure!(
        now as u32 & libc::ADDR_LIMIT_32BIT as u32 != 0,
        "ADDR_LIMIT_32BIT was not recorded"
    );
    let addr = r.map_err(|e| crate::runner::Failure::Fail(sys::errno_name(e)))?;
    ensure!(
        addr >= FOUR_GIB,
        "mmap landed below 4 GiB ({addr:#x}): personality took effect without execve"
    );
    Ok(())
}

fn int80_io_setup_below_4g() -> Outcome {
    // compat io_setup writes a 32-bit context into a 32-bit pointer.
    let ctx = thunks::scratch() as *mut u32;
    unsafe { ctx.write_volatile(0) };
    let r = sys::decode_raw(thunks::int80_from_64(
        nr32::IO_SETUP,
        &[8, ctx as u64 as u32],
    ));
    let value = unsafe { ctx.read_volatile() } as u64;
    diag!(
        "int 0x80 io_setup(8, {:#x}) = {}, context {value:#x}",
        ctx as u64,
        sys::show(r)
    );
    if r == Err(libc::ENOSYS) {
        fail!("io_setup: ENOSYS (kernel without CONFIG_AIO)");
    }
    ensure!(r.is_ok(), "io_setup failed: {}", sys::show(r));
    let line = sys::map_containing(value)
        .map(|m| m.line)
        .unwrap_or_else(|| "none".into());
    diag!("maps line: {line}");
    unsafe { libc::syscall(libc::SYS_io_destroy, value) };
    ensure!(
        value != 0 && value < FOUR_GIB,
        "AIO context {value:#x} not below 4 GiB"
    );
    ensure!(
        line.contains("aio"),
        "context {value:#x} is not an [aio] mapping"
    );
    Ok(())
}

fn int80_shmat_below_4g() -> Outcome {
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, PAGE as usize, libc::IPC_CREAT | 0o600) };
    if id < 0 {
        let e = sys::errno();
        if e == libc::ENOSYS {
            skip!("shmget: ENOSYS (kernel without CONFIG_SYSVIPC)");
        }
        fail!("shmget failed: {}", sys::errno_name(e));
    }
    let r = sys::decode_raw(thunks::int80_from_64(nr32::SHMAT, &[id as u32, 0, 0]));
    diag!("int 0x80 shmat({id}, NULL, 0) = {}", sys::show(r));
    let line = r
        .ok()
        .and_then(sys::map_containing)
        .map(|m| m.line)
        .unwrap_or_else(|| "none".into());
    diag!("maps line: {line}");
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    let addr = r.map_err(|e| {
        crate::runner::Failure::Fail(format!("shmat failed: {}", sys::errno_name(e)))
    })?;
    ensure!(
        addr < FOUR_GIB,
        "segment attached at {addr:#x}, above 4 GiB"
    );
    ensure!(line != "none", "no mapping at {addr:#x}");
    Ok(())
}

fn vsyscall_present() -> Outcome {
    let m = sys::find_map("[vsyscall]");
    diag!(
        "maps: {}",
        m.as_ref()
            .map(|m| m.line.as_str())
            .unwrap_or("no [vsyscall] line")
    );
    let mut c = Checks::default();
    c.check(m.is_some(), "[vsyscall] listed");
    if let Some(m) = m {
        c.check(
            m.start == 0xffff_ffff_ff60_0000,
            format!("[vsyscall] at {:#x}", m.start),
        );
    }
    c.finish()
}
