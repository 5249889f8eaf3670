//! Parsing and checking an i386 ELF executable: the header and program
//! headers only. Everything here is pure: it looks at bytes and says what
//! the program is or exactly why compat-exec cannot run it.

use std::fmt;

pub const PAGE: u32 = 4096;
const EHDR_SIZE: usize = 52;
const PHDR_SIZE: usize = 32;
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_REL: u16 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const ET_CORE: u16 = 4;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

/// ET_EXEC is loaded at its link addresses; a static PIE (ET_DYN without
/// PT_INTERP) anywhere below 4 GiB, it relocates itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Exec,
    StaticPie,
}

/// One PT_LOAD program header (addresses before the load bias).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub index: usize,
    pub vaddr: u32,
    pub memsz: u32,
    pub offset: u32,
    pub filesz: u32,
    pub flags: u32,
}

impl Segment {
    pub fn end(&self) -> u64 {
        self.vaddr as u64 + self.memsz as u64
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub kind: Kind,
    pub entry: u32,
    pub phnum: u16,
    /// Link-time address of the program headers in memory (AT_PHDR before
    /// the bias), 0 if no PT_LOAD covers them (as the kernel reports it).
    pub phdr_vaddr: u32,
    pub segments: Vec<Segment>,
    /// PT_GNU_STACK with PF_X, or no PT_GNU_STACK (the i386 default).
    pub exec_stack: bool,
}

/// Why a file is not a program compat-exec can load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    Truncated(&'static str),
    Class64,
    BadClass(u8),
    BigEndian,
    X32,
    Machine(u16),
    NotExecutable(u16),
    Dynamic(Option<String>),
    NoLoad,
    BadPhentsize(u16),
    Segment(usize, String),
    EntryOutside(u32),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "not an ELF file (no \\x7fELF magic)"),
            ElfError::Truncated(what) => write!(f, "truncated ELF file: {what} is cut off"),
            ElfError::Class64 => write!(
                f,
                "ELFCLASS64 (a 64-bit program): compat-exec runs 32-bit i386 programs; run it directly"
            ),
            ElfError::BadClass(c) => write!(f, "unknown ELF class {c} (expected ELFCLASS32)"),
            ElfError::BigEndian => write!(f, "big-endian ELF (expected little-endian i386)"),
            ElfError::X32 => write!(
                f,
                "an x32 program (ELFCLASS32, EM_X86_64): compat-exec runs i386 (EM_386) programs only"
            ),
            ElfError::Machine(m) => write!(f, "ELF machine {m}, not EM_386 (i386)"),
            ElfError::NotExecutable(t) => write!(f, "{}, not an executable", type_name(*t)),
            ElfError::Dynamic(interp) => write!(
                f,
                "dynamically linked (PT_INTERP {}): compat-exec runs static i386 executables only",
                interp.as_deref().unwrap_or("?")
            ),
            ElfError::NoLoad => write!(f, "no PT_LOAD segment"),
            ElfError::BadPhentsize(n) => {
                write!(f, "program header size {n}, expected {PHDR_SIZE}")
            }
            ElfError::Segment(i, why) => write!(f, "PT_LOAD segment {i}: {why}"),
            ElfError::EntryOutside(e) => write!(
                f,
                "entry point {e:#x} is not inside an executable PT_LOAD segment"
            ),
        }
    }
}

fn type_name(t: u16) -> String {
    match t {
        ET_REL => "a relocatable object (ET_REL)".into(),
        ET_CORE => "a core dump (ET_CORE)".into(),
        0 => "ELF type ET_NONE".into(),
        t => format!("ELF type {t}"),
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

/// Parses `bytes`, the start of a file of `file_len` bytes (at least the
/// ELF header and the program header table, if the file has them).
pub fn parse(bytes: &[u8], file_len: u64) -> Result<Program, ElfError> {
    check_ident(bytes)?;
    let machine = u16_at(bytes, 18);
    if machine == EM_X86_64 {
        return Err(ElfError::X32);
    }
    if machine != EM_386 {
        return Err(ElfError::Machine(machine));
    }
    let e_type = u16_at(bytes, 16);
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(ElfError::NotExecutable(e_type));
    }
    let phdrs = program_headers(bytes)?;
    if let Some(ph) = phdrs.iter().find(|p| p.kind == PT_INTERP) {
        return Err(ElfError::Dynamic(interpreter(bytes, ph)));
    }
    let segments = load_segments(&phdrs, file_len)?;
    let entry = u32_at(bytes, 24);
    let in_exec = |s: &Segment| s.flags & PF_X != 0 && entry >= s.vaddr && (entry as u64) < s.end();
    if !segments.iter().any(in_exec) {
        return Err(ElfError::EntryOutside(entry));
    }
    let phoff = u32_at(bytes, 28);
    Ok(Program {
        kind: if e_type == ET_EXEC {
            Kind::Exec
        } else {
            Kind::StaticPie
        },
        entry,
        phnum: phdrs.len() as u16,
        phdr_vaddr: phdr_vaddr(&segments, phoff),
        exec_stack: phdrs
            .iter()
            .find(|p| p.kind == PT_GNU_STACK)
            .is_none_or(|p| p.flags & PF_X != 0),
        segments,
    })
}

fn check_ident(bytes: &[u8]) -> Result<(), ElfError> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if bytes.len() < 6 {
        return Err(ElfError::Truncated("the ELF header"));
    }
    match bytes[4] {
        ELFCLASS32 => {}
        ELFCLASS64 => return Err(ElfError::Class64),
        c => return Err(ElfError::BadClass(c)),
    }
    if bytes[5] != ELFDATA2LSB {
        return Err(ElfError::BigEndian);
    }
    if bytes.len() < EHDR_SIZE {
        return Err(ElfError::Truncated("the ELF header"));
    }
    Ok(())
}

struct Phdr {
    kind: u32,
    offset: u32,
    vaddr: u32,
    filesz: u32,
    memsz: u32,
    flags: u32,
}

fn program_headers(bytes: &[u8]) -> Result<Vec<Phdr>, ElfError> {
    let phoff = u32_at(bytes, 28) as usize;
    let phentsize = u16_at(bytes, 42);
    let phnum = u16_at(bytes, 44) as usize;
    if phnum == 0 {
        return Err(ElfError::NoLoad);
    }
    if phentsize as usize != PHDR_SIZE {
        return Err(ElfError::BadPhentsize(phentsize));
    }
    let end = phoff
        .checked_add(phnum * PHDR_SIZE)
        .filter(|&e| e <= bytes.len())
        .ok_or(ElfError::Truncated("the program header table"))?;
    Ok(bytes[phoff..end]
        .chunks(PHDR_SIZE)
        .map(|p| Phdr {
            kind: u32_at(p, 0),
            offset: u32_at(p, 4),
            vaddr: u32_at(p, 8),
            filesz: u32_at(p, 16),
            memsz: u32_at(p, 20),
            flags: u32_at(p, 24),
        })
        .collect())
}

fn interpreter(bytes: &[u8], ph: &Phdr) -> Option<String> {
    let start = ph.offset as usize;
    let s = bytes.get(start..start.checked_add(ph.filesz as usize)?)?;
    let s = s.split(|&b| b == 0).next()?;
    Some(String::from_utf8_lossy(s).into_owned())
}

fn load_segments(phdrs: &[Phdr], file_len: u64) -> Result<Vec<Segment>, ElfError> {
    let mut segments = Vec::new();
    for (index, p) in phdrs.iter().enumerate().filter(|(_, p)| p.kind == PT_LOAD) {
        let bad = |why: String| ElfError::Segment(index, why);
        if p.filesz > p.memsz {
            return Err(bad(format!(
                "file size {:#x} larger than memory size {:#x}",
                p.filesz, p.memsz
            )));
        }
        if p.offset as u64 + p.filesz as u64 > file_len {
            return Err(bad(format!(
                "file bytes {:#x}..{:#x} extend past the end of the file ({file_len:#x} bytes)",
                p.offset,
                p.offset as u64 + p.filesz as u64
            )));
        }
        if p.vaddr % PAGE != p.offset % PAGE {
            return Err(bad(format!(
                "address {:#x} and file offset {:#x} differ modulo the page size",
                p.vaddr, p.offset
            )));
        }
        if p.vaddr as u64 + p.memsz as u64 > 1 << 32 {
            return Err(bad(format!(
                "{:#x}..{:#x} reaches above 4 GiB",
                p.vaddr,
                p.vaddr as u64 + p.memsz as u64
            )));
        }
        segments.push(Segment {
            index,
            vaddr: p.vaddr,
            memsz: p.memsz,
            offset: p.offset,
            filesz: p.filesz,
            flags: p.flags,
        });
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoad);
    }
    Ok(segments)
}

/// Where the program headers are in memory, as the kernel computes AT_PHDR:
/// inside the PT_LOAD whose file bytes contain them.
fn phdr_vaddr(segments: &[Segment], phoff: u32) -> u32 {
    segments
        .iter()
        .find(|s| s.offset <= phoff && (phoff as u64) < s.offset as u64 + s.filesz as u64)
        .map_or(0, |s| s.vaddr + (phoff - s.offset))
}

/// Test helpers: build small ELF files byte by byte.
#[cfg(test)]
pub mod craft {
    pub struct Ph {
        pub kind: u32,
        pub offset: u32,
        pub vaddr: u32,
        pub filesz: u32,
        pub memsz: u32,
        pub flags: u32,
    }

    pub fn load(offset: u32, vaddr: u32, filesz: u32, memsz: u32, flags: u32) -> Ph {
        Ph {
            kind: super::PT_LOAD,
            offset,
            vaddr,
            filesz,
            memsz,
            flags,
        }
    }

    /// An ELF32 file: header, program headers at 52, then `body` at 0x1000
    /// (the file is zero-padded up to it).
    pub fn elf(
        class: u8,
        machine: u16,
        e_type: u16,
        entry: u32,
        phs: &[Ph],
        body: &[u8],
    ) -> Vec<u8> {
        let mut b = vec![0u8; 0x1000];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = class;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[24..28].copy_from_slice(&entry.to_le_bytes());
        b[28..32].copy_from_slice(&52u32.to_le_bytes());
        b[40..42].copy_from_slice(&52u16.to_le_bytes());
        b[42..44].copy_from_slice(&32u16.to_le_bytes());
        b[44..46].copy_from_slice(&(phs.len() as u16).to_le_bytes());
        for (i, p) in phs.iter().enumerate() {
            let o = 52 + 32 * i;
            for (k, v) in [
                p.kind, p.offset, p.vaddr, p.vaddr, p.filesz, p.memsz, p.flags, 0x1000,
            ]
            .iter()
            .enumerate()
            {
                b[o + 4 * k..o + 4 * k + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        b.extend_from_slice(body);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::craft::*;
    use super::*;

    const RX: u32 = PF_R | PF_X;

    fn parse_all(b: &[u8]) -> Result<Program, ElfError> {
        parse(b, b.len() as u64)
    }

    fn minimal(e_type: u16) -> Vec<u8> {
        elf(
            1,
            3,
            e_type,
            0x0804_9000,
            &[load(0, 0x0804_8000, 0x1010, 0x1010, RX)],
            &[0xcc; 16],
        )
    }

    #[test]
    fn accepts_a_static_executable() {
        let p = parse_all(&minimal(ET_EXEC)).unwrap();
        assert_eq!(p.kind, Kind::Exec);
        assert_eq!(p.entry, 0x0804_9000);
        assert_eq!(p.phdr_vaddr, 0x0804_8034);
        assert_eq!(p.phnum, 1);
        assert!(
            p.exec_stack,
            "no PT_GNU_STACK: executable stack, as for i386"
        );
    }

    #[test]
    fn accepts_a_static_pie() {
        let b = elf(
            1,
            3,
            ET_DYN,
            0x1000,
            &[load(0, 0, 0x1010, 0x1010, RX)],
            &[0xcc; 16],
        );
        assert_eq!(parse_all(&b).unwrap().kind, Kind::StaticPie);
    }

    #[test]
    fn rejects_files_that_are_not_elf() {
        assert_eq!(parse_all(b"#!/bin/sh\necho hi\n"), Err(ElfError::NotElf));
        assert_eq!(parse_all(b""), Err(ElfError::NotElf));
        assert_eq!(
            parse_all(b"\x7fELF\x01"),
            Err(ElfError::Truncated("the ELF header"))
        );
    }

    #[test]
    fn rejects_other_classes_byte_orders_and_machines() {
        let mut b = minimal(ET_EXEC);
        b[4] = 2;
        assert_eq!(parse_all(&b), Err(ElfError::Class64));
        b[4] = 7;
        assert_eq!(parse_all(&b), Err(ElfError::BadClass(7)));
        let mut b = minimal(ET_EXEC);
        b[5] = 2;
        assert_eq!(parse_all(&b), Err(ElfError::BigEndian));
        let b = elf(1, 62, ET_EXEC, 0, &[], &[]);
        assert_eq!(parse_all(&b), Err(ElfError::X32));
        let b = elf(1, 40, ET_EXEC, 0, &[], &[]);
        assert_eq!(parse_all(&b), Err(ElfError::Machine(40)));
    }

    #[test]
    fn rejects_objects_and_core_dumps() {
        assert_eq!(
            parse_all(&minimal(ET_REL)),
            Err(ElfError::NotExecutable(ET_REL))
        );
        assert_eq!(
            parse_all(&minimal(ET_CORE)),
            Err(ElfError::NotExecutable(ET_CORE))
        );
    }

    #[test]
    fn rejects_dynamic_executables_naming_the_interpreter() {
        let interp = b"/lib/ld-linux.so.2\0";
        let phs = [
            Ph {
                kind: PT_INTERP,
                offset: 0x1000,
                vaddr: 0,
                filesz: interp.len() as u32,
                memsz: interp.len() as u32,
                flags: PF_R,
            },
            load(0, 0x0804_8000, 0x1010, 0x1010, RX),
        ];
        let b = elf(1, 3, ET_DYN, 0x0804_9000, &phs, interp);
        assert_eq!(
            parse_all(&b),
            Err(ElfError::Dynamic(Some("/lib/ld-linux.so.2".into())))
        );
        assert!(ElfError::Dynamic(None).to_string().contains("static"));
    }

    #[test]
    fn rejects_segments_reaching_above_4gib() {
        let b = elf(
            1,
            3,
            ET_EXEC,
            0xffff_f000,
            &[load(0, 0xffff_f000, 0x10, 0x2000, RX)],
            &[],
        );
        let err = parse_all(&b).unwrap_err();
        assert_eq!(
            err,
            ElfError::Segment(0, "0xfffff000..0x100001000 reaches above 4 GiB".into())
        );
    }

    #[test]
    fn rejects_inconsistent_segments() {
        let b = elf(
            1,
            3,
            ET_EXEC,
            0x0804_8000,
            &[load(0, 0x0804_8000, 0x20, 0x10, RX)],
            &[],
        );
        assert!(
            matches!(parse_all(&b), Err(ElfError::Segment(0, w)) if w.contains("larger than memory"))
        );
        let b = elf(
            1,
            3,
            ET_EXEC,
            0x0804_8000,
            &[load(0, 0x0804_8000, 0x9000, 0x9000, RX)],
            &[],
        );
        assert!(
            matches!(parse_all(&b), Err(ElfError::Segment(0, w)) if w.contains("past the end of the file"))
        );
        let b = elf(
            1,
            3,
            ET_EXEC,
            0x0804_8000,
            &[load(0x10, 0x0804_8000, 0x10, 0x10, RX)],
            &[],
        );
        assert!(
            matches!(parse_all(&b), Err(ElfError::Segment(0, w)) if w.contains("modulo the page size"))
        );
    }

    #[test]
    fn rejects_an_entry_point_outside_executable_code() {
        let b = elf(
            1,
            3,
            ET_EXEC,
            0x0900_0000,
            &[load(0, 0x0804_8000, 0x1010, 0x1010, RX)],
            &[0; 16],
        );
        assert_eq!(parse_all(&b), Err(ElfError::EntryOutside(0x0900_0000)));
        let b = elf(
            1,
            3,
            ET_EXEC,
            0x0804_8000,
            &[load(0, 0x0804_8000, 0x1010, 0x1010, PF_R)],
            &[0; 16],
        );
        assert_eq!(parse_all(&b), Err(ElfError::EntryOutside(0x0804_8000)));
    }

    #[test]
    fn rejects_missing_or_truncated_program_headers() {
        let b = elf(1, 3, ET_EXEC, 0, &[], &[]);
        assert_eq!(parse_all(&b), Err(ElfError::NoLoad));
        let b = minimal(ET_EXEC);
        assert_eq!(
            parse(&b[..60], b.len() as u64),
            Err(ElfError::Truncated("the program header table"))
        );
    }
}
