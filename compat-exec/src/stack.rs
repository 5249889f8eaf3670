//! The initial ia32 stack: the bytes an ia32 execve() leaves between the
//! stack pointer and the top of the stack, laid out the way the kernel's
//! fs/binfmt_elf.c (create_elf_tables, compat build) does it, minus the
//! random offset arch_align_stack() adds:
//!
//! ```text
//! top - 8          8 zero bytes (bprm->p starts one kernel pointer below the top)
//!                  argv strings, envp strings, execfn string (ascending)
//! & ~15            platform string "i686\0", then 16 AT_RANDOM bytes below it
//! sp               argc, argv[], 0, envp[], 0, auxv pairs, AT_NULL pair
//!                  (sp = 16-byte aligned, as STACK_ROUND leaves it)
//! ```

pub const AT_NULL: u32 = 0;
pub const AT_PHDR: u32 = 3;
pub const AT_PHENT: u32 = 4;
pub const AT_PHNUM: u32 = 5;
pub const AT_PAGESZ: u32 = 6;
pub const AT_BASE: u32 = 7;
pub const AT_FLAGS: u32 = 8;
pub const AT_ENTRY: u32 = 9;
pub const AT_UID: u32 = 11;
pub const AT_EUID: u32 = 12;
pub const AT_GID: u32 = 13;
pub const AT_EGID: u32 = 14;
pub const AT_PLATFORM: u32 = 15;
pub const AT_HWCAP: u32 = 16;
pub const AT_CLKTCK: u32 = 17;
pub const AT_SECURE: u32 = 23;
pub const AT_RANDOM: u32 = 25;
pub const AT_HWCAP2: u32 = 26;
pub const AT_RSEQ_FEATURE_SIZE: u32 = 27;
pub const AT_RSEQ_ALIGN: u32 = 28;
pub const AT_EXECFN: u32 = 31;
pub const AT_SYSINFO: u32 = 32;
pub const AT_SYSINFO_EHDR: u32 = 33;
pub const AT_MINSIGSTKSZ: u32 = 51;

/// An auxv entry; the three that point into the stack are filled in by
/// `build` once it knows where the strings and random bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aux {
    Value(u32, u32),
    Random,
    ExecFn,
    Platform,
}

pub struct Input<'a> {
    /// One past the highest stack byte.
    pub top: u32,
    pub argv: &'a [&'a [u8]],
    pub envp: &'a [&'a [u8]],
    pub execfn: &'a [u8],
    pub platform: &'a [u8],
    pub random: [u8; 16],
    /// In the order they will appear, without the final AT_NULL.
    pub auxv: &'a [Aux],
}

#[derive(Debug, PartialEq, Eq)]
pub struct Stack {
    /// The bytes of [sp, top).
    pub bytes: Vec<u8>,
    pub sp: u32,
    pub arg_start: u32,
    pub arg_end: u32,
    pub env_start: u32,
    pub env_end: u32,
    /// The resolved auxv, AT_NULL included (what /proc/self/auxv shows).
    pub auxv: Vec<(u32, u32)>,
}

/// Builds the stack image. Fails if it would not fit in `max_len` bytes.
pub fn build(input: &Input, max_len: u32) -> Result<Stack, String> {
    let strings_len: usize = input
        .argv
        .iter()
        .chain(input.envp)
        .map(|s| s.len() + 1)
        .sum();
    let auxv_len = (input.auxv.len() + 1) * 8;
    let ptrs_len = (input.argv.len() + input.envp.len() + 3) * 4;
    let need = 8
        + strings_len
        + input.execfn.len()
        + 1
        + 16
        + input.platform.len()
        + 1
        + 16
        + auxv_len
        + ptrs_len
        + 16;
    if need > max_len as usize {
        return Err(format!(
            "arguments and environment need {need} bytes, more than the {max_len} bytes of stack"
        ));
    }
    let mut w = Writer::new(input.top, need as u32);
    w.push(&[0; 8]);
    let execfn = w.push_str(input.execfn);
    let env: Vec<u32> = input.envp.iter().rev().map(|s| w.push_str(s)).collect();
    let args: Vec<u32> = input.argv.iter().rev().map(|s| w.push_str(s)).collect();
    let (arg_start, env_start) = (w.p, env.last().copied().unwrap_or(execfn));
    w.p &= !15;
    let platform = w.push_str(input.platform);
    let random = w.push(&input.random);
    let auxv = resolve(input.auxv, random, execfn, platform);
    let items = (input.argv.len() + 1 + input.envp.len() + 1 + 1) as u32;
    let sp = (w.p - auxv.len() as u32 * 8 - items * 4) & !15;
    let mut words = vec![input.argv.len() as u32];
    words.extend(args.iter().rev());
    words.push(0);
    words.extend(env.iter().rev());
    words.push(0);
    words.extend(auxv.iter().flat_map(|&(k, v)| [k, v]));
    w.p = sp;
    for word in words {
        w.put(&word.to_le_bytes());
    }
    Ok(Stack {
        bytes: w.image[(sp - w.base) as usize..].to_vec(),
        sp,
        arg_start,
        arg_end: env_start,
        env_start,
        env_end: execfn,
        auxv,
    })
}

fn resolve(auxv: &[Aux], random: u32, execfn: u32, platform: u32) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = auxv
        .iter()
        .map(|a| match *a {
            Aux::Value(k, v) => (k, v),
            Aux::Random => (AT_RANDOM, random),
            Aux::ExecFn => (AT_EXECFN, execfn),
            Aux::Platform => (AT_PLATFORM, platform),
        })
        .collect();
    out.push((AT_NULL, 0));
    out
}

/// Writes downwards from the top into an image of [top - len, top).
struct Writer {
    image: Vec<u8>,
    base: u32,
    p: u32,
}

impl Writer {
    fn new(top: u32, len: u32) -> Writer {
        Writer {
            image: vec![0; len as usize],
            base: top - len,
            p: top,
        }
    }

    /// Places `bytes` just below the current position; returns their address.
    fn push(&mut self, bytes: &[u8]) -> u32 {
        self.p -= bytes.len() as u32;
        let at = (self.p - self.base) as usize;
        self.image[at..at + bytes.len()].copy_from_slice(bytes);
        self.p
    }

    /// Places `s` and its terminating NUL; returns the string's address.
    fn push_str(&mut self, s: &[u8]) -> u32 {
        self.push(&[0]);
        self.push(s)
    }

    /// Writes `bytes` at the current position, moving upwards.
    fn put(&mut self, bytes: &[u8]) {
        let at = (self.p - self.base) as usize;
        self.image[at..at + bytes.len()].copy_from_slice(bytes);
        self.p += bytes.len() as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(bytes: &[u8]) -> Vec<u32> {
        bytes
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn layout_matches_the_kernel_byte_for_byte() {
        let argv: [&[u8]; 2] = [b"/bb", b"echo"];
        let envp: [&[u8]; 1] = [b"A=1"];
        let auxv = [
            Aux::Value(AT_PAGESZ, 4096),
            Aux::Random,
            Aux::ExecFn,
            Aux::Platform,
        ];
        let input = Input {
            top: 0x1_0000,
            argv: &argv,
            envp: &envp,
            execfn: b"/bb",
            platform: b"i686",
            random: [0xaa; 16],
            auxv: &auxv,
        };
        let s = build(&input, 4096).unwrap();
        // Strings, from the top down: 8 zero bytes at 0xfff8, "/bb\0" (execfn)
        // at 0xfff4, "A=1\0" at 0xfff0, "echo\0" at 0xffeb, "/bb\0" at 0xffe7.
        // Aligned down to 0xffe0: "i686\0" at 0xffdb, random at 0xffcb.
        // 5 auxv pairs (40 bytes) + 6 words (24) below 0xffcb: 0xff8b & ~15.
        assert_eq!(s.sp, 0xff80);
        assert_eq!((s.arg_start, s.arg_end), (0xffe7, 0xfff0));
        assert_eq!((s.env_start, s.env_end), (0xfff0, 0xfff4));
        assert_eq!(s.bytes.len(), 0x1_0000 - 0xff80);
        assert_eq!(
            words(&s.bytes[..64]),
            [
                2,
                0xffe7,
                0xffeb,
                0,
                0xfff0,
                0, // argc, argv, envp
                AT_PAGESZ,
                4096,
                AT_RANDOM,
                0xffcb,
                AT_EXECFN,
                0xfff4,
                AT_PLATFORM,
                0xffdb,
                AT_NULL,
                0,
            ]
        );
        let tail = &s.bytes[(0xffcb - 0xff80)..];
        let mut expected = vec![0xaa; 16];
        expected.extend_from_slice(b"i686\0");
        expected.extend_from_slice(&[0; 0xffe7 - 0xffe0]);
        expected.extend_from_slice(b"/bb\0echo\0A=1\0/bb\0");
        expected.extend_from_slice(&[0; 8]);
        assert_eq!(tail, &expected[..]);
        // The gap between the auxv and the random bytes stays zero.
        assert_eq!(
            &s.bytes[64..(0xffcb - 0xff80)],
            &[0; 0xffcb - 0xff80 - 64][..]
        );
    }

    #[test]
    fn sp_is_16_byte_aligned_for_any_argument_lengths() {
        for n in 0..40 {
            let long = vec![b'x'; n];
            let argv: [&[u8]; 1] = [&long];
            let input = Input {
                top: 0xffff_e000,
                argv: &argv,
                envp: &[],
                execfn: b"p",
                platform: b"i686",
                random: [0; 16],
                auxv: &[],
            };
            let s = build(&input, 4096).unwrap();
            assert_eq!(s.sp % 16, 0);
            assert_eq!(words(&s.bytes[..8]), [1, s.arg_start]);
            assert_eq!(s.env_start, s.arg_end);
        }
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let big = vec![b'x'; 5000];
        let argv: [&[u8]; 1] = [&big];
        let input = Input {
            top: 0x10000,
            argv: &argv,
            envp: &[],
            execfn: b"p",
            platform: b"i686",
            random: [0; 16],
            auxv: &[],
        };
        assert!(build(&input, 4096)
            .unwrap_err()
            .contains("more than the 4096 bytes"));
    }
}
