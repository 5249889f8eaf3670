//! Running external tools with errors that say what was being done.

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `cmd` and returns its stdout; stderr is kept for the error message.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` with its output appended to `log`. On failure the error holds
/// the last lines of the log and its path, so nothing needs re-running to see why.
pub fn logged(cmd: &mut Command, log: &Path) -> Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    writeln!(file, "$ {}", describe(cmd))?;
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    let mut child = crate::reaper::spawn(cmd)?;
    let status = child
        .child
        .wait()
        .with_context(|| format!("waiting for {}", describe(cmd)))?;
    if !status.success() {
        bail!(
            "{} failed ({status}); last lines of {}:\n{}",
            describe(cmd),
            log.display(),
            tail(log, 25)
        );
    }
    Ok(())
}

/// The last `n` lines of a text file (empty if it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn create_log(path: &Path) -> Result<()> {
    File::create(path).with_context(|| format!("cannot create log {}", path.display()))?;
    Ok(())
}

/// `program arg1 arg2` for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}
