//! compat-exec as a command: every bad input gets its exit status and a
//! message naming the problem, before anything changes; a good program
//! either runs (kernel with the series) or stops with the EINVAL message
//! (kernel without it). Programs are crafted byte by byte.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_GNU_STACK: u32 = 0x6474_e551;
const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;

struct Ph(u32, u32, u32, u32, u32, u32); // type, offset, vaddr, filesz, memsz, flags

/// ELF32 header and program headers in the first page, `body` at 0x1000.
fn elf(class: u8, machine: u16, e_type: u16, entry: u32, phs: &[Ph], body: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 0x1000];
    b[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', class, 1, 1]);
    let put16 = |b: &mut Vec<u8>, o: usize, v: u16| b[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    put16(&mut b, 16, e_type);
    put16(&mut b, 18, machine);
    put32(&mut b, 20, 1);
    put32(&mut b, 24, entry);
    put32(&mut b, 28, 52);
    put16(&mut b, 40, 52);
    put16(&mut b, 42, 32);
    put16(&mut b, 44, phs.len() as u16);
    for (i, p) in phs.iter().enumerate() {
        let o = 52 + 32 * i;
        for (k, v) in [p.0, p.1, p.2, p.2, p.3, p.4, p.5, 0x1000]
            .into_iter()
            .enumerate()
        {
            put32(&mut b, o + 4 * k, v);
        }
    }
    b.extend_from_slice(body);
    b
}

/// write(1, "hello from i386\n", 16); exit(42) — via int $0x80.
fn hello_code(base: u32) -> Vec<u8> {
    let msg = base + 34;
    let mut c = vec![0xb8, 4, 0, 0, 0, 0xbb, 1, 0, 0, 0, 0xb9];
    c.extend_from_slice(&msg.to_le_bytes());
    c.extend_from_slice(&[0xba, 16, 0, 0, 0, 0xcd, 0x80]);
    c.extend_from_slice(&[0xb8, 1, 0, 0, 0, 0xbb, 42, 0, 0, 0, 0xcd, 0x80]);
    assert_eq!(c.len(), 34);
    c.extend_from_slice(b"hello from i386\n");
    c
}

fn hello(e_type: u16, base: u32) -> Vec<u8> {
    let code = hello_code(base.wrapping_add(0x1000));
    let len = 0x1000 + code.len() as u32;
    let phs = [
        Ph(PT_LOAD, 0, base, len, len, R | X),
        Ph(PT_GNU_STACK, 0, 0, 0, 0, R | W),
    ];
    elf(1, 3, e_type, base.wrapping_add(0x1000), &phs, &code)
}

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_program(name: &str, bytes: &[u8], mode: u32) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_compat-exec"))
        .args(args)
        .output()
        .unwrap()
}

fn run_program(path: &Path) -> Output {
    run(&[path.as_os_str()])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit status and that stderr is exactly one line naming the
/// program and containing `what`.
fn assert_refused(o: &Output, status: i32, program: &Path, what: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(status), "stderr: {e}");
    assert!(o.stdout.is_empty());
    let expected = format!("compat-exec: {}: ", program.display());
    assert!(
        e.starts_with(&expected) && e.contains(what) && e.lines().count() == 1,
        "stderr: {e}"
    );
}

fn rejects(name: &str, bytes: &[u8], what: &str) {
    let p = write_program(name, bytes, 0o755);
    assert_refused(&run_program(&p), 126, &p, what);
}

#[test]
fn usage_without_a_program() {
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).starts_with("usage: compat-exec PROGRAM [ARGS...]"));
}

#[test]
fn missing_programs_exit_127() {
    let missing = scratch().join("no-such-program");
    assert_refused(&run_program(&missing), 127, &missing, "no such file");
    let o = Command::new(env!("CARGO_BIN_EXE_compat-exec"))
        .arg("no-such-program")
        .env("PATH", scratch())
        .output()
        .unwrap();
    assert_refused(&o, 127, Path::new("no-such-program"), "not found in PATH");
}

#[test]
fn files_that_cannot_run_exit_126() {
    let dir = scratch();
    assert_refused(&run_program(&dir), 126, &dir, "is a directory");
    let p = write_program("not-executable", &hello(2, 0x0804_8000), 0o644);
    assert_refused(&run_program(&p), 126, &p, "permission denied");
}

#[test]
fn rejects_what_is_not_an_i386_elf_executable() {
    rejects("script", b"#!/bin/sh\necho hi\n", "not an ELF file");
    rejects("empty", b"", "not an ELF file");
    let mut elf64 = hello(2, 0x0804_8000);
    elf64[4] = 2;
    rejects("elf64", &elf64, "ELFCLASS64 (a 64-bit program)");
    let mut x32 = hello(2, 0x0804_8000);
    x32[18] = 62;
    rejects("x32", &x32, "x32 program");
    let mut arm = hello(2, 0x0804_8000);
    arm[18] = 40;
    rejects("arm", &arm, "ELF machine 40, not EM_386");
    rejects(
        "object",
        &hello(1, 0x0804_8000),
        "relocatable object (ET_REL)",
    );
    rejects(
        "truncated",
        &hello(2, 0x0804_8000)[..40],
        "truncated ELF file",
    );
}

#[test]
fn rejects_dynamically_linked_programs() {
    let interp = b"/lib/ld-linux.so.2\0";
    let code = hello_code(0x0804_9000);
    let mut body = code.clone();
    body.extend_from_slice(interp);
    let len = 0x1000 + body.len() as u32;
    let phs = [
        Ph(
            PT_INTERP,
            0x1000 + code.len() as u32,
            0,
            interp.len() as u32,
            interp.len() as u32,
            R,
        ),
        Ph(PT_LOAD, 0, 0x0804_8000, len, len, R | X),
    ];
    let what = "dynamically linked (PT_INTERP /lib/ld-linux.so.2): compat-exec runs static i386 executables only";
    rejects(
        "dynamic-exec",
        &elf(1, 3, 2, 0x0804_9000, &phs, &body),
        what,
    );
    rejects("dynamic-pie", &elf(1, 3, 3, 0x0804_9000, &phs, &body), what);
}

#[test]
fn rejects_segments_that_do_not_fit_below_4gib() {
    rejects("above-4g", &hello(2, 0xffff_f000), "reaches above 4 GiB");
    rejects(
        "loader-area",
        &hello(2, 0xff00_0000),
        "compat-exec keeps for its trampoline and the 32-bit stack",
    );
    rejects(
        "task-size",
        &hello(2, 0xffff_d000),
        "compat-exec keeps for its trampoline",
    );
    rejects("null-page", &hello(2, 0), "below vm.mmap_min_addr");
}

#[test]
fn rejects_inconsistent_segments() {
    let mut b = hello(2, 0x0804_8000);
    b[52 + 16..52 + 20].copy_from_slice(&0x10_0000u32.to_le_bytes()); // filesz past EOF
    b[52 + 20..52 + 24].copy_from_slice(&0x10_0000u32.to_le_bytes());
    rejects("past-eof", &b, "extend past the end of the file");
    let mut b = hello(2, 0x0804_8000);
    b[24..28].copy_from_slice(&0x0900_0000u32.to_le_bytes());
    rejects(
        "bad-entry",
        &b,
        "entry point 0x9000000 is not inside an executable PT_LOAD segment",
    );
}

/// ARCH_GET_COMPAT: whether this kernel has the series at all.
fn kernel_has_series() -> bool {
    let mut out = 0u64;
    let r = unsafe { libc::syscall(libc::SYS_arch_prctl, 0x2006, &mut out as *mut u64) };
    r == 0
}

#[test]
fn a_valid_program_runs_or_stops_cleanly_without_the_series() {
    for (name, e_type, base) in [("hello-exec", 2, 0x0804_8000), ("hello-pie", 3, 0)] {
        let p = write_program(name, &hello(e_type, base), 0o755);
        let o = run_program(&p);
        if kernel_has_series() {
            assert_eq!(
                (o.status.code(), o.stdout.as_slice()),
                (Some(42), &b"hello from i386\n"[..]),
                "{}",
                stderr(&o)
            );
        } else {
            assert_eq!(o.status.code(), Some(125));
            assert_eq!(
                stderr(&o),
                "compat-exec: ARCH_SET_COMPAT is not supported by this kernel: EINVAL\n"
            );
            assert!(o.stdout.is_empty());
        }
    }
}
