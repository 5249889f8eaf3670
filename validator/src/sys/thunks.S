/* The 32-bit blob and the 64<->32 gates (AT&T syntax), included by
 * thunks.rs with global_asm!: see the comment at the top of thunks.rs for
 * why it is position independent and copied below 4 GiB. */
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
