//! The diagnostics channel between a scenario (in a forked child) and the
//! runner (in the parent): one line per diagnostic through a pipe, so that
//! the parent sees each line as it is written, even if the child then hangs
//! or crashes. A skip reason or a failure's reason token travels on the same
//! pipe behind a marker byte.

use std::io::Write;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// Prefix of the pipe line that carries a skip reason.
const SKIP_MARK: &str = "\u{1}SKIP ";
/// Prefix of the pipe line that carries a failure's reason token.
const REASON_MARK: &str = "\u{1}REASON ";

/// The pipe's write end in a scenario child; -1 elsewhere.
static DIAG_FD: AtomicI32 = AtomicI32::new(-1);

/// Emits one diagnostic line: to the runner's pipe inside a scenario,
/// to stderr otherwise.
pub fn emit(line: &str) {
    let fd = DIAG_FD.load(Ordering::Relaxed);
    let text = format!("{}\n", line.replace('\n', " "));
    if fd >= 0 {
        write_all_fd(fd, text.as_bytes());
    } else {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

/// Child side: from now on `emit` writes to `fd`.
pub(super) fn connect(fd: RawFd) {
    DIAG_FD.store(fd, Ordering::Relaxed);
}

/// Child side: tells the parent why the scenario skipped.
pub(super) fn send_skip(reason: &str) {
    emit(&format!("{SKIP_MARK}{reason}"));
}

/// Child side: tells the parent the reason token of its failure.
pub(super) fn send_reason(reason: &str) {
    emit(&format!("{REASON_MARK}{reason}"));
}

fn write_all_fd(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// One line received by the parent.
pub(super) enum Line {
    Diagnostic(String),
    Skip(String),
    Reason(String),
}

/// Parent side: reassembles lines from the chunks `read` returns.
#[derive(Default)]
pub(super) struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete line, if one has arrived.
    pub(super) fn next_line(&mut self) -> Option<Line> {
        let nl = self.pending.iter().position(|&b| b == b'\n')?;
        let line: Vec<u8> = self.pending.drain(..=nl).collect();
        let text = String::from_utf8_lossy(&line[..nl]).trim_end().to_string();
        Some(if let Some(reason) = text.strip_prefix(SKIP_MARK) {
            Line::Skip(reason.to_string())
        } else if let Some(reason) = text.strip_prefix(REASON_MARK) {
            Line::Reason(reason.to_string())
        } else {
            Line::Diagnostic(text)
        })
    }
}
