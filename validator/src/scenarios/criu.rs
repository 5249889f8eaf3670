//! A CRIU-style restore: switch to compat, drop everything above 4 GiB and
//! continue as a pure 32-bit program.

use crate::diag;
use crate::runner;
use crate::runner::{Checks, Expect, Failure, Outcome, Scenario};
use crate::scenarios::common::map_vdso32_low;
use crate::scenarios::series::{patches, require_series, set_compat};
use crate::sys::thunks::{self, Entry};
use crate::sys::vdso::MappedVdso;
use crate::sys::{self, FOUR_GIB};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "criu_style_flow_map_vdso32",
        description: "As criu_style_compat_flow, but switching the upstream way (unmap the vDSO, \
                      ARCH_MAP_VDSO_32 below 4 GiB): pure 32-bit code with nothing above 4 GiB exits with 0x47",
        proves: "What CRIU can do today without the series; the baseline the compat switch is compared with, \
                 and a check of the flow itself on any kernel.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: criu_style_flow_map_vdso32,
    },
    Scenario {
    id: "criu_style_compat_flow",
    description: "A child switches to compat, unmaps everything above 4 GiB, then as pure 32-bit code makes \
                  syscalls via int 0x80 and __kernel_vsyscall, takes a signal and exits with status 0x47",
    proves: "The end-to-end use case of the series: a 64-bit restorer turns itself into an ia32 task that \
             keeps working with nothing mapped above 4 GiB.",
    vanilla: Expect::fail("EINVAL"),
    patched: Expect::PASS,
    changed_by: Some(patches::ABI),
    run: criu_style_compat_flow,
    },
];

/// Exit status the 32-bit main reports when all three of its checks hold.
const ALL_GOOD: i32 = 0x47;
/// Top of the 47-bit user address space.
const USER_TOP: u64 = 0x7fff_ffff_f000;
const SA_RESTORER: u32 = 0x0400_0000;

fn criu_style_compat_flow() -> Outcome {
    require_series()?;
    run_flow(|| set_compat(0).map(|_| ()))
}

/// The upstream route: drop [vdso]/[vvar*], map the 32-bit image low.
fn criu_style_flow_map_vdso32() -> Outcome {
    run_flow(|| map_vdso32_low().map(|_| ()))
}

/// Forks a child that makes itself 32-bit with `switch`, then runs the
/// 32-bit main from low memory with nothing mapped above 4 GiB.
fn run_flow(switch: fn() -> Result<(), Failure>) -> Outcome {
    thunks::low();
    let params = thunks::scratch() as *mut u32;
    let child = sys::fork_child(|| {
        if let Err(Failure::Fail(m) | Failure::Skip(m)) = switch() {
            diag!("child: {m}");
            return 10;
        }
        let vsyscall = match MappedVdso::find()
            .ok_or("no [vdso]".to_string())
            .and_then(|v| v.symbol("__kernel_vsyscall"))
        {
            Ok(a) => a,
            Err(e) => {
                diag!("child: {e}");
                return 11;
            }
        };
        // The kernel writes the rseq area (glibc's TLS, above 4 GiB) on every
        // return to user mode and kills the task if it is gone.
        let rseq = unregister_rseq();
        diag!("child: rseq unregister: {rseq}");
        thunks::reset_handler_record();
        let words = [
            vsyscall as u32,
            0,
            0,
            0,
            thunks::entry(Entry::RtHandler32),
            libc::SA_SIGINFO as u32 | SA_RESTORER,
            thunks::entry(Entry::RtRestorer32),
            0,
            0,
            0,
            0xffff_ffff,
        ];
        for (i, w) in words.iter().enumerate() {
            unsafe { params.add(i).write_volatile(*w) };
        }
        thunks::criu_enter(
            FOUR_GIB,
            USER_TOP - FOUR_GIB,
            thunks::entry(Entry::CriuMain32),
            params as u64 as u32,
        )
    });

    let mut c = Checks::default();
    // The 32-bit code stops itself with SIGSTOP once done, so we can look.
    let mut status = 0;
    let mut stopped = false;
    let mut reaped = None;
    for _ in 0..2000 {
        let r = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG | libc::WUNTRACED) };
        if r == child {
            stopped = libc::WIFSTOPPED(status);
            if libc::WIFEXITED(status) {
                reaped = Some(sys::Exit::Code(libc::WEXITSTATUS(status)));
            } else if libc::WIFSIGNALED(status) {
                reaped = Some(sys::Exit::Signal(libc::WTERMSIG(status)));
            }
            break;
        }
        sys::sleep_ms(5);
    }
    if stopped {
        let maps = sys::maps_of(&child.to_string());
        // [vsyscall] is a gate area, not a VMA the task could unmap.
        let high: Vec<String> = maps
            .iter()
            .filter(|m| m.end > FOUR_GIB && m.name != "[vsyscall]")
            .map(|m| m.line.clone())
            .collect();
        for m in &maps {
            diag!("child maps: {}", m.line);
        }
        // /proc/<pid>/mem rather than process_vm_readv: the test kernel is a
        // tinyconfig without CONFIG_CROSS_MEMORY_ATTACH.
        let mut words = [0u32; 11];
        let read = read_child_words(child, params as u64, &mut words);
        diag!("read the child's parameter block through /proc/{child}/mem: {read}");
        diag!(
            "child 32-bit state: munmap(4 GiB..) = {}, pid via int 0x80 = {}, via __kernel_vsyscall = {}, bits = {:#x}",
            words[10] as i32,
            words[1] as i32,
            words[2] as i32,
            words[3]
        );
        c.check(
            high.is_empty(),
            format!(
                "nothing mapped above 4 GiB ({} mapping(s) left)",
                high.len()
            ),
        );
        c.check(
            words[1] as i32 == child,
            format!("int 0x80 getpid {} = child pid {child}", words[1] as i32),
        );
        unsafe { libc::kill(child, libc::SIGCONT) };
    } else {
        let crash = runner::crash_info()
            .map(|c| c.to_string())
            .unwrap_or_default();
        diag!("child did not stop (status {status:#x}) {crash}");
        c.check(false, "child reached the SIGSTOP in its 32-bit main");
    }
    let exit = reaped.unwrap_or_else(|| sys::wait_exit(child, 10_000));
    diag!("child {exit} (want exit status {ALL_GOOD:#x})");
    c.check(exit == sys::Exit::Code(ALL_GOOD), format!("child {exit}"));
    c.finish()
}

fn read_child_words(pid: i32, addr: u64, words: &mut [u32]) -> String {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; words.len() * 4];
    let r = std::fs::File::open(format!("/proc/{pid}/mem"))
        .and_then(|f| f.read_exact_at(&mut bytes, addr));
    for (w, b) in words.iter_mut().zip(bytes.chunks(4)) {
        *w = u32::from_le_bytes(b.try_into().unwrap());
    }
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("failed: {e}"),
    }
}

extern "C" {
    static __rseq_offset: isize;
    static __rseq_size: u32;
}

const RSEQ_FLAG_UNREGISTER: i32 = 1;
const RSEQ_SIG: u32 = 0x5305_3053;

/// Unregisters glibc's rseq area of this thread; returns a description.
fn unregister_rseq() -> String {
    let (offset, size) = unsafe { (__rseq_offset, __rseq_size) };
    if size == 0 {
        return "glibc did not register rseq".into();
    }
    let mut fs: u64 = 0;
    if sys::arch_prctl(0x1003, &mut fs as *mut u64 as u64).is_err() {
        return "ARCH_GET_FS failed".into();
    }
    let area = fs.wrapping_add(offset as u64);
    // glibc registers max(__rseq_size, 32) bytes; the length must match.
    let mut last = String::new();
    for len in [size.max(32), size] {
        let r = unsafe { libc::syscall(libc::SYS_rseq, area, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) };
        if r == 0 {
            return format!("area {area:#x} len {len}: ok");
        }
        last = format!(
            "area {area:#x} len {len}: {}",
            sys::errno_name(sys::errno())
        );
    }
    last
}
