//! 32-bit code and the gates between 64-bit and 32-bit mode.
//!
//! The validator may be built as a static PIE that the kernel loads above
//! 4 GiB, where 32-bit code cannot run. So every piece of code that executes
//! in (or returns into) 32-bit mode lives in one position-independent blob
//! between `vb_start` and `vb_end`, which is copied at run time into
//! MAP_32BIT memory. Entry points are `base + (label - vb_start)`.
//! Internal references are PC-relative (`call 1f; 1: pop`), never absolute.
//!
//! The blob is mapped read-write-execute: the 32-bit signal handler records
//! what it saw in `vb_data`, which the 64-bit side reads back.

use std::sync::OnceLock;

core::arch::global_asm!(include_str!("thunks.S"), options(att_syntax));

extern "C" {
    static vb_start: u8;
    static vb_end: u8;
    static vb_offsets: [u64; 12];
}

/// Entry points in the blob, in the order of `vb_offsets`.
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
pub enum Entry {
    Enter32 = 0,
    Probe32,
    Int80,
    Int80After,
    Sysenter32,
    RtHandler32,
    RtRestorer32,
    CriuEnter64,
    CriuMain32,
    Data,
    Handler32,
    Restorer32,
}

/// Register block exchanged with 32-bit code; must live below 4 GiB.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Regs32 {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
    pub esi: u32,
    pub edi: u32,
    pub ebp: u32,
    pub target: u32,
}

impl Regs32 {
    pub fn syscall(nr: u32, args: &[u32]) -> Regs32 {
        let mut r = Regs32 {
            eax: nr,
            ..Default::default()
        };
        let slots = [
            &mut r.ebx, &mut r.ecx, &mut r.edx, &mut r.esi, &mut r.edi, &mut r.ebp,
        ];
        for (slot, a) in slots.into_iter().zip(args) {
            *slot = *a;
        }
        r
    }
}

const CODE_LEN: usize = 64 * 1024;
const STACK_LEN: usize = 256 * 1024;
/// The blob is copied at offset 0, the Regs32 block and scratch space sit
/// in the upper half of the code mapping.
const REGS_OFFSET: usize = 32 * 1024;
const SCRATCH_OFFSET: usize = 48 * 1024;
pub const SCRATCH_LEN: usize = 16 * 1024;

/// Low (below 4 GiB) memory of this process: the copied blob and a stack.
pub struct Low {
    pub code: u64,
    pub stack: u64,
}

static LOW: OnceLock<Low> = OnceLock::new();

/// Maps anonymous memory with MAP_32BIT | MAP_POPULATE (pre-faulted:
/// QEMU 7.2's TCG performs the stack reads of a bitness-changing far return
/// with supervisor rights and trips on pages that are not present).
pub fn map_low(len: usize, prot: i32) -> u64 {
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    assert!(
        p != libc::MAP_FAILED,
        "MAP_32BIT mmap failed: {}",
        std::io::Error::last_os_error()
    );
    p as u64
}

/// The low memory of this process, created on first use. Scenarios run in
/// forked children, so each child makes (and pre-faults) its own.
pub fn low() -> &'static Low {
    LOW.get_or_init(|| {
        let code = map_low(
            CODE_LEN,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        );
        let stack = map_low(STACK_LEN, libc::PROT_READ | libc::PROT_WRITE);
        unsafe {
            let start = &vb_start as *const u8;
            let end = &vb_end as *const u8;
            let len = end as usize - start as usize;
            assert!(len < REGS_OFFSET && SCRATCH_OFFSET + SCRATCH_LEN <= CODE_LEN);
            std::ptr::copy_nonoverlapping(start, code as *mut u8, len);
        }
        Low { code, stack }
    })
}

/// Address (below 4 GiB) of an entry point of the copied blob.
pub fn entry(e: Entry) -> u32 {
    let off = unsafe { vb_offsets[e as usize] };
    (low().code + off) as u32
}

/// Top of the 32-bit stack (16-byte aligned, leaves room for the frame
/// vb_enter32 keeps there).
pub fn stack_top() -> u32 {
    (low().stack + STACK_LEN as u64 - 64) as u32
}

/// The 32-bit stack's mapping, `[start, end)`.
pub fn stack_range() -> (u64, u64) {
    let l = low();
    (l.stack, l.stack + STACK_LEN as u64)
}

/// Makes the 32-bit stack executable, as the stack of a legacy ia32
/// program: the kernel's last-resort signal restorer is code it writes into
/// the signal frame.
pub fn make_stack_executable() -> Result<(), i32> {
    let l = low();
    let r = unsafe {
        libc::mprotect(
            l.stack as *mut libc::c_void,
            STACK_LEN,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(crate::sys::errno())
    }
}

/// Scratch memory below 4 GiB for compat syscall arguments.
pub fn scratch() -> *mut u8 {
    (low().code + SCRATCH_OFFSET as u64) as *mut u8
}

/// The words the 32-bit signal handler records:
/// [sig, saved cs, saved eip, count, restorer].
pub fn handler_record() -> [u32; 5] {
    let p = entry(Entry::Data) as u64 as *const u32;
    unsafe { [0, 1, 2, 3, 4].map(|i| std::ptr::read_volatile(p.add(i))) }
}

pub fn reset_handler_record() {
    let p = entry(Entry::Data) as u64 as *mut u32;
    for i in 0..5 {
        unsafe { std::ptr::write_volatile(p.add(i), 0) };
    }
}

/// Runs `target` (an address below 4 GiB) in 32-bit mode with the given
/// registers and returns the registers it left. `keep_fs` saves and restores
/// the FS base around the trip (needed when an ia32 signal may be delivered).
pub fn call32_with(target: u32, regs: Regs32, keep_fs: bool) -> Regs32 {
    let l = low();
    let block = (l.code + REGS_OFFSET as u64) as *mut Regs32;
    unsafe {
        std::ptr::write_volatile(block, Regs32 { target, ..regs });
        let enter: extern "sysv64" fn(u64, u64, u64) =
            std::mem::transmute(entry(Entry::Enter32) as u64 as *const ());
        enter(block as u64, stack_top() as u64, keep_fs as u64);
        std::ptr::read_volatile(block)
    }
}

pub fn call32(target: u32, regs: Regs32) -> Regs32 {
    call32_with(target, regs, true)
}

/// int 0x80 from 32-bit code; returns eax as a signed value.
pub fn int80_from_32(nr: u32, args: &[u32]) -> i32 {
    call32(entry(Entry::Int80), Regs32::syscall(nr, args)).eax as i32
}

/// Switches to the low stack, unmaps [start, start+len) with a 64-bit
/// syscall and continues in 32-bit code at `entry32` with ebx = `params`.
/// Never returns: the 32-bit code must exit.
pub fn criu_enter(start: u64, len: u64, entry32: u32, params: u32) -> ! {
    unsafe {
        let f: extern "sysv64" fn(u64, u64, u64, u64, u64) -> ! =
            std::mem::transmute(entry(Entry::CriuEnter64) as u64 as *const ());
        f(
            start,
            len,
            stack_top() as u64,
            entry32 as u64,
            params as u64,
        )
    }
}

/// int 0x80 from 64-bit code: a compat syscall made by a 64-bit process.
/// Returns rax as the kernel left it.
pub fn int80_from_64(nr: u32, args: &[u32]) -> i64 {
    let mut a = [0u32; 6];
    a[..args.len()].copy_from_slice(args);
    let ret: u64;
    // rbx and rbp cannot be asm operands in Rust: swap/push them by hand.
    unsafe {
        core::arch::asm!(
            "xchg rbx, {b}",
            "push rbp",
            "mov ebp, {p:e}",
            "int 0x80",
            "pop rbp",
            "xchg rbx, {b}",
            b = inout(reg) a[0] as u64 => _,
            p = in(reg) a[5] as u64,
            inlateout("rax") nr as u64 => ret,
            in("rcx") a[1] as u64,
            in("rdx") a[2] as u64,
            in("rsi") a[3] as u64,
            in("rdi") a[4] as u64,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    ret as i64
}

/// The current code segment selector (0x33 in 64-bit mode).
pub fn current_cs() -> u16 {
    let cs: u16;
    unsafe { core::arch::asm!("mov {0:x}, cs", out(reg) cs) };
    cs
}
