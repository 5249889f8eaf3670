//! munmap and mremap of [vdso] and [vvar] themselves, and mseal of the
//! vDSO (in a forked probe, since a sealed vDSO can never be switched).

use super::check::Snapshot;
use super::mem::free_range;
use super::ops::Op;
use super::worker::{broken, Broken, Worker};
use crate::diag;
use crate::sys::{self, Exit, MapLine};

/// The mappings of the vDSO image whose name is `name` (`[vvar` matches
/// [vvar] and [vvar_vclock]).
fn image_maps(prefix: &str) -> Vec<MapLine> {
    sys::self_maps()
        .into_iter()
        .filter(|m| m.name.starts_with(prefix))
        .collect()
}

pub fn run(w: &mut Worker, op: Op) -> Result<(), Broken> {
    let prefix = if matches!(op, Op::UnmapVvar | Op::MoveVvar) {
        "[vvar"
    } else {
        "[vdso]"
    };
    let maps = image_maps(prefix);
    let Some(first) = maps.first().cloned() else {
        // Already gone: nothing to do, a valid step all the same.
        w.slot.result(Ok(0));
        return Ok(());
    };
    match op {
        Op::UnmapVdso | Op::UnmapVvar => unmap(w, &maps),
        Op::MoveVdso | Op::MoveVvar => move_one(w, &first),
        _ => seal_in_probe(w, &first),
    }
}

/// The kernel may refuse (sealed system mappings: EPERM) but then changes
/// nothing.
fn unmap(w: &mut Worker, maps: &[MapLine]) -> Result<(), Broken> {
    for m in maps {
        w.slot.note(m.start, m.end - m.start);
        let mut snap = Snapshot::take();
        let r = sys::munmap(m.start, m.end - m.start);
        w.slot.result(r);
        match r {
            Ok(_) => {
                w.image_whole = false;
                w.vvar_in_place &= m.name == "[vdso]";
            }
            Err(libc::EPERM) => snap.unchanged(&format!("munmap of {}", m.name))?,
            Err(e) => {
                let what = format!("munmap {} = -1 {}", m.line, sys::errno_name(e));
                return Err(broken("special_mapping_unmap", what));
            }
        }
    }
    Ok(())
}

/// Moves [vdso] or [vvar] alone to a free range of the current mode: the
/// text then no longer finds its data, so the 64-bit clock is not called
/// until the next switch maps a whole image again.
fn move_one(w: &mut Worker, m: &MapLine) -> Result<(), Broken> {
    let len = m.end - m.start;
    let target = free_range(w.compat, len)?;
    w.slot.note(m.start, target);
    let mut snap = Snapshot::take();
    let flags = libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED;
    let r = sys::mremap(m.start, len, len, flags, target);
    w.slot.result(r);
    match r {
        Ok(got) if got == target => {
            w.image_whole = false;
            w.vvar_in_place = false;
            Ok(())
        }
        Err(libc::EPERM | libc::EINVAL) => snap.unchanged(&format!("mremap of {}", m.name)),
        _ => Err(broken(
            "special_mapping_mremap",
            format!("mremap {} to {target:#x} = {}", m.line, sys::show(r)),
        )),
    }
}

/// In a forked child: seal [vdso], then a switch (or, without the series,
/// an munmap of [vdso]) must fail and leave everything as it was.
fn seal_in_probe(w: &mut Worker, vdso: &MapLine) -> Result<(), Broken> {
    let (start, len, compat, series) = (vdso.start, vdso.end - vdso.start, w.compat, w.series);
    w.slot.note(start, len);
    let child = sys::fork_child(|| sealed_probe(start, len, compat, series));
    let exit = sys::wait_exit(child, 10_000);
    w.slot.result(match exit {
        Exit::Code(c) => Ok(c as u64),
        _ => Err(libc::ECHILD),
    });
    match exit {
        Exit::Code(0) | Exit::Code(SEAL_UNSUPPORTED) => Ok(()),
        _ => Err(Broken {
            in_probe: true,
            ..broken(
                "sealed_vdso_intact",
                format!("the mseal probe ended with {exit} (its diagnostic is above)"),
            )
        }),
    }
}

const SEAL_UNSUPPORTED: i32 = 3;

fn sealed_probe(start: u64, len: u64, compat: bool, series: bool) -> i32 {
    if sys::mseal(start, len).is_err() {
        return SEAL_UNSUPPORTED;
    }
    let (what, code) = if !series {
        ("munmap of the sealed [vdso]", 0)
    } else if compat {
        (
            "ARCH_SET_NATIVE with the [vdso] sealed",
            sys::ARCH_SET_NATIVE,
        )
    } else {
        (
            "ARCH_SET_COMPAT with the [vdso] sealed",
            sys::ARCH_SET_COMPAT,
        )
    };
    let mut snap = Snapshot::take();
    let r = if series {
        sys::switch_mode(code, 0)
    } else {
        sys::munmap(start, len)
    };
    if r.is_ok() {
        diag!(
            "mseal probe: {what} succeeded ({}): the seal was broken",
            sys::show(r)
        );
        return 1;
    }
    match snap.unchanged(what) {
        Ok(()) => 0,
        Err(b) => {
            diag!("mseal probe: {what} = {}: {}", sys::show(r), b.detail);
            1
        }
    }
}
