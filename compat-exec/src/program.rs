//! Finding PROGRAM (a path, or a name looked up in PATH as execvp() does),
//! opening it and reading its ELF headers.

use crate::elf32::{self, Program};
use crate::Fail;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;

pub struct Opened {
    /// The path execve() would have been given: AT_EXECFN, argv-independent.
    pub path: PathBuf,
    /// Open without close-on-exec: it becomes the exe_fd of PR_SET_MM_MAP.
    pub fd: i32,
    pub program: Program,
}

pub fn open(name: &OsString) -> Result<Opened, Fail> {
    let path = resolve(name)?;
    let meta = std::fs::metadata(&path).map_err(|e| not_found_or(name, e))?;
    if meta.is_dir() {
        return Err(Fail::cannot_run(name, "is a directory"));
    }
    if !meta.file_type().is_file() || meta.file_type().is_fifo() {
        return Err(Fail::cannot_run(name, "not a regular file"));
    }
    if meta.permissions().mode() & 0o111 == 0 || !executable(&path) {
        return Err(Fail::cannot_run(name, "permission denied (not executable)"));
    }
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Fail::not_found(name, "NUL in name"))?;
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return Err(not_found_or(name, std::io::Error::last_os_error()));
    }
    let bytes = read_headers(fd, meta.len()).map_err(|e| Fail::cannot_run(name, e))?;
    let program = elf32::parse(&bytes, meta.len()).map_err(|e| Fail::cannot_run(name, e))?;
    Ok(Opened { path, fd, program })
}

fn not_found_or(name: &OsString, e: std::io::Error) -> Fail {
    match e.kind() {
        std::io::ErrorKind::NotFound => Fail::not_found(name, "no such file"),
        _ => Fail::cannot_run(name, e),
    }
}

fn executable(path: &std::path::Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// A name with a slash is a path; otherwise the first executable regular
/// file of that name in PATH.
fn resolve(name: &OsString) -> Result<PathBuf, Fail> {
    if name.is_empty() {
        return Err(Fail::not_found(name, "empty program name"));
    }
    if name.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file() && executable(p))
        .ok_or_else(|| Fail::not_found(name, "not found in PATH"))
}

/// The ELF header, the program header table and what PT_INTERP names: the
/// first 64 KiB, or more if the program headers lie beyond.
fn read_headers(fd: i32, file_len: u64) -> Result<Vec<u8>, String> {
    let mut want = file_len.min(64 * 1024) as usize;
    loop {
        let mut buf = vec![0u8; want];
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), want, 0) };
        if n < 0 {
            return Err(format!("read failed: {}", std::io::Error::last_os_error()));
        }
        buf.truncate(n as usize);
        let table_end = (buf.len() >= 46).then(|| {
            let phoff = u32::from_le_bytes(buf[28..32].try_into().unwrap()) as u64;
            let phnum = u16::from_le_bytes([buf[44], buf[45]]) as u64;
            (phoff + phnum * 32).min(file_len) as usize
        });
        match table_end {
            Some(end) if end > buf.len() && buf.len() == want => want = end,
            _ => return Ok(buf),
        }
    }
}
