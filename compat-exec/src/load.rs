//! Placing the program's PT_LOAD segments below 4 GiB, the way the kernel's
//! load_elf_binary() does: file-backed private mappings (so /proc/self/maps
//! names the program), the bss zeroed in the last file page and mapped
//! anonymously beyond, nothing left in the gaps.

use crate::elf32::{Kind, Program, Segment, PAGE, PF_R, PF_W, PF_X};
use crate::maps::Map;

/// The 32-bit task size: ia32 user space ends here.
pub const TASK_SIZE_32: u64 = 0xffff_e000;
/// [LOADER_AREA, TASK_SIZE_32) is compat-exec's: its trampoline at the
/// bottom, the program's stack at the top. The kernel places no mapping
/// there in ia32 mode: the compat mmap base leaves a gap of at least
/// 128 MiB below the 32-bit task size for the stack.
pub const LOADER_AREA: u64 = 0xff00_0000;

/// Where the program ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub bias: u32,
    pub entry: u32,
    pub phdr: u32,
    pub start_code: u32,
    pub end_code: u32,
    pub start_data: u32,
    pub end_data: u32,
    pub brk: u32,
}

fn page_down(a: u64) -> u64 {
    a & !(PAGE as u64 - 1)
}

fn page_up(a: u64) -> u64 {
    page_down(a + PAGE as u64 - 1)
}

/// The page range an executable's segments need, before the bias.
pub fn span(p: &Program) -> (u64, u64) {
    let start = p
        .segments
        .iter()
        .map(|s| page_down(s.vaddr as u64))
        .min()
        .unwrap();
    let end = p.segments.iter().map(|s| page_up(s.end())).max().unwrap();
    (start, end)
}

/// Checks that an ET_EXEC program's fixed addresses are free: above
/// vm.mmap_min_addr, below compat-exec's own area, clear of every mapping
/// this process has now (compat-exec's image, if it is not a PIE).
pub fn check_fixed_placement(p: &Program, min_addr: u64, maps: &[Map]) -> Result<(), String> {
    if p.kind != Kind::Exec {
        return Ok(());
    }
    for s in &p.segments {
        let (start, end) = (page_down(s.vaddr as u64), page_up(s.end()));
        let at = format!("PT_LOAD segment {} ({start:#x}..{end:#x})", s.index);
        if start < min_addr {
            return Err(format!(
                "{at} starts below vm.mmap_min_addr ({min_addr:#x})"
            ));
        }
        if end > LOADER_AREA {
            return Err(format!(
                "{at} overlaps {LOADER_AREA:#x}..{TASK_SIZE_32:#x}, which compat-exec keeps for its trampoline and the 32-bit stack"
            ));
        }
        if let Some(m) = maps.iter().find(|m| m.overlaps(start, end)) {
            return Err(format!("{at} overlaps compat-exec's own mapping {m}"));
        }
    }
    Ok(())
}

/// Addresses of the loaded program, computed as load_elf_binary() does.
pub fn layout(p: &Program, bias: u32) -> Loaded {
    let exec = || p.segments.iter().filter(|s| s.flags & PF_X != 0);
    let start_code = exec().map(|s| s.vaddr).min().unwrap();
    let end_code = exec().map(|s| s.vaddr + s.filesz).max().unwrap();
    let start_data = p.segments.iter().map(|s| s.vaddr).max().unwrap();
    let end_data = p.segments.iter().map(|s| s.vaddr + s.filesz).max().unwrap();
    Loaded {
        bias,
        entry: bias + p.entry,
        phdr: if p.phdr_vaddr == 0 {
            0
        } else {
            bias + p.phdr_vaddr
        },
        start_code: bias + start_code,
        end_code: bias + end_code,
        start_data: bias + start_data,
        end_data: bias + end_data,
        brk: bias + span(p).1 as u32,
    }
}

fn prot(flags: u32) -> i32 {
    let mut prot = 0;
    if flags & PF_R != 0 {
        prot |= libc::PROT_READ;
    }
    if flags & PF_W != 0 {
        prot |= libc::PROT_WRITE;
    }
    if flags & PF_X != 0 {
        prot |= libc::PROT_EXEC;
    }
    prot
}

fn mmap(addr: u64, len: u64, prot: i32, flags: i32, fd: i32, off: u64) -> Result<u64, String> {
    let p = unsafe {
        libc::mmap(
            addr as *mut _,
            len as usize,
            prot,
            flags,
            fd,
            off as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        let e = crate::abi::errno();
        return Err(format!(
            "mmap({addr:#x}, {len:#x}) failed: {}",
            crate::abi::errno_name(e)
        ));
    }
    Ok(p as u64)
}

/// Reserves the program's address range: at its link address for ET_EXEC
/// (MAP_FIXED_NOREPLACE: fails rather than replace anything), where the
/// kernel puts a hint-less mmap for a static PIE (below 4 GiB once the mm
/// is in ia32 mode). Returns the load bias.
pub fn reserve(p: &Program) -> Result<u32, String> {
    let (start, end) = span(p);
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let (hint, flags) = match p.kind {
        Kind::Exec => (start, anon | libc::MAP_FIXED_NOREPLACE),
        Kind::StaticPie => (0, anon),
    };
    let got = mmap(hint, end - start, libc::PROT_NONE, flags, -1, 0)?;
    if got + (end - start) > LOADER_AREA {
        return Err(format!(
            "the kernel placed the static PIE at {got:#x}, not below {LOADER_AREA:#x}: is the mm really in ia32 mode?"
        ));
    }
    Ok((got - start) as u32)
}

/// Maps every PT_LOAD of `p` from `fd` into the reservation at `bias`,
/// then unmaps what is left of the reservation between segments.
pub fn map_segments(fd: i32, p: &Program, bias: u32) -> Result<(), String> {
    for s in &p.segments {
        map_segment(fd, s, bias as u64)
            .map_err(|e| format!("loading PT_LOAD segment {}: {e}", s.index))?;
    }
    let (start, end) = span(p);
    let mut covered: Vec<(u64, u64)> = p
        .segments
        .iter()
        .map(|s| (page_down(s.vaddr as u64), page_up(s.end())))
        .collect();
    covered.sort();
    let mut at = start;
    for (s, e) in covered.into_iter().chain([(end, end)]) {
        if s > at {
            unsafe { libc::munmap((bias as u64 + at) as *mut _, (s - at) as usize) };
        }
        at = at.max(e);
    }
    Ok(())
}

fn map_segment(fd: i32, s: &Segment, bias: u64) -> Result<(), String> {
    let fixed = libc::MAP_PRIVATE | libc::MAP_FIXED;
    let vaddr = bias + s.vaddr as u64;
    let (page, file_end, mem_end) = (
        page_down(vaddr),
        vaddr + s.filesz as u64,
        vaddr + s.memsz as u64,
    );
    let final_prot = prot(s.flags);
    // The bss part of the last file page is zeroed by hand: writable first.
    let zero_tail = s.memsz > s.filesz && file_end % PAGE as u64 != 0;
    if s.filesz > 0 {
        let first_prot = if zero_tail {
            final_prot | libc::PROT_WRITE
        } else {
            final_prot
        };
        let off = page_down(s.offset as u64);
        mmap(page, page_up(file_end) - page, first_prot, fixed, fd, off)?;
        if zero_tail {
            let len = (page_up(file_end).min(mem_end) - file_end) as usize;
            unsafe { std::ptr::write_bytes(file_end as *mut u8, 0, len) };
            if first_prot != final_prot {
                unsafe {
                    libc::mprotect(
                        page as *mut _,
                        (page_up(file_end) - page) as usize,
                        final_prot,
                    )
                };
            }
        }
    }
    let anon_start = if s.filesz > 0 {
        page_up(file_end)
    } else {
        page
    };
    if page_up(mem_end) > anon_start {
        mmap(
            anon_start,
            page_up(mem_end) - anon_start,
            final_prot,
            fixed | libc::MAP_ANONYMOUS,
            -1,
            0,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf32::craft::{elf, load};

    const RX: u32 = PF_R | PF_X;
    const RW: u32 = PF_R | PF_W;

    fn program(kind_type: u16, phs: &[crate::elf32::craft::Ph]) -> Program {
        let b = elf(1, 3, kind_type, phs[0].vaddr + 0x100, phs, &[0; 0x2000]);
        crate::elf32::parse(&b, b.len() as u64).unwrap()
    }

    #[test]
    fn layout_follows_load_elf_binary() {
        let p = program(
            2,
            &[
                load(0, 0x0804_8000, 0x1800, 0x1800, RX),
                load(0x1f00, 0x0804_af00, 0x200, 0x1300, RW),
            ],
        );
        let l = layout(&p, 0);
        assert_eq!(l.entry, 0x0804_8100);
        assert_eq!(l.phdr, 0x0804_8034);
        assert_eq!((l.start_code, l.end_code), (0x0804_8000, 0x0804_9800));
        assert_eq!((l.start_data, l.end_data), (0x0804_af00, 0x0804_b100));
        assert_eq!(l.brk, 0x0804_d000, "brk is the page after the bss");
        assert_eq!(span(&p), (0x0804_8000, 0x0804_d000));
        let pie = program(3, &[load(0, 0, 0x1800, 0x1800, RX)]);
        assert_eq!(layout(&pie, 0x5655_5000).entry, 0x5655_5100);
    }

    #[test]
    fn fixed_placement_refuses_the_loader_area_and_existing_mappings() {
        let p = program(2, &[load(0, 0xfeff_f000, 0x1800, 0x1800, RX)]);
        let err = check_fixed_placement(&p, 0x1000, &[]).unwrap_err();
        assert!(
            err.contains("compat-exec keeps for its trampoline"),
            "{err}"
        );
        let p = program(2, &[load(0, 0x40_0000, 0x1800, 0x1800, RX)]);
        let loader = Map {
            start: 0x40_1000,
            end: 0x50_0000,
            perms: "r-xp".into(),
            name: "/sbin/compat-exec".into(),
        };
        let err = check_fixed_placement(&p, 0x1000, &[loader]).unwrap_err();
        assert_eq!(
            err,
            "PT_LOAD segment 0 (0x400000..0x402000) overlaps compat-exec's own mapping 0x401000-0x500000 r-xp /sbin/compat-exec"
        );
        let err = check_fixed_placement(&p, 0x50_0000, &[]).unwrap_err();
        assert!(err.contains("below vm.mmap_min_addr"), "{err}");
        assert_eq!(check_fixed_placement(&p, 0x1000, &[]), Ok(()));
    }
}
