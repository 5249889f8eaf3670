//! Micro-benchmarks printed as KTAP diagnostics:
//! `# bench <name> median_ns=<n> p10_ns=<n> p90_ns=<n> iters=<n>`.
//!
//! Time is read with rdtsc, converted to ns by a calibration against the
//! clock_gettime *syscall* (not the vDSO: some benchmarks run in children
//! whose 64-bit vDSO is gone; and the test VM's clocksource is jiffies, far
//! too coarse to time a batch directly). Each sample is one batch of
//! iterations. The 32-bit
//! getpid figures include one 64 -> 32 -> 64 round trip each (subtract
//! `round_trip_64_32_64` for the syscall alone).
//!
//! Then the marked loops of `icount` (instruction counts, read by a QEMU
//! plugin; plain no-ops without it).

use crate::ktap::emit;
use crate::scenarios::common::free_low_address;
use crate::sys;
use crate::sys::thunks::{self, Entry, Regs32};
use crate::sys::vdso::{self, MappedVdso};

const SAMPLES: usize = 31;
const BATCH: u64 = 200;

fn clock_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn tsc() -> u64 {
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Nanoseconds per TSC tick, measured over at least 200 ms of the clock.
fn calibrate() -> f64 {
    let (c0, t0) = (clock_ns(), tsc());
    let mut c1 = c0;
    while c1 - c0 < 200_000_000 {
        c1 = clock_ns();
    }
    let t1 = tsc();
    (c1 - c0) as f64 / (t1 - t0).max(1) as f64
}

static NS_PER_TICK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

/// Times `batch` iterations of `f` per sample and prints the distribution
/// of the per-iteration cost.
fn measure(name: &str, batch: u64, mut f: impl FnMut()) {
    for _ in 0..batch {
        f(); // warm up caches and page tables
    }
    let ns_per_tick = *NS_PER_TICK.get_or_init(calibrate);
    let mut per_iter: Vec<u64> = (0..SAMPLES)
        .map(|_| {
            let t0 = tsc();
            for _ in 0..batch {
                f();
            }
            ((tsc() - t0) as f64 * ns_per_tick / batch as f64) as u64
        })
        .collect();
    per_iter.sort_unstable();
    let pick = |q: usize| per_iter[(per_iter.len() - 1) * q / 100];
    emit(&format!(
        "# bench {name} median_ns={} p10_ns={} p90_ns={} iters={}",
        pick(50),
        pick(10),
        pick(90),
        batch * SAMPLES as u64
    ));
}

/// Runs `f` in a forked child (for benchmarks that change the mm).
fn in_child(name: &str, f: fn() -> Result<(), String>) {
    let pid = sys::fork_child(|| match f() {
        Ok(()) => 0,
        Err(e) => {
            emit(&format!("# bench {name} not measured: {e}"));
            1
        }
    });
    let exit = sys::wait_exit(pid, 120_000);
    if exit != sys::Exit::Code(0) && exit != sys::Exit::Code(1) {
        emit(&format!("# bench {name} child {exit}"));
    }
}

fn vsyscall32_getpid() -> Result<(), String> {
    thunks::low();
    vdso::unmap_all();
    let hint = free_low_address(1 << 20).map_err(|_| "no low address".to_string())?;
    sys::arch_prctl(sys::ARCH_MAP_VDSO_32, hint)
        .map_err(|e| format!("ARCH_MAP_VDSO_32: {}", sys::errno_name(e)))?;
    let v = MappedVdso::find().ok_or("no [vdso] after ARCH_MAP_VDSO_32")?;
    let vsyscall = v.symbol("__kernel_vsyscall")? as u32;
    measure("getpid_kernel_vsyscall_32", BATCH, || {
        thunks::call32_with(vsyscall, Regs32::syscall(20, &[]), false);
    });
    Ok(())
}

fn set_compat_native_pair() -> Result<(), String> {
    sys::get_compat().map_err(|e| {
        format!(
            "kernel lacks the series (ARCH_GET_COMPAT: {})",
            sys::errno_name(e)
        )
    })?;
    let mut failure = None;
    measure("arch_set_compat_native_pair", 20, || {
        if let Err(e) = sys::compat_native_pair() {
            failure.get_or_insert(e);
        }
    });
    failure.map_or(Ok(()), Err)
}

pub fn run() -> i32 {
    emit("KTAP version 1");
    emit("1..0");
    let ns_per_tick = *NS_PER_TICK.get_or_init(calibrate);
    emit(&format!(
        "# bench: kernel {}, CPU {}, {:.3} ns per TSC tick",
        crate::suite::kernel_release(),
        sys::cpu_vendor(),
        ns_per_tick
    ));
    let ret = thunks::entry(Entry::Int80After); // a bare `ret` in 32-bit code
    measure("round_trip_64_32_64", BATCH, || {
        thunks::call32_with(ret, Regs32::default(), false);
    });
    let int80 = thunks::entry(Entry::Int80);
    measure("getpid_int80_from_32bit", BATCH, || {
        thunks::call32_with(int80, Regs32::syscall(20, &[]), false);
    });
    measure("getpid_syscall_64bit", BATCH, || {
        unsafe { libc::syscall(libc::SYS_getpid) };
    });
    in_child("getpid_kernel_vsyscall_32", vsyscall32_getpid);
    in_child("arch_set_compat_native_pair", set_compat_native_pair);
    crate::icount::run();
    0
}
