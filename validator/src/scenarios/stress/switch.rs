//! ARCH_SET_COMPAT and ARCH_SET_NATIVE with every kind of address, and
//! with a second thread alive (EBUSY).

use super::check::Snapshot;
use super::mem::free_range;
use super::worker::{broken, Broken, Worker};
use crate::sys::{self, thunks, FOUR_GIB, PAGE};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The address given to the switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// 0: the kernel chooses.
    Zero,
    /// The middle of a free MiB of the target mode's range.
    Free,
    /// Over a mapping that is not the vDSO (the low 32-bit code): EEXIST.
    Occupied,
    /// Not page aligned: EINVAL.
    Misaligned,
    /// Beyond the mode's range (above 4 GiB for compat): EINVAL.
    OutOfRange,
}

const TARGETS: [Target; 7] = [
    Target::Zero,
    Target::Zero,
    Target::Free,
    Target::Free,
    Target::Occupied,
    Target::Misaligned,
    Target::OutOfRange,
];

fn address(compat: bool, target: Target) -> Result<u64, Broken> {
    // The middle of a free MiB: room for the vvar pages below the text.
    let free = || -> Result<u64, Broken> { Ok(free_range(compat, 1 << 20)? + (1 << 19)) };
    Ok(match target {
        Target::Zero => 0,
        Target::Free => free()?,
        Target::Occupied => thunks::low().code,
        Target::Misaligned => free()? + 0x123,
        Target::OutOfRange if compat => 5 * (FOUR_GIB / 4),
        // Beyond 57 bits: out of range with 4-level and 5-level paging
        // alike (a bzImage boot under QEMU's `-cpu max` gets LA57).
        Target::OutOfRange => (1 << 57) + 16 * PAGE,
    })
}

/// What the kernel must answer: success, or this errno.
fn expected(w: &Worker, compat: bool, target: Target) -> Result<(), i32> {
    match target {
        _ if w.compat == compat => Err(libc::EALREADY),
        Target::Zero | Target::Free => Ok(()),
        Target::Occupied => Err(libc::EEXIST),
        Target::Misaligned | Target::OutOfRange => Err(libc::EINVAL),
    }
}

pub fn switch(w: &mut Worker, compat: bool) -> Result<(), Broken> {
    let target = TARGETS[w.rng.below(TARGETS.len() as u64) as usize];
    let addr = address(compat, target)?;
    let want = expected(w, compat, target);
    let name = format!(
        "arch_prctl({}, {addr:#x} {target:?})",
        if compat {
            "ARCH_SET_COMPAT"
        } else {
            "ARCH_SET_NATIVE"
        }
    );
    w.slot.note(addr, target as u64);
    let code = if compat {
        sys::ARCH_SET_COMPAT
    } else {
        sys::ARCH_SET_NATIVE
    };
    let mut snap = Snapshot::take();
    let r = sys::switch_mode(code, addr);
    w.slot.result(r);
    match (r, want) {
        (Ok(base), Ok(())) => switched(w, compat, addr, base, &name),
        (Err(e), Err(wanted)) if e == wanted => snap.unchanged(&name),
        _ => Err(broken(
            "switch_result",
            format!("{name} = {} (want {})", sys::show(r), want_text(want)),
        )),
    }
}

fn want_text(want: Result<(), i32>) -> String {
    match want {
        Ok(()) => "the new vDSO base".into(),
        Err(e) => format!("-1 {}", sys::errno_name(e)),
    }
}

/// A successful switch: the base is where it was asked for (or in the
/// mode's range), and the worker's model follows.
fn switched(w: &mut Worker, compat: bool, addr: u64, base: u64, name: &str) -> Result<(), Broken> {
    w.compat = compat;
    w.image_whole = true;
    w.vvar_in_place = true;
    let placed_right = match (addr, compat) {
        (0, true) => base != 0 && base < FOUR_GIB,
        (0, false) => base >= FOUR_GIB,
        _ => base == addr,
    };
    if !placed_right {
        return Err(broken(
            "switch_result",
            format!("{name} returned base {base:#x}"),
        ));
    }
    Ok(())
}

/// While a second thread lives the switch fails with EBUSY and changes
/// nothing (a kernel without the series: EINVAL, unknown code).
pub fn with_thread(w: &mut Worker) -> Result<(), Broken> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (stop2, started2) = (stop.clone(), started.clone());
    let thread = std::thread::spawn(move || {
        started2.store(true, Ordering::SeqCst);
        while !stop2.load(Ordering::SeqCst) {
            sys::sleep_ms(1);
        }
    });
    // Its start-up (TLS, a malloc arena) is over once it says so: only
    // then does the snapshot hold still.
    while !started.load(Ordering::SeqCst) {
        sys::sleep_ms(1);
    }
    let code = if w.compat {
        sys::ARCH_SET_NATIVE
    } else {
        sys::ARCH_SET_COMPAT
    };
    w.slot.note(code as u64, 0);
    let mut snap = Snapshot::take();
    let r = sys::switch_mode(code, 0);
    w.slot.result(r);
    let outcome = snap.unchanged("a switch with a second thread alive");
    stop.store(true, Ordering::SeqCst);
    let _ = thread.join();
    let want = if w.series { libc::EBUSY } else { libc::EINVAL };
    if r != Err(want) {
        let what = format!(
            "switch with a live thread = {} (want -1 {})",
            sys::show(r),
            sys::errno_name(want)
        );
        return Err(broken("switch_busy_with_threads", what));
    }
    outcome
}
