//! compat-exec PROGRAM [ARGS...]: runs an unmodified static i386 ELF
//! executable inside this 64-bit process, which ARCH_SET_COMPAT turns into
//! an ia32 task, as if PROGRAM had been execve()d: same argv, environment,
//! descriptors (close-on-exec ones closed), exit status.
//!
//! Exit status, when PROGRAM does not run (as env(1) and shells use them):
//!   125  compat-exec itself failed: usage, the kernel lacks the interface
//!        ("ARCH_SET_COMPAT is not supported by this kernel: EINVAL"), or a
//!        step after the switch failed
//!   126  PROGRAM was found but cannot be run: not an ELF file, not i386,
//!        dynamically linked, segments that do not fit below 4 GiB, no
//!        permission
//!   127  PROGRAM was not found
//!
//! No Rust `main` (`no_main`): Rust's runtime setup would set SIGPIPE to ignored and
//! install SIGSEGV handlers, which PROGRAM would then inherit.
#![cfg_attr(not(test), no_main)]
#![cfg_attr(test, allow(dead_code))]

mod abi;
mod elf32;
mod exec;
mod load;
mod maps;
mod process;
mod program;
mod stack;
mod trampoline;
mod vdso32;

use std::ffi::OsString;

/// Why compat-exec stops, and with which exit status.
#[derive(Debug)]
pub struct Fail {
    pub status: i32,
    pub message: String,
}

impl Fail {
    pub fn internal(message: impl Into<String>) -> Fail {
        Fail {
            status: 125,
            message: message.into(),
        }
    }

    pub fn cannot_run(program: &OsString, why: impl std::fmt::Display) -> Fail {
        Fail {
            status: 126,
            message: format!("{}: {why}", program.to_string_lossy()),
        }
    }

    pub fn not_found(program: &OsString, why: impl std::fmt::Display) -> Fail {
        Fail {
            status: 127,
            message: format!("{}: {why}", program.to_string_lossy()),
        }
    }
}

#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: compat-exec PROGRAM [ARGS...]\n\nRuns a static i386 ELF program in this 64-bit process after ARCH_SET_COMPAT.");
        return 125;
    }
    let Err(fail) = exec::run(&args);
    eprintln!("compat-exec: {}", fail.message);
    fail.status
}
