//! `cargo xtask shell` and `cargo xtask gdb`: one kernel booted with QEMU
//! attached to this terminal, into busybox (initramfs/shell.list), or with
//! `--compat-shell` into the i386 busybox's sh started by compat-exec.

use crate::flags::RunOpts;
use crate::host::paths;
use crate::kernel::Variant;
use crate::pipeline::{self, Workspace};
use crate::vm::accel;
use crate::vm::boot;
use crate::vm::qemu::{Accelerator, Guest, Qemu};
use anyhow::Result;
use std::path::Path;

/// `cargo xtask shell`: the kernel with busybox, attached to this terminal;
/// `compat`: the shell is `compat-exec /bin/busybox-i386 sh`.
pub fn shell(variant: Variant, opts: &RunOpts, compat: bool) -> Result<i32> {
    let mode = if compat {
        Mode::CompatShell
    } else {
        Mode::Shell
    };
    interactive(variant, opts, mode)
}

/// `cargo xtask gdb`: QEMU waits for a debugger before the first instruction.
pub fn gdb(variant: Variant, opts: &RunOpts) -> Result<i32> {
    interactive(variant, opts, Mode::Gdb)
}

enum Mode {
    Shell,
    CompatShell,
    Gdb,
}

/// The kernel command line word initramfs/shell-init looks for (a word
/// with a dot: the kernel leaves it to /proc/cmdline, not to init's argv).
const COMPAT_SHELL_WORD: &str = "shell.compat";

/// Boots the busybox initramfs with QEMU attached to this terminal.
fn interactive(variant: Variant, opts: &RunOpts, mode: Mode) -> Result<i32> {
    let ws = Workspace::open(&opts.settings())?;
    let kernel = ws.kernel(variant)?;
    let programs = pipeline::programs()?;
    let initrd = ws.shell_initramfs(&programs)?;
    let qemu = Qemu::find()?;
    let (append, accel, extra): (&str, _, &[&str]) = match mode {
        Mode::Shell => ("", accel::first_choice(opts.accel), &[]),
        Mode::CompatShell => (COMPAT_SHELL_WORD, accel::first_choice(opts.accel), &[]),
        // TCG and nokaslr: breakpoints and symbols match vmlinux.
        Mode::Gdb => ("nokaslr", Accelerator::Tcg, &["-s", "-S"]),
    };
    let guest = Guest {
        extra_args: Vec::new(),
        qemu: &qemu,
        kernel: &kernel.boot_image,
        initrd: &initrd,
        append: append.into(),
    };
    match mode {
        Mode::Shell => println!(
            "Booting the {} kernel into busybox sh; `validator` runs the suite, `reboot -f` or Ctrl-A X leaves.",
            variant.name()
        ),
        Mode::CompatShell => println!(
            "Booting the {} kernel into `compat-exec /bin/busybox-i386 sh`: an i386 shell in a switched 64-bit process; `exit` or Ctrl-A X leaves.",
            variant.name()
        ),
        Mode::Gdb => print_gdb_help(&kernel.vmlinux),
    }
    let log = paths::results().join(format!("shell-{}-console.log", variant.name()));
    std::fs::create_dir_all(paths::results())?;
    let code = boot::interactive(&guest, accel, extra, &log)?;
    // What scrolled by in the terminal is checked too: a splat fails the shell.
    let console: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    if let Err(splat) = pipeline::ensure_no_splats(&console, &log) {
        eprintln!("{splat:#}");
        return Ok(1);
    }
    Ok(code)
}

fn print_gdb_help(vmlinux: &Path) {
    println!("QEMU is stopped at the first instruction, gdb stub on localhost:1234. In another terminal:");
    println!(
        "  gdb {} -ex 'target remote :1234' -ex 'hbreak start_kernel' -ex 'continue'",
        vmlinux.display()
    );
    println!("(use hbreak before paging is up: the kernel's virtual addresses are not mapped yet)");
    println!("(TCG, nokaslr, so symbols match; for source-level debugging add CONFIG_DEBUG_INFO_DWARF5=y to qemu/kernel.config.)");
}
