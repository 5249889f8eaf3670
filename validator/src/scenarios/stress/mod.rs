//! stress_compat_mode: worker processes run random sequences of
//! switches, mappings, forks, threads, signals and /proc readers from a
//! printed seed, checking the invariants after every step. Runs only when
//! asked (`--stress DURATION`); a kernel without the series runs the
//! operations that apply to it and says so.

mod check;
mod mem;
mod ops;
mod procs;
mod rng;
mod slot;
mod special;
mod switch;
mod worker;

use crate::runner::{self, Expect, Outcome, Scenario};
use crate::sys::{self, Exit};
use crate::{diag, fail};
use ops::Op;
use slot::{End, Slot};
use std::sync::OnceLock;
use std::time::Duration;
use worker::Worker;

pub const ID: &str = "stress_compat_mode";

pub const SCENARIOS: &[Scenario] = &[Scenario {
    id: ID,
    description: "Only with --stress D: N workers (default 4) run random sequences (seed printed, --seed replays) of \
                  ARCH_SET_COMPAT/NATIVE at free, occupied and bad addresses, mmap/mremap/munmap/mprotect/madvise \
                  of every kind, int 0x80 mmap2, fork, a thread (EBUSY), munmap/mremap/mseal of [vdso]/[vvar], \
                  32- and 64-bit signals and a ptrace /proc reader, checking the invariants after every step",
    proves: "Mode switches under one mmap_write_lock, vDSO replacement and placement changes hold under random \
             interleavings: ARCH_GET_COMPAT, the vDSO class and [vsyscall] agree, compat placement stays below \
             4 GiB, the mapped vDSO works and failed calls change nothing. Vanilla runs the subset without switches.",
    vanilla: Expect::PASS,
    patched: Expect::PASS,
    changed_by: None,
    run,
}];

/// What the run was asked to do; the seed is always known (and printed).
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub duration: Duration,
    pub seed: u64,
    pub workers: u32,
}

static PLAN: OnceLock<Plan> = OnceLock::new();

/// Called once before the suite runs; picks a seed if none was given.
pub fn configure(duration: Duration, seed: Option<u64>, workers: u32) -> Plan {
    let seed = seed.unwrap_or_else(random_seed);
    *PLAN.get_or_init(|| Plan {
        duration,
        seed,
        workers,
    })
}

/// Beyond the per-scenario timeout: the run itself and the workers' last steps.
pub fn extra_time() -> Duration {
    PLAN.get()
        .map_or(Duration::ZERO, |p| p.duration + Duration::from_secs(30))
}

fn random_seed() -> u64 {
    let mut seed = 0u64;
    let r = unsafe { libc::getrandom((&mut seed as *mut u64).cast(), 8, 0) };
    if r != 8 {
        seed = sys::monotonic_ns() ^ (sys::getpid() as u64) << 32;
    }
    seed
}

fn run() -> Outcome {
    let Some(plan) = PLAN.get().copied() else {
        fail!("stress_compat_mode runs only with --stress DURATION (validator.stress=D as PID 1)");
    };
    let series = sys::get_compat().is_ok();
    announce(&plan, series);
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let slots = Slot::map_shared(plan.workers as usize);
    for id in 0..plan.workers {
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // The worker's own slot: from here on only it writes there.
            let slot = unsafe { &mut *std::ptr::addr_of_mut!(slots[id as usize]) };
            let seed = rng::worker_seed(plan.seed, id);
            Worker::new(id, plan, seed, series, slot).run();
        }
        slots[id as usize].hand_over(0, pid);
    }
    let ends = wait_for_all(slots, &plan);
    report(slots, &ends, &plan)
}

fn announce(plan: &Plan, series: bool) {
    diag!(
        "seed {:#x}, {} workers, {} s; replay with --stress {}s --seed {:#x} --workers {}",
        plan.seed,
        plan.workers,
        plan.duration.as_secs(),
        plan.duration.as_secs(),
        plan.seed,
        plan.workers
    );
    if series {
        diag!("kernel with the series: every operation, switches included");
    } else {
        let left_out: Vec<&str> = Op::all()
            .filter(|o| o.needs_series())
            .map(Op::name)
            .collect();
        diag!(
            "kernel without the series (ARCH_GET_COMPAT fails): running the subset that applies, without {}",
            left_out.join(", ")
        );
    }
}

/// How a worker's last process ended, when it did not end cleanly.
struct Death {
    worker: usize,
    exit: Exit,
}

/// Reaps every descendant (workers, their forked continuations, orphaned
/// helpers) until none is left; kills what is still there well after the
/// deadline.
fn wait_for_all(slots: &[Slot], plan: &Plan) -> Vec<Death> {
    let give_up = sys::monotonic_ns() + (plan.duration + Duration::from_secs(25)).as_nanos() as u64;
    let mut deaths = Vec::new();
    loop {
        let mut status = 0;
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL) };
        if pid < 0 {
            return with_vanished(slots, deaths);
        }
        if pid == 0 {
            if sys::monotonic_ns() > give_up {
                for s in slots.iter().filter(|s| s.end() == End::Running) {
                    unsafe { libc::kill(s.pid(), libc::SIGKILL) };
                }
            }
            sys::sleep_ms(20);
            continue;
        }
        let exit = if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        };
        // Exit status 0 is a worker at its deadline or a forking parent;
        // 1 is a worker that reported a broken invariant in its slot.
        let running = |s: &Slot| s.pid() == pid && s.end() == End::Running;
        if exit != Exit::Code(0) {
            if let Some(worker) = slots.iter().position(running) {
                deaths.push(Death { worker, exit });
            }
        }
    }
}

/// A worker whose processes are all gone without finishing or reporting.
fn with_vanished(slots: &[Slot], mut deaths: Vec<Death>) -> Vec<Death> {
    for (worker, s) in slots.iter().enumerate() {
        if s.end() == End::Running && deaths.iter().all(|d| d.worker != worker) {
            deaths.push(Death {
                worker,
                exit: Exit::TimedOut,
            });
        }
    }
    deaths
}

/// Operations per worker and per kind, then the verdict: the first broken
/// invariant or dead worker names the scenario's failure.
fn report(slots: &[Slot], deaths: &[Death], plan: &Plan) -> Outcome {
    let total: u64 = slots.iter().map(|s| s.steps).sum();
    let per_worker: Vec<String> = slots.iter().map(|s| s.steps.to_string()).collect();
    let by_kind: Vec<String> = Op::all()
        .map(|op| (op, slots.iter().map(|s| s.by_op[op as usize]).sum::<u64>()))
        .filter(|&(_, n)| n > 0)
        .map(|(op, n)| format!("{} {n}", op.name()))
        .collect();
    diag!("operations by kind: {}", by_kind.join(", "));
    for d in deaths {
        let s = &slots[d.worker];
        let how = match d.exit {
            Exit::TimedOut => "ended without finishing its run".to_string(),
            Exit::Signal(_) => {
                let crash = runner::crash_info()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                format!("{}{crash}", d.exit)
            }
            Exit::Code(_) => d.exit.to_string(),
        };
        diag!(
            "worker {} died at step {} ({how}); last operations:",
            d.worker,
            s.steps + 1
        );
        for line in s.history() {
            diag!("  {line}");
        }
    }
    let broken: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].failures > 0)
        .collect();
    let failures = slots.iter().map(|s| s.failures).sum::<u64>() + deaths.len() as u64;
    diag!(
        "stress: {total} operations (workers: {}), {failures} invariant failure(s), seed {:#x}",
        per_worker.join(" + "),
        plan.seed
    );
    if let Some(&i) = broken.first() {
        fail!(
            "invariant {} broken (worker {i}, step {}, seed {:#x})",
            slots[i].broken(),
            slots[i].first_broken_at,
            plan.seed
        );
    }
    if let Some(d) = deaths.first() {
        fail!(
            "worker_died: worker {} {} at step {} (seed {:#x})",
            d.worker,
            d.exit,
            slots[d.worker].steps + 1,
            plan.seed
        );
    }
    Ok(())
}
