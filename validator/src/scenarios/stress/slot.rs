//! What a worker leaves where the scenario process can read it, even after
//! the worker crashed or handed its sequence to a forked child: counters,
//! the last operations, and the name of a broken invariant. One slot per
//! worker in MAP_SHARED memory; only the process currently running the
//! worker's sequence writes it.

use super::ops::Op;
use crate::sys;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

pub const HISTORY: usize = 20;

/// One operation as it happened: arguments and result, raw.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Record {
    pub step: u64,
    pub op: u8,
    pub a: u64,
    pub b: u64,
    /// The value, or a negative errno.
    pub result: i64,
    pub finished: bool,
}

impl Record {
    pub fn text(&self) -> String {
        let result = if !self.finished {
            "(did not return)".to_string()
        } else if self.result < 0 {
            format!("-1 {}", sys::errno_name(-self.result as i32))
        } else {
            format!("{:#x}", self.result)
        };
        format!(
            "step {} {} a={:#x} b={:#x} -> {result}",
            self.step,
            Op::from_index(self.op).name(),
            self.a,
            self.b
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum End {
    Running = 0,
    /// Reached the deadline with every invariant holding.
    Deadline = 1,
    /// Stopped at a broken invariant (already reported).
    Broken = 2,
}

#[repr(C)]
pub struct Slot {
    /// The process running this worker's sequence now.
    pid: AtomicI32,
    /// An `End`, written by the worker, read by the scenario process.
    end: AtomicU32,
    pub steps: u64,
    /// Broken invariants (more than one only when probes broke them).
    pub failures: u64,
    /// The step of the first one.
    pub first_broken_at: u64,
    pub by_op: [u64; Op::COUNT],
    written: u64,
    history: [Record; HISTORY],
    broken: [u8; 64],
}

impl Slot {
    /// `count` zeroed slots in memory shared with every later fork.
    pub fn map_shared(count: usize) -> &'static mut [Slot] {
        let len = count * std::mem::size_of::<Slot>();
        let p = sys::mmap(
            0,
            len as u64,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
        .expect("MAP_SHARED slots");
        // Zeroed memory is a valid Slot: End::Running is 0.
        unsafe { std::slice::from_raw_parts_mut(p as *mut Slot, count) }
    }

    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::SeqCst)
    }

    pub fn end(&self) -> End {
        match self.end.load(Ordering::SeqCst) {
            1 => End::Deadline,
            2 => End::Broken,
            _ => End::Running,
        }
    }

    pub fn set_end(&self, end: End) {
        self.end.store(end as u32, Ordering::SeqCst);
    }

    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Ordering::SeqCst);
    }

    /// A forking process hands the slot to its child, unless the child
    /// already ran and handed it further.
    pub fn hand_over(&self, from: i32, to: i32) {
        let _ = self
            .pid
            .compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn begin(&mut self, step: u64, op: Op) {
        self.history[(self.written % HISTORY as u64) as usize] = Record {
            step,
            op: op as u8,
            ..Record::default()
        };
        self.written += 1;
        self.by_op[op as usize] += 1;
    }

    fn current(&mut self) -> &mut Record {
        &mut self.history[((self.written + HISTORY as u64 - 1) % HISTORY as u64) as usize]
    }

    pub fn note(&mut self, a: u64, b: u64) {
        let r = self.current();
        (r.a, r.b) = (a, b);
    }

    pub fn result(&mut self, result: Result<u64, i32>) {
        let r = self.current();
        r.result = match result {
            Ok(v) => v as i64,
            Err(e) => -i64::from(e),
        };
        r.finished = true;
    }

    /// Counts a broken invariant; the first one's name is kept.
    pub fn record_broken(&mut self, invariant: &str, step: u64) {
        self.failures += 1;
        if self.broken[0] != 0 {
            return;
        }
        let n = invariant.len().min(self.broken.len() - 1);
        self.broken[..n].copy_from_slice(&invariant.as_bytes()[..n]);
        self.first_broken_at = step;
    }

    pub fn broken(&self) -> String {
        let n = self.broken.iter().position(|&b| b == 0).unwrap_or(0);
        String::from_utf8_lossy(&self.broken[..n]).into_owned()
    }

    /// The last operations, oldest first.
    pub fn history(&self) -> Vec<String> {
        let n = self.written.min(HISTORY as u64);
        (self.written - n..self.written)
            .map(|i| self.history[(i % HISTORY as u64) as usize].text())
            .collect()
    }
}
