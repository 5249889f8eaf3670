//! The 32-bit vDSO ARCH_SET_COMPAT mapped: found in /proc/self/maps (not
//! from the call's return value, whose form the series may still change),
//! checked to be an ELFCLASS32 image below 4 GiB, and searched for
//! __kernel_vsyscall (AT_SYSINFO) in its .dynsym. The kernel maps the
//! whole image, section headers included.

use crate::maps::Map;

pub struct Vdso32 {
    pub base: u32,
    pub vsyscall: u32,
}

/// Finds the 32-bit vDSO among `maps`. None if there is no [vdso] at all
/// (vdso32=0); an error if what is there is not a usable 32-bit image.
pub fn find(maps: &[Map]) -> Result<Option<Vdso32>, String> {
    let Some(m) = maps.iter().find(|m| m.name == "[vdso]") else {
        return Ok(None);
    };
    if m.end > 1 << 32 {
        return Err(format!(
            "the vDSO is above 4 GiB after ARCH_SET_COMPAT: {m}"
        ));
    }
    // The mapping stays for the life of the process.
    let image =
        unsafe { std::slice::from_raw_parts(m.start as *const u8, (m.end - m.start) as usize) };
    let offset = kernel_vsyscall(image).map_err(|e| format!("[vdso] at {:#x}: {e}", m.start))?;
    Ok(Some(Vdso32 {
        base: m.start as u32,
        vsyscall: m.start as u32 + offset,
    }))
}

fn u16_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?) as u32)
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// Offset of __kernel_vsyscall from the start of the image.
pub fn kernel_vsyscall(image: &[u8]) -> Result<u32, String> {
    if image.get(..5) != Some(&b"\x7fELF\x01"[..]) {
        return Err(format!(
            "not an ELFCLASS32 image: {:02x?}",
            &image[..image.len().min(5)]
        ));
    }
    symbol(image, b"__kernel_vsyscall").ok_or_else(|| "no __kernel_vsyscall in .dynsym".into())
}

fn symbol(image: &[u8], name: &[u8]) -> Option<u32> {
    let (shoff, shentsize, shnum) = (u32_at(image, 32)?, u16_at(image, 46)?, u16_at(image, 48)?);
    let section = |i: u32| -> Option<[u32; 4]> {
        let sh = (shoff + i * shentsize) as usize;
        // sh_type, sh_offset, sh_size, sh_link
        Some([
            u32_at(image, sh + 4)?,
            u32_at(image, sh + 16)?,
            u32_at(image, sh + 20)?,
            u32_at(image, sh + 24)?,
        ])
    };
    const SHT_DYNSYM: u32 = 11;
    let dynsym = (0..shnum)
        .filter_map(section)
        .find(|s| s[0] == SHT_DYNSYM)?;
    let strtab = section(dynsym[3])?;
    let bias = link_bias(image)?;
    (0..dynsym[2] / 16)
        .find_map(|i| {
            let sym = (dynsym[1] + i * 16) as usize;
            let name_at = (strtab[1] + u32_at(image, sym)?) as usize;
            let rest = image.get(name_at..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            let defined = u16_at(image, sym + 14)? != 0;
            (defined && &rest[..end] == name)
                .then(|| u32_at(image, sym + 4))
                .flatten()
        })
        .map(|value| value.wrapping_sub(bias))
}

/// Link address minus file offset of the first PT_LOAD (0 for the kernel's
/// vDSO images, which are linked at 0).
fn link_bias(image: &[u8]) -> Option<u32> {
    let (phoff, phentsize, phnum) = (u32_at(image, 28)?, u16_at(image, 42)?, u16_at(image, 44)?);
    (0..phnum)
        .map(|i| (phoff + i * phentsize) as usize)
        .find(|&ph| u32_at(image, ph) == Some(1))
        .map_or(Some(0), |ph| {
            Some(u32_at(image, ph + 8)?.wrapping_sub(u32_at(image, ph + 4)?))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELFCLASS32 image linked at 0x1000 (file offset 0) with a .dynsym
    /// holding __kernel_vsyscall at 0x1420 and an undefined symbol.
    fn image() -> Vec<u8> {
        let mut b = vec![0u8; 0x300];
        let put = |b: &mut Vec<u8>, o: usize, v: &[u8]| b[o..o + v.len()].copy_from_slice(v);
        put(&mut b, 0, b"\x7fELF\x01\x01\x01");
        put(&mut b, 28, &52u32.to_le_bytes());
        put(&mut b, 32, &0x200u32.to_le_bytes());
        put(&mut b, 42, &32u16.to_le_bytes());
        put(&mut b, 44, &1u16.to_le_bytes());
        put(&mut b, 46, &40u16.to_le_bytes());
        put(&mut b, 48, &3u16.to_le_bytes());
        put(&mut b, 52, &1u32.to_le_bytes()); // PT_LOAD, offset 0, vaddr 0x1000
        put(&mut b, 60, &0x1000u32.to_le_bytes());
        put(&mut b, 0x100, b"\0__kernel_vsyscall\0__vdso_time\0");
        for (i, (name, value, shndx)) in [(1u32, 0x1420u32, 5u16), (19, 0x1500, 0)]
            .iter()
            .enumerate()
        {
            let sym = 0x150 + 16 * i;
            put(&mut b, sym, &name.to_le_bytes());
            put(&mut b, sym + 4, &value.to_le_bytes());
            put(&mut b, sym + 14, &shndx.to_le_bytes());
        }
        // Section 1: .dynsym (3 entries from 0x140), linked to section 2: .dynstr.
        for (o, v) in [(4, 11u32), (16, 0x140), (20, 48), (24, 2), (36, 16)] {
            put(&mut b, 0x228 + o, &v.to_le_bytes());
        }
        for (o, v) in [(4, 3u32), (16, 0x100), (20, 32)] {
            put(&mut b, 0x250 + o, &v.to_le_bytes());
        }
        b
    }

    #[test]
    fn finds_kernel_vsyscall_relative_to_the_image() {
        assert_eq!(kernel_vsyscall(&image()), Ok(0x420));
    }

    #[test]
    fn refuses_an_image_without_kernel_vsyscall() {
        let mut b = image();
        b[0x101] = b'X'; // rename the symbol
        assert_eq!(
            kernel_vsyscall(&b),
            Err("no __kernel_vsyscall in .dynsym".into())
        );
    }

    #[test]
    fn refuses_a_64_bit_image() {
        let maps = crate::maps::read();
        let m = maps
            .iter()
            .find(|m| m.name == "[vdso]")
            .expect("host [vdso]");
        let image =
            unsafe { std::slice::from_raw_parts(m.start as *const u8, (m.end - m.start) as usize) };
        assert!(kernel_vsyscall(image)
            .unwrap_err()
            .contains("not an ELFCLASS32 image"));
    }

    #[test]
    fn finds_the_64_bit_vdso_above_4gib_as_an_error() {
        let maps = crate::maps::read();
        match find(&maps) {
            Err(e) => assert!(e.contains("above 4 GiB") || e.contains("ELFCLASS32"), "{e}"),
            Ok(_) => panic!("a 64-bit process's vDSO was accepted as the 32-bit one"),
        }
    }
}
