//! The invariants a worker checks after every step, and the maps snapshot
//! that proves a failed call left the previous state intact.

use super::worker::{broken, Broken, Worker};
use crate::scenarios::common::kernel_vsyscall;
use crate::sys::vdso::{self, MappedVdso};
use crate::sys::{self, nr32, thunks, MapLine, FOUR_GIB};

/// /proc/self/maps and the mode, read into memory allocated beforehand, so
/// that reading them does not itself change the maps (malloc may mmap).
struct Maps {
    buf: Vec<u8>,
    len: usize,
    compat: Result<u64, i32>,
}

const SNAPSHOT_CAPACITY: usize = 256 * 1024;

impl Maps {
    fn read(&mut self) {
        self.compat = sys::get_compat();
        self.len = 0;
        let fd = unsafe { libc::open(c"/proc/self/maps".as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            return;
        }
        while self.len < self.buf.len() {
            let rest = &mut self.buf[self.len..];
            let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
            if n <= 0 {
                break;
            }
            self.len += n as usize;
        }
        unsafe { libc::close(fd) };
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf[..self.len]).into_owned()
    }
}

/// The state before a call that may fail, to prove that a failed call
/// left it intact.
pub struct Snapshot {
    before: Maps,
    after: Maps,
}

impl Snapshot {
    /// Allocates both buffers, then reads the state: take it just before
    /// the call.
    pub fn take() -> Snapshot {
        let empty = || Maps {
            buf: vec![0; SNAPSHOT_CAPACITY],
            len: 0,
            compat: Err(0),
        };
        let mut s = Snapshot {
            before: empty(),
            after: empty(),
        };
        s.before.read();
        s
    }

    /// A failed call must change nothing: same maps, same mode.
    pub fn unchanged(&mut self, call: &str) -> Result<(), Broken> {
        self.after.read();
        let (b, a) = (&self.before, &self.after);
        if b.buf[..b.len] == a.buf[..a.len] && b.compat == a.compat {
            return Ok(());
        }
        let (old, new) = (b.text(), a.text());
        let gone: Vec<&str> = old.lines().filter(|l| !new.contains(l)).collect();
        let added: Vec<&str> = new.lines().filter(|l| !old.contains(l)).collect();
        Err(broken(
            "failed_call_left_state",
            format!(
                "{call} failed but changed the process: ARCH_GET_COMPAT {} -> {}; maps lines gone: [{}]; new: [{}]",
                sys::show(b.compat),
                sys::show(a.compat),
                gone.join(" | "),
                added.join(" | ")
            ),
        ))
    }
}

/// Every invariant, after every step.
pub fn after_step(w: &Worker) -> Result<(), Broken> {
    let maps = sys::self_maps();
    mode_agrees(w, &maps)?;
    if w.compat {
        nothing_crosses_4g(&maps)?;
    }
    if w.image_whole {
        vdso_image_whole(&maps)?;
    }
    vdso_works(w, &maps)
}

/// ARCH_GET_COMPAT, the vDSO's ELF class and [vsyscall] tell one story.
fn mode_agrees(w: &Worker, maps: &[MapLine]) -> Result<(), Broken> {
    if w.series {
        let got = sys::get_compat();
        if got != Ok(u64::from(w.compat)) {
            return Err(broken(
                "mode_agrees",
                format!(
                    "ARCH_GET_COMPAT {} (want {})",
                    sys::show(got),
                    u8::from(w.compat)
                ),
            ));
        }
    }
    if let Some(v) = maps.iter().find(|m| m.name == "[vdso]") {
        let class = unsafe { std::ptr::read_volatile((v.start + 4) as *const u8) };
        let want = if w.compat {
            vdso::ELFCLASS32
        } else {
            vdso::ELFCLASS64
        };
        if class != want {
            return Err(broken(
                "mode_agrees",
                format!(
                    "[vdso] EI_CLASS {class} (want {want}) in {} mode: {}",
                    mode(w),
                    v.line
                ),
            ));
        }
    }
    let vsyscall = maps.iter().any(|m| m.name == "[vsyscall]");
    let want = !w.compat && w.vsyscall_native;
    if vsyscall != want {
        return Err(broken(
            "mode_agrees",
            format!(
                "[vsyscall] listed: {vsyscall} (want {want}) in {} mode",
                mode(w)
            ),
        ));
    }
    Ok(())
}

pub fn mode(w: &Worker) -> &'static str {
    if w.compat {
        "compat"
    } else {
        "native"
    }
}

/// In compat mode no mapping starts below 4 GiB and ends above: the
/// workers never ask for one with a 64-bit call, and the kernel must not
/// make one.
fn nothing_crosses_4g(maps: &[MapLine]) -> Result<(), Broken> {
    match maps.iter().find(|m| m.start < FOUR_GIB && m.end > FOUR_GIB) {
        Some(m) => Err(broken(
            "nothing_crosses_4g",
            format!("in compat mode: {}", m.line),
        )),
        None => Ok(()),
    }
}

/// As the kernel maps it: one [vdso], its [vvar*] areas right below it,
/// one of each, nothing else of the image anywhere.
fn vdso_image_whole(maps: &[MapLine]) -> Result<(), Broken> {
    let image: Vec<&MapLine> = maps
        .iter()
        .filter(|m| m.name == "[vdso]" || m.name.starts_with("[vvar"))
        .collect();
    let lines = || {
        image
            .iter()
            .map(|m| m.line.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let vdsos = image.iter().filter(|m| m.name == "[vdso]").count();
    let names_unique = image
        .iter()
        .enumerate()
        .all(|(i, m)| image[..i].iter().all(|o| o.name != m.name));
    let contiguous = image.windows(2).all(|p| p[0].end == p[1].start);
    let vdso_last = image.last().is_some_and(|m| m.name == "[vdso]");
    if vdsos == 1 && names_unique && contiguous && vdso_last {
        return Ok(());
    }
    Err(broken(
        "vdso_image_whole",
        format!(
            "want [vvar*] then [vdso], adjacent, one of each; maps: {}",
            lines()
        ),
    ))
}

/// The vDSO that is mapped works: the 32-bit one through
/// __kernel_vsyscall (getpid, clock_gettime64), the 64-bit one through
/// __vdso_clock_gettime when its data pages are in place.
fn vdso_works(w: &Worker, maps: &[MapLine]) -> Result<(), Broken> {
    let Some(m) = maps.iter().find(|m| m.name == "[vdso]") else {
        return Ok(());
    };
    let v = MappedVdso {
        base: m.start,
        len: m.end - m.start,
    };
    let result = if w.compat {
        vdso32_works(&v)
    } else if w.vvar_in_place {
        vdso64_clock_works(&v)
    } else {
        Ok(())
    };
    result.map_err(|e| broken("vdso_works", format!("{e} ({})", m.line)))
}

fn vdso32_works(v: &MappedVdso) -> Result<(), String> {
    let pid = sys::getpid();
    let (_, got) = kernel_vsyscall(v, nr32::GETPID, &[])?;
    if got != pid {
        return Err(format!("__kernel_vsyscall getpid = {got} (want {pid})"));
    }
    let ts = thunks::scratch() as *mut i64;
    unsafe { ts.write_volatile(-1) };
    let t0 = sys::monotonic_ns();
    let (_, r) = kernel_vsyscall(
        v,
        nr32::CLOCK_GETTIME64,
        &[libc::CLOCK_MONOTONIC as u32, ts as u64 as u32],
    )?;
    let t1 = sys::monotonic_ns();
    let got =
        unsafe { ts.read_volatile() as u64 * 1_000_000_000 + ts.add(1).read_volatile() as u64 };
    if r != 0 || got < t0 || got > t1 {
        return Err(format!(
            "__kernel_vsyscall clock_gettime64 = {r}, {got} ns (want 0, between {t0} and {t1})"
        ));
    }
    Ok(())
}

fn vdso64_clock_works(v: &MappedVdso) -> Result<(), String> {
    let f = v.symbol("__vdso_clock_gettime")?;
    let clock_gettime: extern "C" fn(i32, *mut libc::timespec) -> i32 =
        unsafe { std::mem::transmute(f as *const ()) };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let t0 = sys::monotonic_ns();
    let r = clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    let t1 = sys::monotonic_ns();
    let got = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    if r != 0 || got < t0 || got > t1 {
        return Err(format!(
            "__vdso_clock_gettime = {r}, {got} ns (want 0, between {t0} and {t1})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(text: &str) -> Vec<MapLine> {
        sys::parse_maps(text)
    }

    #[test]
    fn a_whole_image_passes_and_a_stale_vvar_is_caught() {
        let whole = "7ffd1000-7ffd5000 r--p 00000000 00:00 0 [vvar]\n\
                     7ffd5000-7ffd7000 r-xp 00000000 00:00 0 [vdso]\n";
        assert!(vdso_image_whole(&maps(whole)).is_ok());
        // The 32-bit image's [vvar] left behind by ARCH_SET_NATIVE.
        let stale = format!("f7fc0000-f7fc4000 r--p 00000000 00:00 0 [vvar]\n{whole}");
        let b = vdso_image_whole(&maps(&stale)).unwrap_err();
        assert_eq!(b.invariant, "vdso_image_whole");
        let apart = "7ffd0000-7ffd4000 r--p 00000000 00:00 0 [vvar]\n\
                     7ffd5000-7ffd7000 r-xp 00000000 00:00 0 [vdso]\n";
        assert!(vdso_image_whole(&maps(apart)).is_err());
        assert!(vdso_image_whole(&maps("")).is_err());
    }

    #[test]
    fn crossing_4g_is_caught() {
        let across = "fffff000-100001000 rw-p 00000000 00:00 0\n";
        assert_eq!(
            nothing_crosses_4g(&maps(across)).unwrap_err().invariant,
            "nothing_crosses_4g"
        );
        assert!(nothing_crosses_4g(&maps("ffffe000-100000000 rw-p 00000000 00:00 0\n")).is_ok());
    }

    /// In a forked child: the test harness runs other tests on other
    /// threads of this process, whose allocations change /proc/self/maps
    /// between two snapshots; the child has one thread.
    #[test]
    fn snapshot_sees_a_change_and_only_a_change() {
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = std::panic::catch_unwind(|| {
                let mut s = Snapshot::take();
                assert!(s.unchanged("nothing").is_ok());
                let mut s = Snapshot::take();
                let a = sys::mmap_anon(0, 3 * sys::PAGE, 0).unwrap();
                let b = s.unchanged("an mmap").unwrap_err();
                sys::munmap(a, 3 * sys::PAGE).unwrap();
                assert_eq!(b.invariant, "failed_call_left_state");
                assert!(b.detail.contains(&format!("{a:x}")), "{}", b.detail);
            })
            .is_ok();
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child's checks failed (status {status:#x})"
        );
    }
}
