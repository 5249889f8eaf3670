//! One worker: a random sequence of operations from its seed, with every
//! invariant checked after each step. The worker knows what the kernel
//! should have done (its model: mode, its own mappings, whether the vDSO
//! image is as the kernel left it) and compares.

use super::check;
use super::ops::{self, Op};
use super::rng::Rng;
use super::slot::{End, Slot};
use super::Plan;
use crate::diag;
use crate::sys::{self, thunks};

/// What backs a region: MADV_DONTNEED zeroes only private anonymous memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    PrivateAnon,
    Shared,
    File,
}

/// A mapping this worker made; the only ones it unmaps, moves or changes.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    pub start: u64,
    pub len: u64,
    pub kind: Kind,
    pub writable: bool,
}

/// A broken invariant: a stable name and what was observed.
pub struct Broken {
    pub invariant: &'static str,
    pub detail: String,
    /// Broken in a throw-away child (a probe): the worker's own process
    /// is as its model says and may go on.
    pub in_probe: bool,
}

pub fn broken(invariant: &'static str, detail: impl Into<String>) -> Broken {
    Broken {
        invariant,
        detail: detail.into(),
        in_probe: false,
    }
}

pub struct Worker {
    pub id: u32,
    pub plan: Plan,
    pub rng: Rng,
    pub step: u64,
    /// The kernel has the series (ARCH_GET_COMPAT answers).
    pub series: bool,
    /// The mode the worker switched to last.
    pub compat: bool,
    /// [vsyscall] was there at the start (native mode).
    pub vsyscall_native: bool,
    /// [vdso] and [vvar] are where the kernel put them (no munmap/mremap
    /// of them since the last switch or since exec).
    pub image_whole: bool,
    /// The vDSO text still finds its data at the usual offset, so the
    /// 64-bit clock_gettime may be called.
    pub vvar_in_place: bool,
    pub own: Vec<Region>,
    /// A small temporary file for file-backed mappings.
    pub file_fd: i32,
    pub slot: &'static mut Slot,
    deadline_ns: u64,
}

pub const MAX_REGIONS: usize = 48;

impl Worker {
    pub fn new(id: u32, plan: Plan, seed: u64, series: bool, slot: &'static mut Slot) -> Worker {
        Worker {
            id,
            plan,
            rng: Rng::new(seed),
            step: 0,
            series,
            compat: false,
            vsyscall_native: sys::find_map("[vsyscall]").is_some(),
            image_whole: true,
            vvar_in_place: true,
            own: Vec::with_capacity(MAX_REGIONS),
            file_fd: temp_file(id),
            slot,
            deadline_ns: sys::monotonic_ns() + plan.duration.as_nanos() as u64,
        }
    }

    /// Runs steps until the deadline or a broken invariant; exits the
    /// process (it may be a forked continuation of the first one).
    pub fn run(mut self) -> ! {
        self.slot.set_pid(sys::getpid());
        thunks::low();
        // Legacy ia32 programs have an executable stack: the kernel's
        // last-resort signal restorer is code it writes into the frame.
        let _ = thunks::make_stack_executable();
        ops::install_signal64_handler();
        while sys::monotonic_ns() < self.deadline_ns {
            self.step += 1;
            let op = ops::pick(&mut self);
            self.slot.begin(self.step, op);
            let outcome = ops::run(&mut self, op).and_then(|()| check::after_step(&self));
            if let Err(b) = outcome {
                self.report(op, &b);
                self.slot.record_broken(b.invariant, self.step);
                if !b.in_probe {
                    self.slot.steps = self.step;
                    self.slot.set_end(End::Broken);
                    unsafe { libc::_exit(1) };
                }
            }
            self.slot.steps = self.step;
        }
        self.slot.set_end(End::Deadline);
        unsafe { libc::_exit(0) };
    }

    /// Everything needed to replay the failure, on the console.
    fn report(&self, op: Op, b: &Broken) {
        diag!(
            "INVARIANT BROKEN: {} at worker {} step {} ({}): {}",
            b.invariant,
            self.id,
            self.step,
            op.name(),
            b.detail
        );
        diag!(
            "reproduce: validator --filter stress_compat_mode --stress {}s --seed {:#x} --workers {} (worker {}, step {})",
            self.plan.duration.as_secs(),
            self.plan.seed,
            self.plan.workers,
            self.id,
            self.step
        );
        // A probe may break the same invariant again and again: the first
        // time tells the story.
        if self.slot.failures > 0 {
            return;
        }
        diag!(
            "last {} operations of worker {}:",
            super::slot::HISTORY,
            self.id
        );
        for line in self.slot.history() {
            diag!("  {line}");
        }
    }

    /// A region of this worker's, chosen at random.
    pub fn pick_region(&mut self) -> Option<usize> {
        if self.own.is_empty() {
            return None;
        }
        Some(self.rng.below(self.own.len() as u64) as usize)
    }
}

/// 16 MiB (sparse) in /tmp for file-backed mappings, larger than any
/// region can grow, so that touching one never goes past the end; -1 if /tmp cannot hold it
/// (file mappings then fall back to anonymous ones).
fn temp_file(id: u32) -> i32 {
    let path = format!("/tmp/stress-compat-{}-{id}\0", sys::getpid());
    let fd = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
            0o600,
        )
    };
    if fd >= 0 {
        unsafe {
            libc::unlink(path.as_ptr().cast());
            libc::ftruncate(fd, 16 << 20);
        }
    }
    fd
}
