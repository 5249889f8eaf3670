//! Results: the validator's declared expectations, one run's report (kept
//! as JSON under target/results), and the tables printed for people.

use crate::ktap::{Ktap, Status};
use crate::qemu::{Boot, Ending};
use crate::{cmd, console, Variant};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One scenario as the validator declares it (`validator --list --json`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Declared {
    pub id: String,
    pub description: String,
    pub vanilla: String,
    pub patched: String,
    #[serde(default)]
    pub proves: String,
}

impl Declared {
    pub fn expected(&self, variant: Variant) -> &str {
        match variant {
            Variant::Vanilla => &self.vanilla,
            Variant::Patched => &self.patched,
        }
    }
}

/// Asks the (host-runnable) validator binary what it will run and expects,
/// with the same filter the guest gets, so the two always agree.
/// The scenarios the run will report: the same filter, and the stress
/// scenario only when `--stress` asks for it.
pub fn declared(validator: &Path, opts: &crate::RunOpts) -> Result<Vec<Declared>> {
    let mut list = Command::new(validator);
    list.args(["--list", "--json"]);
    if let Some(filter) = &opts.filter {
        list.arg("--filter").arg(filter);
    }
    if let Some(stress) = &opts.stress {
        list.arg("--stress").arg(stress);
    }
    let json = cmd::output(&mut list).context("asking the validator for its scenarios")?;
    serde_json::from_str(&json).context("reading `validator --list --json`")
}

/// Why a run cannot be trusted, besides scenario results.
pub fn run_problems(boot: &Boot, ktap: &Ktap, timeout_secs: u64) -> Vec<String> {
    let mut problems: Vec<String> = boot
        .console
        .iter()
        .filter(|line| console::kernel_problem(line).is_some())
        .map(|line| format!("kernel: {}", line.trim()))
        .collect();
    let running = ktap
        .last_started
        .as_deref()
        .map(|id| format!(" while scenario {id} was running"))
        .unwrap_or_default();
    match &boot.ending {
        Ending::TimedOut => problems.push(format!(
            "timed out after {timeout_secs}s{running}; QEMU was killed"
        )),
        Ending::SilentKvm => problems.push("KVM guest printed nothing".into()),
        Ending::Exited { .. } if !ktap.complete() => problems.push(format!(
            "the guest stopped before the validator finished{running} ({} of {} results)",
            ktap.results.len(),
            ktap.plan
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into())
        )),
        Ending::Exited { .. } => {}
    }
    problems
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub variant: Variant,
    pub source: crate::source::SourceInfo,
    pub series_hash: String,
    pub kernel: crate::kbuild::Kernel,
    pub accelerator: crate::qemu::Accelerator,
    pub qemu: crate::qemu::Qemu,
    pub cpu: String,
    pub ending: Ending,
    pub problems: Vec<String>,
    pub ktap: Ktap,
    pub seconds_to_first_ktap: Option<f64>,
    pub seconds_boot_total: f64,
    pub console_log: PathBuf,
    pub console_tail: Vec<String>,
}

impl RunReport {
    pub fn status_of(&self, id: &str) -> Option<&Status> {
        self.ktap.get(id).map(|r| &r.status)
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The verdict of one scenario on one kernel.
pub fn matches(observed: Option<&Status>, expected: &str) -> bool {
    observed.is_some_and(|s| s.word() == expected)
}

pub fn cell(observed: Option<&Status>) -> String {
    match observed {
        Some(Status::Pass) => "pass".into(),
        Some(Status::Fail) => "FAIL".into(),
        Some(Status::Skip(_)) => "skip".into(),
        None => "(none)".into(),
    }
}

/// A table with a header row, rendered aligned for a terminal or as Markdown.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn terminal(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |row: &Vec<String>| {
            row.iter()
                .zip(&widths)
                .map(|(text, w)| format!("{text:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let rule = widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ");
        let mut out = vec![line(&self.header), rule];
        out.extend(self.rows.iter().map(line));
        out.join("\n") + "\n"
    }

    pub fn markdown(&self) -> String {
        let esc = |s: &String| s.replace('|', "\\|");
        let row =
            |r: &Vec<String>| format!("| {} |", r.iter().map(esc).collect::<Vec<_>>().join(" | "));
        let mut out = vec![
            row(&self.header),
            format!("|{}", "---|".repeat(self.header.len())),
        ];
        out.extend(self.rows.iter().map(row));
        out.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(lines: &[&str], ending: Ending) -> Boot {
        Boot {
            ending,
            console: lines.iter().map(|s| s.to_string()).collect(),
            seconds_to_first_output: Some(0.1),
            seconds_to_first_ktap: Some(0.5),
            seconds_total: 1.0,
            qemu_stderr: String::new(),
        }
    }

    #[test]
    fn a_clean_complete_run_has_no_problems() {
        let lines = [
            "KTAP version 1",
            "1..1",
            "# start a",
            "ok 1 a",
            "# Totals: pass:1",
        ];
        let ktap = Ktap::parse(&lines.join("\n"));
        assert!(
            run_problems(&boot(&lines, Ending::Exited { code: Some(0) }), &ktap, 60).is_empty()
        );
    }

    #[test]
    fn an_oops_fails_the_run_even_when_scenarios_passed() {
        let lines = [
            "KTAP version 1",
            "1..1",
            "WARNING: CPU: 0 PID: 1 at x.c:1",
            "ok 1 a",
            "# Totals: pass:1",
        ];
        let ktap = Ktap::parse(&lines.join("\n"));
        let problems = run_problems(&boot(&lines, Ending::Exited { code: Some(0) }), &ktap, 60);
        assert_eq!(problems, ["kernel: WARNING: CPU: 0 PID: 1 at x.c:1"]);
    }

    #[test]
    fn a_timeout_names_the_running_scenario() {
        let lines = [
            "KTAP version 1",
            "1..2",
            "# start a",
            "ok 1 a",
            "# start hangs",
        ];
        let ktap = Ktap::parse(&lines.join("\n"));
        let problems = run_problems(&boot(&lines, Ending::TimedOut), &ktap, 30);
        assert_eq!(
            problems,
            ["timed out after 30s while scenario hangs was running; QEMU was killed"]
        );
    }

    #[test]
    fn an_early_exit_is_reported() {
        let lines = [
            "KTAP version 1",
            "1..2",
            "# start a",
            "Kernel panic - not syncing: Attempted to kill init!",
        ];
        let ktap = Ktap::parse(&lines.join("\n"));
        let problems = run_problems(&boot(&lines, Ending::Exited { code: Some(0) }), &ktap, 30);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("Kernel panic"));
        assert!(
            problems[1].contains("while scenario a was running (0 of 2 results)"),
            "{problems:?}"
        );
    }

    #[test]
    fn verdicts_compare_words() {
        assert!(matches(Some(&Status::Pass), "pass"));
        assert!(matches(Some(&Status::Fail), "fail"));
        assert!(matches(Some(&Status::Skip("x".into())), "skip"));
        assert!(!matches(Some(&Status::Pass), "fail"));
        assert!(!matches(None, "pass"));
    }

    #[test]
    fn tables_render_for_terminal_and_markdown() {
        let t = Table {
            header: vec!["scenario".into(), "vanilla".into()],
            rows: vec![vec!["a|b".into(), "pass".into()]],
        };
        assert_eq!(
            t.terminal(),
            "scenario  vanilla\n--------  -------\na|b       pass\n"
        );
        assert_eq!(
            t.markdown(),
            "| scenario | vanilla |\n|---|---|\n| a\\|b | pass |\n"
        );
    }

    #[test]
    fn declared_json_parses() {
        let json = r#"[{"id":"a","description":"d","vanilla":"pass","patched":"pass","proves":"p"},
                       {"id":"b","description":"d","vanilla":"fail","patched":"pass"}]"#;
        let list: Vec<Declared> = serde_json::from_str(json).unwrap();
        assert_eq!(list[1].expected(Variant::Vanilla), "fail");
        assert_eq!(list[1].expected(Variant::Patched), "pass");
    }
}
