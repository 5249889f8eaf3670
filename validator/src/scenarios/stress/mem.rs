//! Mapping operations on the worker's own regions: mmap in every flavour
//! the series touches, the compat syscall's mmap2, munmap, mremap,
//! mprotect, MADV_DONTNEED and plain memory access.

use super::check::Snapshot;
use super::ops::Op;
use super::worker::{broken, Broken, Kind, Region, Worker};
use crate::scenarios::common::free_low_address;
use crate::sys::{self, FOUR_GIB, MAP_ABOVE4G, PAGE};

const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;
const PRIVATE_ANON: i32 = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
const TWO_GIB: u64 = 1 << 31;

pub fn creates_region(op: Op) -> bool {
    matches!(
        op,
        Op::MapAnon
            | Op::MapHinted
            | Op::MapFixed
            | Op::MapNoReplace
            | Op::MapAbove4g
            | Op::Map32bit
            | Op::MapFile
            | Op::MapShmem
            | Op::Int80Map
            | Op::Int80MapCross
    )
}

pub fn run(w: &mut Worker, op: Op) -> Result<(), Broken> {
    match op {
        Op::MapAnon => map_plain(w, PRIVATE_ANON, -1, 0, Kind::PrivateAnon),
        Op::MapShmem => map_plain(
            w,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
            Kind::Shared,
        ),
        Op::MapFile => map_file(w),
        Op::MapHinted => map_hinted(w),
        Op::MapFixed => map_fixed(w),
        Op::MapNoReplace => map_noreplace(w),
        Op::MapAbove4g | Op::Map32bit => map_placed(w, op),
        Op::Int80Map => int80_map(w),
        Op::Int80MapCross => int80_map_across(w),
        Op::Munmap => unmap(w),
        Op::Mremap => remap(w),
        Op::Mprotect => protect(w),
        Op::MadviseDontneed => dontneed(w),
        _ => touch(w),
    }
}

fn random_len(w: &mut Worker) -> u64 {
    (1 + w.rng.below(16)) * PAGE
}

fn add(w: &mut Worker, start: u64, len: u64, kind: Kind) {
    w.own.push(Region {
        start,
        len,
        kind,
        writable: true,
    });
}

/// In compat mode a mapping the kernel placed lands below 4 GiB.
fn placed_low(w: &Worker, what: &str, addr: u64, len: u64) -> Result<(), Broken> {
    if w.compat && addr + len > FOUR_GIB {
        return Err(broken(
            "hintless_below_4g",
            format!("{what} placed {addr:#x}-{:#x} in compat mode", addr + len),
        ));
    }
    Ok(())
}

/// A call that must succeed; anything else breaks `invariant`.
fn must(invariant: &'static str, what: &str, r: Result<u64, i32>) -> Result<u64, Broken> {
    r.map_err(|e| broken(invariant, format!("{what} = -1 {}", sys::errno_name(e))))
}

fn map_plain(w: &mut Worker, flags: i32, fd: i32, off: u64, kind: Kind) -> Result<(), Broken> {
    let len = random_len(w);
    w.slot.note(0, len);
    let r = sys::mmap(0, len, RW, flags, fd, off);
    w.slot.result(r);
    let addr = must(
        "mmap_works",
        &format!("mmap(0, {len:#x}, flags {flags:#x})"),
        r,
    )?;
    placed_low(w, "hint-less mmap", addr, len)?;
    add(w, addr, len, kind);
    Ok(())
}

fn map_file(w: &mut Worker) -> Result<(), Broken> {
    if w.file_fd < 0 {
        return map_plain(
            w,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
            Kind::Shared,
        );
    }
    let shared = if w.rng.chance(50) {
        libc::MAP_SHARED
    } else {
        libc::MAP_PRIVATE
    };
    let off = w.rng.below(8) * PAGE;
    map_plain(w, shared, w.file_fd, off, Kind::File)
}

/// A hint the kernel may honour; if it does not, it places the mapping
/// like a hint-less one (below 4 GiB in compat mode).
fn map_hinted(w: &mut Worker) -> Result<(), Broken> {
    let len = random_len(w);
    let hint = if w.compat {
        (0x1000_0000 + w.rng.below(0xe000_0000 >> 12) * PAGE).min(FOUR_GIB - 16 * PAGE)
    } else {
        FOUR_GIB + w.rng.below(0x6000_0000_0000 >> 12) * PAGE
    };
    w.slot.note(hint, len);
    let r = sys::mmap(hint, len, RW, PRIVATE_ANON, -1, 0);
    w.slot.result(r);
    let addr = must("mmap_works", &format!("mmap({hint:#x}, {len:#x})"), r)?;
    if addr != hint {
        placed_low(w, "mmap with an unusable hint", addr, len)?;
    }
    add(w, addr, len, Kind::PrivateAnon);
    Ok(())
}

/// A free range for the current mode: below 4 GiB in compat mode.
pub fn free_range(compat: bool, len: u64) -> Result<u64, Broken> {
    let r = if compat {
        free_low_address(len).map_err(|_| libc::ENOMEM)
    } else {
        sys::mmap_anon(0, len, MAP_ABOVE4G).and_then(|a| sys::munmap(a, len).map(|_| a))
    };
    must("mmap_works", "probe for a free range", r)
}

/// MAP_FIXED exactly over one of the worker's regions, or at a free range.
fn map_fixed(w: &mut Worker) -> Result<(), Broken> {
    let (addr, len) = match w.pick_region() {
        Some(i) => {
            let old = w.own.swap_remove(i);
            (old.start, old.len)
        }
        None => {
            let len = random_len(w);
            (free_range(w.compat, len)?, len)
        }
    };
    w.slot.note(addr, len);
    let r = sys::mmap(addr, len, RW, PRIVATE_ANON | libc::MAP_FIXED, -1, 0);
    w.slot.result(r);
    let got = must("mmap_works", &format!("mmap({addr:#x}, MAP_FIXED)"), r)?;
    if got != addr {
        return Err(broken(
            "mmap_fixed_at_address",
            format!("MAP_FIXED {addr:#x} mapped at {got:#x}"),
        ));
    }
    add(w, addr, len, Kind::PrivateAnon);
    Ok(())
}

/// MAP_FIXED_NOREPLACE over a region of the worker's (EEXIST, nothing
/// changes) or at a free range (mapped there).
fn map_noreplace(w: &mut Worker) -> Result<(), Broken> {
    let flags = PRIVATE_ANON | libc::MAP_FIXED_NOREPLACE;
    if let Some(i) = w.pick_region().filter(|_| w.rng.chance(50)) {
        let region = w.own[i];
        w.slot.note(region.start, region.len);
        let mut snap = Snapshot::take();
        let r = sys::mmap(region.start, region.len, RW, flags, -1, 0);
        w.slot.result(r);
        if r != Err(libc::EEXIST) {
            let what = format!(
                "MAP_FIXED_NOREPLACE over {:#x} = {} (want EEXIST)",
                region.start,
                sys::show(r)
            );
            return Err(broken("noreplace_refused", what));
        }
        return snap.unchanged("MAP_FIXED_NOREPLACE over a mapping");
    }
    let len = random_len(w);
    let addr = free_range(w.compat, len)?;
    w.slot.note(addr, len);
    let r = sys::mmap(addr, len, RW, flags, -1, 0);
    w.slot.result(r);
    let got = must(
        "mmap_works",
        &format!("MAP_FIXED_NOREPLACE at free {addr:#x}"),
        r,
    )?;
    add(w, got, len, Kind::PrivateAnon);
    if got != addr {
        return Err(broken(
            "mmap_fixed_at_address",
            format!("NOREPLACE {addr:#x} mapped at {got:#x}"),
        ));
    }
    Ok(())
}

/// MAP_ABOVE4G lands at or above 4 GiB in either mode; MAP_32BIT below 2 GiB.
fn map_placed(w: &mut Worker, op: Op) -> Result<(), Broken> {
    let len = random_len(w);
    let flag = if op == Op::MapAbove4g {
        MAP_ABOVE4G
    } else {
        libc::MAP_32BIT
    };
    w.slot.note(0, len);
    let r = sys::mmap(0, len, RW, PRIVATE_ANON | flag, -1, 0);
    w.slot.result(r);
    let addr = must(
        "mmap_works",
        &format!("mmap(0, {len:#x}, {})", op.name()),
        r,
    )?;
    add(w, addr, len, Kind::PrivateAnon);
    let (ok, invariant) = if op == Op::MapAbove4g {
        (addr >= FOUR_GIB, "above4g_honoured")
    } else {
        (addr + len <= TWO_GIB, "map32bit_below_2g")
    };
    if !ok {
        return Err(broken(
            invariant,
            format!("{} placed {addr:#x}-{:#x}", op.name(), addr + len),
        ));
    }
    Ok(())
}

/// int 0x80 mmap2 is a compat syscall: below 4 GiB in either mode.
fn int80_map(w: &mut Worker) -> Result<(), Broken> {
    let len = random_len(w);
    w.slot.note(0, len);
    let r = sys::int80_mmap2(0, len as u32, 0);
    w.slot.result(r);
    let addr = must("mmap_works", "int 0x80 mmap2(0)", r)?;
    add(w, addr, len, Kind::PrivateAnon);
    if addr + len > FOUR_GIB {
        let what = format!("int 0x80 mmap2 placed {addr:#x}-{:#x}", addr + len);
        return Err(broken("compat_syscall_below_4g", what));
    }
    Ok(())
}

/// int 0x80 mmap2 asking for [4 GiB - 4 KiB, 4 GiB + 4 KiB): a hint is
/// placed elsewhere below 4 GiB, MAP_FIXED fails with ENOMEM (series
/// patch 4; vanilla makes the crossing mapping, a known upstream bug).
fn int80_map_across(w: &mut Worker) -> Result<(), Broken> {
    let (hint, len) = (FOUR_GIB - PAGE, 2 * PAGE);
    let fixed = w.rng.chance(50);
    w.slot.note(hint, u64::from(fixed));
    let mut snap = Snapshot::take();
    let flags = if fixed { libc::MAP_FIXED as u32 } else { 0 };
    let r = sys::int80_mmap2(hint as u32, len as u32, flags);
    w.slot.result(r);
    match (r, fixed) {
        (Err(libc::ENOMEM), true) => snap.unchanged("int 0x80 mmap2 MAP_FIXED across 4 GiB"),
        (Ok(addr), false) if addr + len <= FOUR_GIB => {
            add(w, addr, len, Kind::PrivateAnon);
            Ok(())
        }
        _ => {
            if let Ok(addr) = r {
                add(w, addr, len, Kind::PrivateAnon);
            }
            let what = format!(
                "int 0x80 mmap2({hint:#x}, {len:#x}, fixed {fixed}) = {}",
                sys::show(r)
            );
            Err(broken("compat_syscall_below_4g", what))
        }
    }
}

/// The whole region, or its first half.
fn unmap(w: &mut Worker) -> Result<(), Broken> {
    let Some(i) = w.pick_region() else {
        w.slot.result(Ok(0));
        return Ok(());
    };
    let region = w.own[i];
    let pages = region.len / PAGE;
    let len = if pages >= 2 && w.rng.chance(30) {
        pages / 2 * PAGE
    } else {
        region.len
    };
    w.slot.note(region.start, len);
    let r = sys::munmap(region.start, len);
    w.slot.result(r);
    must(
        "munmap_works",
        &format!("munmap({:#x}, {len:#x})", region.start),
        r,
    )?;
    if len == region.len {
        w.own.swap_remove(i);
    } else {
        w.own[i].start += len;
        w.own[i].len -= len;
    }
    Ok(())
}

fn remap(w: &mut Worker) -> Result<(), Broken> {
    let Some(i) = w.pick_region() else {
        w.slot.result(Ok(0));
        return Ok(());
    };
    let region = w.own[i];
    // Growing shared memory would leave its tail past the end of the
    // object (SIGBUS on access): only private anonymous regions grow.
    let (new_len, flags, target) = match w.rng.below(3) {
        0 if region.kind == Kind::PrivateAnon => (
            region.len + (1 + w.rng.below(8)) * PAGE,
            libc::MREMAP_MAYMOVE,
            0,
        ),
        1 if region.len >= 2 * PAGE => (region.len / PAGE / 2 * PAGE, 0, 0),
        _ => {
            let target = free_range(w.compat, region.len)?;
            (
                region.len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                target,
            )
        }
    };
    w.slot.note(region.start, new_len);
    let r = sys::mremap(region.start, region.len, new_len, flags, target);
    w.slot.result(r);
    let what = format!(
        "mremap({:#x}, {:#x}, {new_len:#x}, {flags}, {target:#x})",
        region.start, region.len
    );
    let got = must("mremap_works", &what, r)?;
    w.own[i].start = got;
    w.own[i].len = new_len;
    let expected = if target != 0 { target } else { got };
    if got != expected || (flags == 0 && got != region.start) {
        return Err(broken("mremap_at_address", format!("{what} = {got:#x}")));
    }
    if got != region.start && target == 0 {
        placed_low(w, "mremap that moved the mapping", got, new_len)?;
    }
    Ok(())
}

fn protect(w: &mut Worker) -> Result<(), Broken> {
    let Some(i) = w.pick_region() else {
        w.slot.result(Ok(0));
        return Ok(());
    };
    let prot = [libc::PROT_READ, RW, libc::PROT_NONE, RW][w.rng.below(4) as usize];
    let region = w.own[i];
    w.slot.note(region.start, prot as u64);
    let r = sys::mprotect(region.start, region.len, prot);
    w.slot.result(r);
    must(
        "mprotect_works",
        &format!("mprotect({:#x}, {prot})", region.start),
        r,
    )?;
    w.own[i].writable = prot == RW;
    Ok(())
}

/// After MADV_DONTNEED private anonymous memory reads as zeros.
fn dontneed(w: &mut Worker) -> Result<(), Broken> {
    let Some(i) = w.pick_region() else {
        w.slot.result(Ok(0));
        return Ok(());
    };
    let region = w.own[i];
    w.slot.note(region.start, region.len);
    let r = sys::madvise(region.start, region.len, libc::MADV_DONTNEED);
    w.slot.result(r);
    if r == Err(libc::ENOSYS) {
        // CONFIG_ADVISE_SYSCALLS=n (the small test kernel): nothing to check.
        return Ok(());
    }
    must(
        "madvise_works",
        &format!("madvise({:#x}, MADV_DONTNEED)", region.start),
        r,
    )?;
    if region.writable && region.kind == Kind::PrivateAnon {
        let v = unsafe { std::ptr::read_volatile(region.start as *const u64) };
        if v != 0 {
            return Err(broken(
                "dontneed_zeroes",
                format!("{:#x} reads {v:#x} after MADV_DONTNEED", region.start),
            ));
        }
    }
    Ok(())
}

/// Write the step number into a writable region and read it back.
fn touch(w: &mut Worker) -> Result<(), Broken> {
    let Some(i) = w.pick_region().filter(|&i| w.own[i].writable) else {
        w.slot.result(Ok(0));
        return Ok(());
    };
    let p = w.own[i].start as *mut u64;
    w.slot.note(p as u64, w.step);
    // A region the worker made must still be there, writable: a kernel
    // that moved or dropped it is caught here, not by a crash.
    match sys::map_containing(p as u64) {
        Some(m)
            if m.line
                .split_whitespace()
                .nth(1)
                .is_some_and(|perms| perms.starts_with("rw")) => {}
        found => {
            let line = found.map_or("not mapped".to_string(), |m| m.line);
            return Err(broken(
                "own_region_mapped",
                format!("region {:?}: {line}", w.own[i]),
            ));
        }
    }
    let got = unsafe {
        p.write_volatile(w.step);
        p.read_volatile()
    };
    w.slot.result(Ok(got));
    if got != w.step {
        return Err(broken(
            "memory_works",
            format!("{p:?} reads {got:#x} after writing {:#x}", w.step),
        ));
    }
    Ok(())
}
