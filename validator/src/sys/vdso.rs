//! Reading the mapped vDSO: ELF header bytes and dynamic symbols.
//!
//! The kernel maps the whole vDSO image, section headers included, so the
//! `.dynsym` section (and its string table, `sh_link`) can be read straight
//! from memory. Works for ELFCLASS32 and ELFCLASS64 images.

use crate::sys;

pub const ELFCLASS32: u8 = 1;
pub const ELFCLASS64: u8 = 2;
pub const EM_386: u16 = 3;
pub const EM_X86_64: u16 = 62;
const SHT_DYNSYM: u32 = 11;
const PT_LOAD: u32 = 1;

/// An ELF image in memory (a byte slice covering the whole image).
pub struct Elf<'a> {
    bytes: &'a [u8],
}

impl<'a> Elf<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Elf<'a>, String> {
        if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
            return Err(format!(
                "no ELF magic: {:02x?}",
                &bytes[..bytes.len().min(4)]
            ));
        }
        let class = bytes[4];
        if class != ELFCLASS32 && class != ELFCLASS64 {
            return Err(format!("bad EI_CLASS {class}"));
        }
        Ok(Elf { bytes })
    }

    pub fn class(&self) -> u8 {
        self.bytes[4]
    }

    fn is64(&self) -> bool {
        self.class() == ELFCLASS64
    }

    pub fn machine(&self) -> u16 {
        self.u16_at(18)
    }

    fn u16_at(&self, off: usize) -> u16 {
        self.bytes
            .get(off..off + 2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32_at(&self, off: usize) -> u32 {
        self.bytes
            .get(off..off + 4)
            .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()))
    }

    fn u64_at(&self, off: usize) -> u64 {
        self.bytes
            .get(off..off + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
    }

    /// Reads a word-sized field (4 bytes in ELF32, 8 in ELF64).
    fn word(&self, off32: usize, off64: usize) -> u64 {
        if self.is64() {
            self.u64_at(off64)
        } else {
            self.u32_at(off32) as u64
        }
    }

    /// Difference between link-time addresses and offsets into the image,
    /// taken from the first PT_LOAD.
    fn link_bias(&self) -> u64 {
        let phoff = self.word(0x1c, 0x20) as usize;
        let (phentsize, phnum) = if self.is64() {
            (self.u16_at(0x36) as usize, self.u16_at(0x38) as usize)
        } else {
            (self.u16_at(0x2a) as usize, self.u16_at(0x2c) as usize)
        };
        for i in 0..phnum {
            let ph = phoff + i * phentsize;
            if self.u32_at(ph) == PT_LOAD {
                let (offset, vaddr) = if self.is64() {
                    (self.u64_at(ph + 8), self.u64_at(ph + 16))
                } else {
                    (self.u32_at(ph + 4) as u64, self.u32_at(ph + 8) as u64)
                };
                return vaddr.wrapping_sub(offset);
            }
        }
        0
    }

    fn section(&self, i: usize) -> Section {
        let shoff = self.word(0x20, 0x28) as usize;
        let shentsize = if self.is64() {
            self.u16_at(0x3a)
        } else {
            self.u16_at(0x2e)
        } as usize;
        let sh = shoff + i * shentsize;
        if self.is64() {
            Section {
                kind: self.u32_at(sh + 4),
                offset: self.u64_at(sh + 24) as usize,
                size: self.u64_at(sh + 32) as usize,
                link: self.u32_at(sh + 40) as usize,
                entsize: self.u64_at(sh + 56) as usize,
            }
        } else {
            Section {
                kind: self.u32_at(sh + 4),
                offset: self.u32_at(sh + 16) as usize,
                size: self.u32_at(sh + 20) as usize,
                link: self.u32_at(sh + 24) as usize,
                entsize: self.u32_at(sh + 36) as usize,
            }
        }
    }

    fn section_count(&self) -> usize {
        (if self.is64() {
            self.u16_at(0x3c)
        } else {
            self.u16_at(0x30)
        }) as usize
    }

    /// Offset from the image base of the dynamic symbol `name`.
    pub fn dynamic_symbol(&self, name: &str) -> Option<u64> {
        let dynsym = (0..self.section_count())
            .map(|i| self.section(i))
            .find(|s| s.kind == SHT_DYNSYM)?;
        let strtab = self.section(dynsym.link);
        let entsize = if dynsym.entsize != 0 {
            dynsym.entsize
        } else if self.is64() {
            24
        } else {
            16
        };
        for i in 0..dynsym.size / entsize {
            let sym = dynsym.offset + i * entsize;
            let name_off = self.u32_at(sym) as usize;
            let (value, shndx) = if self.is64() {
                (self.u64_at(sym + 8), self.u16_at(sym + 6))
            } else {
                (self.u32_at(sym + 4) as u64, self.u16_at(sym + 14))
            };
            if shndx == 0 {
                continue;
            }
            let start = strtab.offset + name_off;
            let bytes = self.bytes.get(start..)?;
            let end = bytes.iter().position(|&b| b == 0)?;
            if &bytes[..end] == name.as_bytes() {
                return Some(value.wrapping_sub(self.link_bias()));
            }
        }
        None
    }
}

struct Section {
    kind: u32,
    offset: usize,
    size: usize,
    link: usize,
    entsize: usize,
}

/// The [vdso] mapping of this process and a view of its bytes.
pub struct MappedVdso {
    pub base: u64,
    pub len: u64,
}

impl MappedVdso {
    pub fn find() -> Option<MappedVdso> {
        sys::find_map("[vdso]").map(|m| MappedVdso {
            base: m.start,
            len: m.end - m.start,
        })
    }

    pub fn elf(&self) -> Result<Elf<'static>, String> {
        // The mapping stays as long as the scenario does not unmap it.
        let bytes =
            unsafe { std::slice::from_raw_parts(self.base as *const u8, self.len as usize) };
        Elf::parse(bytes)
    }

    pub fn symbol(&self, name: &str) -> Result<u64, String> {
        let elf = self.elf()?;
        elf.dynamic_symbol(name)
            .map(|off| self.base + off)
            .ok_or_else(|| format!("{name} not in the vDSO's .dynsym"))
    }

    /// `7f 45 4c 46 <class> <data>` as hex, for diagnostics.
    pub fn header_hex(&self) -> String {
        let b = unsafe { std::slice::from_raw_parts(self.base as *const u8, 6) };
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Unmaps every vDSO-related special mapping ([vdso], [vvar], [vvar_vclock]).
/// Returns the names and ranges removed.
pub fn unmap_all() -> Vec<String> {
    let mut removed = Vec::new();
    for m in sys::self_maps() {
        let special = m.name == "[vdso]" || m.name.starts_with("[vvar");
        if special && sys::munmap(m.start, m.end - m.start).is_ok() {
            removed.push(format!("{} {:#x}-{:#x}", m.name, m.start, m.end));
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_vdso_is_elf64_with_clock_gettime() {
        let v = MappedVdso::find().expect("[vdso] in maps");
        let elf = v.elf().unwrap();
        assert_eq!(elf.class(), ELFCLASS64);
        assert_eq!(elf.machine(), EM_X86_64);
        let f = v.symbol("__vdso_clock_gettime").unwrap();
        assert!(f > v.base && f < v.base + v.len);
    }

    #[test]
    fn rejects_non_elf() {
        assert!(Elf::parse(&[0u8; 128]).is_err());
    }
}
