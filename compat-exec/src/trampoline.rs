//! The last steps, which cannot run from compat-exec's own image: a small
//! position-independent blob copied into two anonymous pages below 4 GiB
//! (code, then data), in the spirit of CRIU's restorer blob. From there it
//!
//! 1. switches to a scratch stack below the program's initial stack pointer,
//! 2. unmaps everything from 4 GiB up: compat-exec's image, heap, stack,
//!    TLS (the kernel refuses a new exe file while the old one is mapped),
//! 3. prctl(PR_SET_MM_MAP) with the program as exe_fd: /proc/self/exe,
//!    brk after the bss, arg/env bounds, the saved auxv; closes the fd,
//! 4. clears what pointed into the unmapped TLS (clear_child_tid, the
//!    robust futex list, the FS base),
//! 5. far-returns to 32-bit mode (CS 0x23), loads the data segments, and
//! 6. jumps to __kernel_vsyscall of the new vDSO for munmap(trampoline),
//!    with the program's entry as return address on the program's stack:
//!    the vDSO's `ret` lands on the entry with esp at argc, edx 0 and
//!    nothing of compat-exec left. Without a 32-bit vDSO (vdso32=0) the
//!    trampoline jumps to the entry itself and stays mapped.
//!
//! A failure in 2 or 3 is reported on stderr with its errno and exit
//! status 125; compat-exec checks beforehand that step 3 will be accepted.

use crate::abi::PrctlMmMap;
use std::mem::offset_of;

core::arch::global_asm!(
    r#"
    .pushsection .rodata.compat_exec_trampoline, "a"
    .balign 16
    .globl ce_tramp_start
ce_tramp_start:
    .code64
    /* rdi = Params, in the trampoline's data page */
    mov %rdi, %rbx
    mov 16(%rbx), %rsp              /* scratch stack */
    mov $11, %eax                   /* munmap(high_start, high_len) */
    mov 0(%rbx), %rdi
    mov 8(%rbx), %rsi
    syscall
    lea ce_msg_munmap(%rip), %rsi
    mov $(ce_msg_munmap_end - ce_msg_munmap), %edx
    test %rax, %rax
    jnz ce_fail
    mov $157, %eax                  /* prctl(PR_SET_MM, PR_SET_MM_MAP, &map, 104, 0) */
    mov $35, %edi
    mov $14, %esi
    lea 72(%rbx), %rdx
    mov $104, %r10d
    xor %r8d, %r8d
    syscall
    lea ce_msg_mm_map(%rip), %rsi
    mov $(ce_msg_mm_map_end - ce_msg_mm_map), %edx
    test %rax, %rax
    jnz ce_fail
    mov $3, %eax                    /* close(exe_fd) */
    mov 64(%rbx), %rdi
    syscall
    mov $218, %eax                  /* set_tid_address(NULL) */
    xor %edi, %edi
    syscall
    mov $273, %eax                  /* set_robust_list(NULL, 24) */
    xor %edi, %edi
    mov $24, %esi
    syscall
    mov $158, %eax                  /* arch_prctl(ARCH_SET_FS, 0) */
    mov $0x1002, %edi
    xor %esi, %esi
    syscall
    lea ce_tramp32(%rip), %rax
    pushq $0x23                     /* __USER32_CS */
    push %rax
    lretq

ce_fail:                            /* rax = -errno; rsi, rdx = message */
    mov %rax, %r12
    mov $1, %eax                    /* write(2, message) */
    mov $2, %edi
    syscall
    mov %r12, %rax
    neg %rax
    sub $16, %rsp
    mov $10, %ecx
    xor %edx, %edx
    div %rcx
    add $0x30, %dl
    mov %dl, 2(%rsp)
    xor %edx, %edx
    div %rcx
    add $0x30, %dl
    mov %dl, 1(%rsp)
    xor %edx, %edx
    div %rcx
    add $0x30, %dl
    mov %dl, 0(%rsp)
    movb $10, 3(%rsp)
    mov $1, %eax                    /* write(2, "NNN\n") */
    mov $2, %edi
    mov %rsp, %rsi
    mov $4, %edx
    syscall
    mov $231, %eax                  /* exit_group(125) */
    mov $125, %edi
    syscall
    ud2

ce_msg_munmap:
    .ascii "compat-exec: unmapping compat-exec above 4 GiB failed: errno "
ce_msg_munmap_end:
ce_msg_mm_map:
    .ascii "compat-exec: prctl(PR_SET_MM_MAP) with the program as exe_fd failed: errno "
ce_msg_mm_map_end:

    .code32
ce_tramp32:                         /* ebx = Params */
    mov $0x2b, %eax                 /* __USER_DS */
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    mov 24(%ebx), %esp              /* the program's sp: argc */
    mov 40(%ebx), %esi              /* __kernel_vsyscall, or 0 */
    xor %edx, %edx                  /* i386 ABI: no function for atexit */
    xor %edi, %edi
    xor %ebp, %ebp
    cld
    test %esi, %esi
    jz 1f
    pushl 32(%ebx)                  /* return address: the entry point */
    mov 56(%ebx), %ecx
    mov 48(%ebx), %ebx
    mov $91, %eax                   /* munmap(trampoline, len) */
    jmp *%esi
1:  mov 32(%ebx), %esi
    xor %ebx, %ebx
    xor %ecx, %ecx
    jmp *%esi
    .globl ce_tramp_end
ce_tramp_end:
    .code64
    .popsection
"#,
    options(att_syntax)
);

extern "C" {
    static ce_tramp_start: u8;
    static ce_tramp_end: u8;
}

/// What the trampoline reads, at the start of its data page. The offsets
/// are hard-coded in the assembly above and checked below.
#[repr(C)]
pub struct Params {
    pub high_start: u64,
    pub high_len: u64,
    pub scratch_sp: u64,
    pub sp: u64,
    pub entry: u64,
    pub vsyscall: u64,
    pub tramp_base: u64,
    pub tramp_len: u64,
    pub exe_fd: u64,
    pub mm_map: PrctlMmMap,
    /// The saved auxv (/proc/self/auxv): u32 pairs, as an ia32 execve
    /// stores them.
    pub auxv: [u32; 64],
}

const _: () = {
    assert!(offset_of!(Params, high_start) == 0);
    assert!(offset_of!(Params, high_len) == 8);
    assert!(offset_of!(Params, scratch_sp) == 16);
    assert!(offset_of!(Params, sp) == 24);
    assert!(offset_of!(Params, entry) == 32);
    assert!(offset_of!(Params, vsyscall) == 40);
    assert!(offset_of!(Params, tramp_base) == 48);
    assert!(offset_of!(Params, tramp_len) == 56);
    assert!(offset_of!(Params, exe_fd) == 64);
    assert!(offset_of!(Params, mm_map) == 72);
    assert!(std::mem::size_of::<Params>() <= 4096);
};

const PAGE: u64 = 4096;
pub const LEN: u64 = 2 * PAGE;

/// The trampoline's two pages, mapped at `base` (below 4 GiB).
pub struct Trampoline {
    pub base: u64,
}

impl Trampoline {
    /// Maps the pages (MAP_POPULATE: QEMU 7.2's TCG trips over pages that
    /// are not present during a far return) and copies the code in.
    pub fn map(base: u64) -> Result<Trampoline, String> {
        let flags = libc::MAP_PRIVATE
            | libc::MAP_ANONYMOUS
            | libc::MAP_FIXED_NOREPLACE
            | libc::MAP_POPULATE;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let p = unsafe { libc::mmap(base as *mut _, LEN as usize, rw, flags, -1, 0) };
        if p as u64 != base {
            let e = crate::abi::errno_name(crate::abi::errno());
            return Err(format!("mapping the trampoline at {base:#x} failed: {e}"));
        }
        unsafe {
            let start = &ce_tramp_start as *const u8;
            let len = &ce_tramp_end as *const u8 as usize - start as usize;
            assert!(len as u64 <= PAGE, "trampoline code is {len} bytes");
            std::ptr::copy_nonoverlapping(start, base as *mut u8, len);
            libc::mprotect(
                base as *mut _,
                PAGE as usize,
                libc::PROT_READ | libc::PROT_EXEC,
            );
        }
        Ok(Trampoline { base })
    }

    pub fn params(&self) -> *mut Params {
        (self.base + PAGE) as *mut Params
    }

    /// Runs the trampoline with the Params written at `params()`.
    pub fn enter(&self) -> ! {
        unsafe {
            let f: extern "sysv64" fn(u64) -> ! = std::mem::transmute(self.base as *const ());
            f(self.params() as u64)
        }
    }
}
