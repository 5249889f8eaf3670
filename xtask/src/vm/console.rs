//! What the guest console says about the kernel itself. A splat (oops,
//! BUG, WARNING, KASAN, UBSAN, KFENCE, lockdep, RCU stall, lockup, hung
//! task, kmemleak, a segfault of PID 1, panic) fails a run even when every
//! scenario passed, unless a line of the allow-list (qemu/splat-allowlist)
//! names it with a reason.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Strips a printk timestamp such as `[    1.234567] `.
fn without_timestamp(line: &str) -> &str {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some((stamp, after)) = rest.split_once(']') {
            if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
                return after.trim_start();
            }
        }
    }
    trimmed
}

/// How a splat's first line reads: at the start of the text, or anywhere
/// in it (lines with a prefix: `watchdog: BUG: soft lockup`, `init[1]: ...`).
enum At {
    Start(&'static str),
    Within(&'static str),
}

/// First match wins: specific kinds before the generic `BUG:`/`WARNING:`.
/// The texts are the kernel's own format strings (6.12: kernel/watchdog.c,
/// kernel/hung_task.c, kernel/rcu/tree_stall.h, mm/kmemleak.c, lib/ubsan.c,
/// mm/kasan/report.c, mm/kfence/report.c, kernel/locking/lockdep.c,
/// kernel/panic.c, arch/x86/mm/fault.c).
const SPLATS: [(At, &str); 21] = [
    (At::Start("Kernel panic - not syncing"), "panic"),
    (At::Within("BUG: KASAN:"), "KASAN"),
    (At::Within("BUG: KFENCE:"), "KFENCE"),
    (At::Within("BUG: soft lockup"), "soft lockup"),
    (At::Within("Watchdog detected hard LOCKUP"), "hard lockup"),
    (At::Within("UBSAN:"), "UBSAN"),
    (
        At::Start("WARNING: possible circular locking dependency"),
        "lockdep",
    ),
    (At::Start("WARNING: possible recursive locking"), "lockdep"),
    (At::Start("WARNING: inconsistent lock state"), "lockdep"),
    (At::Start("WARNING: suspicious RCU usage"), "lockdep (RCU)"),
    (At::Within("detected stalls on CPUs"), "RCU stall"),
    (At::Within("self-detected stall on CPU"), "RCU stall"),
    (At::Start("INFO: task "), "hung task"),
    (At::Within("new suspected memory leaks"), "kmemleak"),
    (At::Within("[1]: segfault at "), "segfault of PID 1"),
    (At::Start("Oops:"), "oops"),
    (At::Start("Unable to handle kernel"), "oops"),
    (
        At::Start("general protection fault"),
        "general protection fault",
    ),
    (At::Start("kernel BUG at"), "BUG"),
    (At::Start("BUG:"), "BUG"),
    (At::Start("WARNING:"), "WARNING"),
];

/// The kind of kernel problem a console line starts, if any.
pub fn kernel_problem(line: &str) -> Option<&'static str> {
    let text = without_timestamp(line);
    SPLATS
        .iter()
        .find(|(at, _)| match at {
            At::Start(p) => text.starts_with(p),
            At::Within(p) => text.contains(p),
        })
        .map(|(_, kind)| *kind)
}

/// A line printed by the guest kernel itself or by the validator, not by
/// the firmware (SeaBIOS, iPXE): `Linux version ...` (the first line the
/// console replays), any printk line with a timestamp, or `KTAP version`.
pub fn is_guest_kernel_line(line: &str) -> bool {
    let text = without_timestamp(line);
    text.len() != line.trim_start().len()
        || text.starts_with("Linux version ")
        || text.starts_with("KTAP version")
}

pub fn is_panic(line: &str) -> bool {
    kernel_problem(line) == Some("panic")
}

/// Lines that may appear on the console, each with the reason why: a
/// substring per line, `text  # reason`. Lines starting with `#` are
/// comments; an entry without a reason is an error.
#[derive(Debug, Default, Clone)]
pub struct Allowlist {
    entries: Vec<(String, String)>,
}

impl Allowlist {
    pub fn load(path: &Path) -> Result<Allowlist> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the splat allow-list {}", path.display()))?;
        Allowlist::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Allowlist> {
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(" # ") {
                Some((pattern, reason))
                    if !pattern.trim().is_empty() && !reason.trim().is_empty() =>
                {
                    entries.push((pattern.trim().to_string(), reason.trim().to_string()))
                }
                _ => bail!("line {}: `{line}` needs the form `text  # reason`", n + 1),
            }
        }
        Ok(Allowlist { entries })
    }

    /// The reason a line is allowed, if it is.
    pub fn allows(&self, line: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(pattern, _)| line.contains(pattern.as_str()))
            .map(|(_, reason)| reason.as_str())
    }
}

/// One splat: its kind, where it starts (1-based console line) and its
/// first lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splat {
    pub kind: &'static str,
    pub line: usize,
    pub first_lines: Vec<String>,
}

/// How many lines of a splat a report shows.
const SPLAT_LINES: usize = 8;

/// Every splat on `console` that the allow-list does not name.
pub fn splats(console: &[String], allow: &Allowlist) -> Vec<Splat> {
    console
        .iter()
        .enumerate()
        .filter_map(|(i, line)| Some((i, kernel_problem(line)?)))
        .filter(|(i, _)| allow.allows(&console[*i]).is_none())
        .map(|(i, kind)| Splat {
            kind,
            line: i + 1,
            first_lines: console[i..]
                .iter()
                .take(SPLAT_LINES)
                .take_while(|l| !l.trim().is_empty())
                .map(|l| l.trim_end().to_string())
                .collect(),
        })
        .collect()
}

impl Splat {
    /// `kernel WARNING (console line 120 of LOG):` and its first lines.
    pub fn describe(&self, log: &Path) -> String {
        format!(
            "kernel {} (line {} of {}):\n      | {}",
            self.kind,
            self.line,
            log.display(),
            self.first_lines.join("\n      | ")
        )
    }
}

#[cfg(test)]
mod tests;
