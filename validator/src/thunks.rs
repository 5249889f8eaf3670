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

core::arch::global_asm!(
    r#"
    .pushsection .rodata.validator_blob, "a"
    .balign 64
    .globl vb_start
vb_start:

    /* vb_enter32(rdi = Regs32 block below 4 GiB, rsi = 32-bit stack top,
     *            rdx = nonzero: save and restore the FS base)
     * sysv64 ABI. Calls regs.target in 32-bit mode with eax..ebp loaded from
     * the block and stores eax..ebp back into it afterwards. */
    .code64
    .globl vb_enter32
vb_enter32:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    pushfq
    push %rdx                   /* restore-FS flag, read back after the trip */
    sub $8, %rsp                /* FS base slot */
    mov %rdi, %r13
    mov %rsi, %r14
    test %rdx, %rdx
    jz 1f
    /* An ia32 sigreturn may reload FS with a null selector, which on Intel
     * clears the FS base (glibc's TLS): keep it. */
    mov $158, %eax              /* arch_prctl(ARCH_GET_FS, slot) */
    mov $0x1003, %edi
    mov %rsp, %rsi
    syscall
1:
    mov %rsp, %rax
    mov %r14, %rsp              /* low stack: [top-8] rsp64, [top-16] regs */
    push %rax
    push %r13
    lea vb_thunk32(%rip), %rax
    pushq $0x23                 /* __USER32_CS */
    push %rax
    lretq

    .code32
vb_thunk32:
    mov $0x2b, %ecx             /* __USER_DS: 32-bit mode uses DS/ES/SS */
    mov %ecx, %ds
    mov %ecx, %es
    mov %ecx, %ss
    mov (%esp), %eax            /* regs block */
    pushl 28(%eax)              /* target, at [esp] during the call */
    mov 4(%eax), %ebx
    mov 8(%eax), %ecx
    mov 12(%eax), %edx
    mov 16(%eax), %esi
    mov 20(%eax), %edi
    mov 24(%eax), %ebp
    mov 0(%eax), %eax
    cld
    call *(%esp)
    add $4, %esp
    push %eax
    mov 4(%esp), %eax           /* regs block */
    mov %ebx, 4(%eax)
    mov %ecx, 8(%eax)
    mov %edx, 12(%eax)
    mov %esi, 16(%eax)
    mov %edi, 20(%eax)
    mov %ebp, 24(%eax)
    pop %ecx
    mov %ecx, 0(%eax)
    call 2f
2:  pop %ecx
    lea (vb_back64 - 2b)(%ecx), %ecx
    pushl $0x33                 /* __USER_CS */
    push %ecx
    lret

    .code64
vb_back64:
    mov 8(%rsp), %rsp           /* saved 64-bit stack pointer */
    cmpq $0, 8(%rsp)
    je 3f
    mov $158, %eax              /* arch_prctl(ARCH_SET_FS, saved base) */
    mov $0x1002, %edi
    mov (%rsp), %rsi
    syscall
3:
    add $16, %rsp
    popfq
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret

    /* 32-bit payloads, called by vb_thunk32 with a normal 32-bit `call`. */
    .code32

    /* eax = 5 in: 0x48 is `dec %eax` in 32-bit mode but a REX.W prefix in
     * 64-bit mode, so eax comes back 4 only in compatibility mode.
     * ebx = CS selector, ecx = bytes one `push` moved esp by. */
vb_p32_probe:
    .byte 0x48, 0x89, 0xc0      /* dec %eax; mov %eax,%eax  |  mov %rax,%rax */
    mov %cs, %ebx
    mov %esp, %ecx
    push %edx
    sub %esp, %ecx
    pop %edx
    ret

    /* A compat syscall: eax = nr, ebx.. = args. */
vb_p32_int80:
    int $0x80
vb_p32_int80_after:
    ret

    /* What the 32-bit vDSO's __kernel_vsyscall does on Intel, without the
     * vDSO: the kernel resumes at the vDSO's landing pad, not here. */
vb_p32_sysenter:
    push %ecx
    push %edx
    push %ebp
    mov %esp, %ebp
    sysenter
    pop %ebp
    pop %edx
    pop %ecx
    ret

    /* ia32 rt signal handler(sig, info, uc): records the signal, the saved
     * CS and EIP of the ia32 ucontext (uc_mcontext at 20, ip at +56, cs at
     * +60), counts invocations and keeps its return address (the restorer)
     * in vb_data. */
vb_p32_rt_handler:
    call 1f
1:  pop %ecx
    lea (vb_data - 1b)(%ecx), %ecx
    mov 4(%esp), %eax
    mov %eax, 0(%ecx)
    mov 12(%esp), %edx
    mov 80(%edx), %eax
    mov %eax, 4(%ecx)
    mov 76(%edx), %eax
    mov %eax, 8(%ecx)
    incl 12(%ecx)
    mov (%esp), %eax            /* the restorer the kernel chose */
    mov %eax, 16(%ecx)
    ret

vb_p32_rt_restorer:
    mov $173, %eax              /* rt_sigreturn (ia32) */
    int $0x80
    ud2

    /* ia32 non-rt handler(sig), used without SA_SIGINFO: struct
     * sigframe_ia32 is pretcode, sig, then sigcontext_32 (ip at +56, cs at
     * +60). Records like vb_p32_rt_handler. */
vb_p32_handler:
    call 1f
1:  pop %ecx
    lea (vb_data - 1b)(%ecx), %ecx
    mov 4(%esp), %eax
    mov %eax, 0(%ecx)
    mov 68(%esp), %eax
    mov %eax, 4(%ecx)
    mov 64(%esp), %eax
    mov %eax, 8(%ecx)
    incl 12(%ecx)
    mov (%esp), %eax
    mov %eax, 16(%ecx)
    ret

    /* The non-rt restorer must drop the signal number first. */
vb_p32_restorer:
    pop %eax
    mov $119, %eax              /* sigreturn (ia32) */
    int $0x80
    ud2

    /* vb_criu_enter(rdi = munmap start, rsi = munmap length, rdx = 32-bit
     * stack top, rcx = 32-bit entry, r8 = parameter block below 4 GiB).
     * 64-bit code that runs from low memory, so it may unmap everything
     * above 4 GiB (the validator itself included) and then drop into 32-bit
     * mode for good. */
    .code64
vb_criu_enter:
    mov %rdx, %rsp
    mov %rcx, %r12
    mov %r8, %rbx
    mov $11, %eax               /* munmap */
    syscall
    mov %eax, 40(%rbx)
    pushq $0x23
    push %r12
    lretq

    /* 32-bit main of the CRIU-style flow. ebx = parameter block:
     *  0 __kernel_vsyscall address   4 pid via int 0x80
     *  8 pid via __kernel_vsyscall  12 status bits
     * 16 compat sigaction: handler, flags, restorer, mask[2]
     * Exit status 0x40 | bits: 1 = both getpids agree, 2 = rt_sigaction
     * succeeded, 4 = the handler ran exactly once and returned here. */
    .code32
vb_p32_criu_main:
    mov $0x2b, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %ebx, %ebp
    movl $0, 12(%ebp)
    mov $20, %eax
    int $0x80
    mov %eax, 4(%ebp)
    mov $20, %eax
    call *0(%ebp)
    mov %eax, 8(%ebp)
    cmp 4(%ebp), %eax
    jne 1f
    test %eax, %eax
    jle 1f
    orl $1, 12(%ebp)
1:  mov $174, %eax              /* rt_sigaction(SIGUSR1, act, NULL, 8) */
    mov $10, %ebx
    lea 16(%ebp), %ecx
    xor %edx, %edx
    mov $8, %esi
    int $0x80
    test %eax, %eax
    jne 2f
    orl $2, 12(%ebp)
2:  mov $37, %eax               /* kill(pid, SIGUSR1) */
    mov 4(%ebp), %ebx
    mov $10, %ecx
    int $0x80
    call 3f
3:  pop %ecx
    cmpl $1, (vb_data + 12 - 3b)(%ecx)
    jne 4f
    orl $4, 12(%ebp)
4:  mov $37, %eax               /* kill(pid, SIGSTOP): the parent reads maps */
    mov 4(%ebp), %ebx
    mov $19, %ecx
    int $0x80
    mov $252, %eax              /* exit_group(0x40 | bits) */
    mov 12(%ebp), %ebx
    or $0x40, %ebx
    int $0x80
    ud2

    .balign 16
vb_data:
    .space 64

    .globl vb_end
vb_end:

    /* Offsets of the entry points, read by Rust. */
    .balign 8
    .globl vb_offsets
vb_offsets:
    .quad vb_enter32 - vb_start
    .quad vb_p32_probe - vb_start
    .quad vb_p32_int80 - vb_start
    .quad vb_p32_int80_after - vb_start
    .quad vb_p32_sysenter - vb_start
    .quad vb_p32_rt_handler - vb_start
    .quad vb_p32_rt_restorer - vb_start
    .quad vb_criu_enter - vb_start
    .quad vb_p32_criu_main - vb_start
    .quad vb_data - vb_start
    .quad vb_p32_handler - vb_start
    .quad vb_p32_restorer - vb_start
    .code64
    .popsection
"#,
    options(att_syntax)
);

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
