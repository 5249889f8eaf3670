//! The operations a worker draws from, with their weights, and dispatch.
//! Each operation checks what the kernel must have done for it; the
//! invariants that hold after any step are in `check`.

use super::worker::{Broken, Worker, MAX_REGIONS};
use super::{mem, procs, special, switch};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    SetCompat,
    SetNative,
    MapAnon,
    MapHinted,
    MapFixed,
    MapNoReplace,
    MapAbove4g,
    Map32bit,
    MapFile,
    MapShmem,
    Int80Map,
    Int80MapCross,
    Munmap,
    Mremap,
    Mprotect,
    MadviseDontneed,
    Touch,
    Fork,
    Thread,
    UnmapVdso,
    UnmapVvar,
    MoveVdso,
    MoveVvar,
    SealVdso,
    Signal32,
    Signal32NoRestorer,
    Signal64,
    Signal64In32,
    Int80Getpid,
    ProcReader,
}

/// Name, weight, and whether the operation needs the series (a kernel
/// without it runs the others: the subset that applies).
const TABLE: [(Op, &str, u64, bool); Op::COUNT] = [
    (Op::SetCompat, "set_compat", 8, true),
    (Op::SetNative, "set_native", 8, true),
    (Op::MapAnon, "mmap_anon", 6, false),
    (Op::MapHinted, "mmap_hint", 4, false),
    (Op::MapFixed, "mmap_fixed", 3, false),
    (Op::MapNoReplace, "mmap_fixed_noreplace", 3, false),
    (Op::MapAbove4g, "mmap_above4g", 3, false),
    (Op::Map32bit, "mmap_32bit", 3, false),
    (Op::MapFile, "mmap_file", 3, false),
    (Op::MapShmem, "mmap_shmem", 3, false),
    (Op::Int80Map, "int80_mmap2", 3, false),
    (Op::Int80MapCross, "int80_mmap2_across_4g", 2, true),
    (Op::Munmap, "munmap", 6, false),
    (Op::Mremap, "mremap", 4, false),
    (Op::Mprotect, "mprotect", 3, false),
    (Op::MadviseDontneed, "madvise_dontneed", 3, false),
    (Op::Touch, "touch", 3, false),
    (Op::Fork, "fork", 2, false),
    (Op::Thread, "thread_switch_ebusy", 2, false),
    (Op::UnmapVdso, "munmap_vdso", 1, false),
    (Op::UnmapVvar, "munmap_vvar", 1, false),
    (Op::MoveVdso, "mremap_vdso", 1, false),
    (Op::MoveVvar, "mremap_vvar", 1, false),
    (Op::SealVdso, "mseal_vdso", 1, false),
    (Op::Signal32, "signal_32bit", 3, false),
    (Op::Signal32NoRestorer, "signal_32bit_no_restorer", 2, true),
    (Op::Signal64, "signal_64bit", 2, false),
    (
        Op::Signal64In32,
        "signal_64bit_handler_from_32bit",
        2,
        false,
    ),
    (Op::Int80Getpid, "int80_getpid_from_32bit", 2, false),
    (Op::ProcReader, "ptrace_proc_reader", 1, false),
];

impl Op {
    pub const COUNT: usize = 30;

    pub fn from_index(i: u8) -> Op {
        TABLE[(i as usize).min(Op::COUNT - 1)].0
    }

    pub fn name(self) -> &'static str {
        TABLE[self as usize].1
    }

    pub fn needs_series(self) -> bool {
        TABLE[self as usize].3
    }

    pub fn all() -> impl Iterator<Item = Op> {
        TABLE.iter().map(|t| t.0)
    }
}

/// The next operation. A switch to the mode the worker is in is kept
/// rarer than the real switch (it only proves EALREADY); a full region
/// list turns a new mapping into an munmap.
pub fn pick(w: &mut Worker) -> Op {
    let total: u64 = TABLE.iter().filter(|t| w.series || !t.3).map(|t| t.2).sum();
    let mut n = w.rng.below(total);
    let mut op = Op::Touch;
    for t in TABLE.iter().filter(|t| w.series || !t.3) {
        if n < t.2 {
            op = t.0;
            break;
        }
        n -= t.2;
    }
    let same_mode = (op == Op::SetCompat) == w.compat;
    if matches!(op, Op::SetCompat | Op::SetNative) && same_mode && w.rng.chance(75) {
        op = if w.compat {
            Op::SetNative
        } else {
            Op::SetCompat
        };
    }
    if mem::creates_region(op) && w.own.len() >= MAX_REGIONS {
        op = Op::Munmap;
    }
    op
}

pub fn run(w: &mut Worker, op: Op) -> Result<(), Broken> {
    match op {
        Op::SetCompat => switch::switch(w, true),
        Op::SetNative => switch::switch(w, false),
        Op::Thread => switch::with_thread(w),
        Op::UnmapVdso | Op::UnmapVvar | Op::MoveVdso | Op::MoveVvar | Op::SealVdso => {
            special::run(w, op)
        }
        Op::Fork
        | Op::Signal32
        | Op::Signal32NoRestorer
        | Op::Signal64
        | Op::Signal64In32
        | Op::Int80Getpid
        | Op::ProcReader => procs::run(w, op),
        _ => mem::run(w, op),
    }
}

pub use procs::install_signal64_handler;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_enum_order_with_unique_names() {
        for (i, t) in TABLE.iter().enumerate() {
            assert_eq!(t.0 as usize, i, "{}", t.1);
            assert_eq!(Op::from_index(i as u8), t.0);
            assert!(t.2 > 0);
            assert!(TABLE[..i].iter().all(|o| o.1 != t.1), "{}", t.1);
        }
    }
}
