//! Compat address bounds: mappings created or grown by compat syscalls must
//! stay below 4 GiB (vanilla checks them against the 64-bit TASK_SIZE).

use crate::runner::{Expect, Failure, Outcome, Scenario};
use crate::scenarios::series::{patches, reasons, result_reason};
use crate::sys::thunks;
use crate::sys::{self, int80_mmap2, nr32, FOUR_GIB, PAGE};
use crate::{diag, ensure, ensure_because, skip};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "int80_mmap2_hint_no_cross_4g",
        description: "int 0x80 mmap2(0xfffff000, 0x2000) never returns a mapping that crosses 4 GiB",
        proves: "32-bit code sees a truncated address for a VMA straddling 4 GiB; vanilla returns 0xfffff000.",
        vanilla: Expect::fail(reasons::CROSSES_4G),
        patched: Expect::PASS,
        changed_by: Some(patches::COMPAT_BOUNDS),
        run: int80_mmap2_hint_no_cross_4g,
    },
    Scenario {
        id: "int80_mmap2_fixed_cross_4g_enomem",
        description: "int 0x80 mmap2(0xfffff000, 0x2000, MAP_FIXED) fails with ENOMEM",
        proves: "A compat MAP_FIXED request beyond the 32-bit address space must fail, not succeed half out of \
                 reach.",
        vanilla: Expect::fail(reasons::CROSSES_4G),
        patched: Expect::PASS,
        changed_by: Some(patches::COMPAT_BOUNDS),
        run: int80_mmap2_fixed_cross_4g_enomem,
    },
    Scenario {
        id: "int80_mremap_cross_4g_enomem",
        description: "int 0x80 mremap growing a page at 0xffffc000 in place to 0x5000 bytes (across 4 GiB) fails \
                      with ENOMEM",
        proves: "In-place growth is the other way a compat VMA could cross 4 GiB; the bound must cover mremap too.",
        vanilla: Expect::fail(reasons::CROSSES_4G),
        patched: Expect::PASS,
        changed_by: Some(patches::COMPAT_BOUNDS),
        run: int80_mremap_cross_4g_enomem,
    },
    Scenario {
        id: "int80_brk_in_64bit_pie_keeps_break",
        description: "int 0x80 brk(low 32 bits of the break + 64 KiB) in a 64-bit static PIE, whose heap is above \
                      4 GiB, returns the old break and leaves it where it was",
        proves: "A 32-bit caller cannot name a break above 4 GiB: brk() takes the value as below the heap's start \
                 and does nothing, on both kernels. The series documents brk() as unchanged; this pins it.",
        vanilla: Expect::PASS,
        patched: Expect::PASS,
        changed_by: None,
        run: int80_brk_in_64bit_pie_keeps_break,
    },
];

/// A page that is valid for ia32 tasks: their TASK_SIZE is 0xffffe000.
const LOW_EDGE: u64 = 0xffff_c000;
const GROWN: u32 = 0x5000;

/// The window around 4 GiB the scenarios use must be free.
fn require_free_window() -> Outcome {
    if !sys::range_is_free(LOW_EDGE, FOUR_GIB + 0x8000) {
        let busy: Vec<String> = sys::self_maps()
            .into_iter()
            .filter(|m| m.end > LOW_EDGE && m.start < FOUR_GIB + 0x8000)
            .map(|m| m.line)
            .collect();
        skip!(
            "address window around 4 GiB is in use: {}",
            busy.join(" | ")
        );
    }
    Ok(())
}

/// The /proc/self/maps line holding `addr`, or "none".
fn maps_line(addr: Option<u64>) -> String {
    addr.and_then(sys::map_containing)
        .map(|m| m.line)
        .unwrap_or_else(|| "none".into())
}

/// Passes on ENOMEM; otherwise fails on what happened instead: a mapping
/// at `at` that crosses 4 GiB, another success, or another errno.
fn ensure_enomem(r: Result<u64, i32>, at: u64) -> Outcome {
    let crosses = sys::map_containing(at).is_some_and(|m| m.end > FOUR_GIB);
    let reason = match r {
        Ok(_) if crosses => reasons::CROSSES_4G.to_string(),
        other => result_reason(other),
    };
    ensure_because!(
        r == Err(libc::ENOMEM),
        reason,
        "got {} (want -1 ENOMEM)",
        sys::show(r)
    );
    Ok(())
}

fn int80_mmap2_hint_no_cross_4g() -> Outcome {
    require_free_window()?;
    let r = int80_mmap2(0xffff_f000, 0x2000, 0);
    let line = maps_line(r.ok());
    diag!(
        "int 0x80 mmap2(0xfffff000, 0x2000) = {}; maps: {line}",
        sys::show(r)
    );
    let addr = r.map_err(|e| Failure::Fail(format!("mmap2 failed: {}", sys::errno_name(e))))?;
    let end = sys::map_containing(addr)
        .map(|m| m.end)
        .unwrap_or(addr + 0x2000);
    ensure_because!(
        addr + 0x2000 <= FOUR_GIB && end <= FOUR_GIB,
        reasons::CROSSES_4G,
        "mapping {addr:#x}-{end:#x} crosses 4 GiB"
    );
    Ok(())
}

fn int80_mmap2_fixed_cross_4g_enomem() -> Outcome {
    require_free_window()?;
    let r = int80_mmap2(0xffff_f000, 0x2000, libc::MAP_FIXED as u32);
    let line = maps_line(r.ok());
    diag!(
        "int 0x80 mmap2(0xfffff000, 0x2000, MAP_FIXED) = {}; maps: {line}",
        sys::show(r)
    );
    ensure_enomem(r, 0xffff_f000)
}

fn int80_mremap_cross_4g_enomem() -> Outcome {
    require_free_window()?;
    let m = int80_mmap2(LOW_EDGE as u32, PAGE as u32, libc::MAP_FIXED as u32);
    diag!(
        "int 0x80 mmap2({LOW_EDGE:#x}, 0x1000, MAP_FIXED) = {}",
        sys::show(m)
    );
    ensure!(
        m == Ok(LOW_EDGE),
        "could not map the page below the edge: {}",
        sys::show(m)
    );
    let r = sys::decode_raw(thunks::int80_from_64(
        nr32::MREMAP,
        &[LOW_EDGE as u32, PAGE as u32, GROWN, 0],
    ));
    let line = maps_line(Some(LOW_EDGE));
    diag!(
        "int 0x80 mremap({LOW_EDGE:#x}, 0x1000, {GROWN:#x}, 0) = {}; maps: {line}",
        sys::show(r)
    );
    ensure_enomem(r, LOW_EDGE)
}

fn int80_brk_in_64bit_pie_keeps_break() -> Outcome {
    let before = unsafe { libc::sbrk(0) } as u64;
    if before < FOUR_GIB {
        skip!("the heap starts below 4 GiB ({before:#x}): not a 64-bit PIE layout");
    }
    let asked = (before as u32).wrapping_add(0x1_0000);
    // int 0x80 from 64-bit code returns the whole rax: the full break.
    let r = sys::decode_raw(thunks::int80_from_64(nr32::BRK, &[asked]));
    let after = unsafe { libc::sbrk(0) } as u64;
    diag!(
        "break {before:#x}; int 0x80 brk({asked:#x}) = {}; break after {after:#x}",
        sys::show(r)
    );
    ensure_because!(
        after == before,
        "brk-moved",
        "the break moved to {after:#x}"
    );
    ensure_because!(
        r == Ok(before),
        result_reason(r),
        "brk returned {} (want the old break {before:#x})",
        sys::show(r)
    );
    Ok(())
}
