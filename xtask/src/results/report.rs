//! Results: the validator's declared expectations and one run's report
//! (kept as JSON under target/results).

use crate::host::process::Cmd;
use crate::kernel::build::Kernel;
use crate::kernel::source::SourceInfo;
use crate::kernel::Variant;
use crate::results::ktap::{Ktap, Status};
use crate::vm::boot::{Boot, Ending};
use crate::vm::console;
use crate::vm::qemu::{Accelerator, Qemu};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a scenario declares it will do on a kernel: the words of
/// `validator --list --json` ("pass", "fail", "skip").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Pass,
    Fail,
    Skip,
}

impl Expect {
    pub fn word(self) -> &'static str {
        match self {
            Expect::Pass => "pass",
            Expect::Fail => "fail",
            Expect::Skip => "skip",
        }
    }

    /// The verdict of one scenario on one kernel.
    pub fn met_by(self, observed: Option<&Status>) -> bool {
        matches!(
            (self, observed),
            (Expect::Pass, Some(Status::Pass))
                | (Expect::Fail, Some(Status::Fail))
                | (Expect::Skip, Some(Status::Skip(_)))
        )
    }
}

/// One scenario as the validator declares it (`validator --list --json`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Declared {
    pub id: String,
    pub description: String,
    pub vanilla: Expect,
    pub patched: Expect,
    #[serde(default)]
    pub proves: String,
}

impl Declared {
    pub fn expected(&self, variant: Variant) -> Expect {
        match variant {
            Variant::Vanilla => self.vanilla,
            Variant::Patched => self.patched,
        }
    }
}

/// Asks the (host-runnable) validator binary what it will run and expects,
/// with the same filter the guest gets, so the two always agree.
pub fn declared(validator: &Path, filter: Option<&str>) -> Result<Vec<Declared>> {
    let mut list = Cmd::new(validator).args(["--list", "--json"]);
    if let Some(filter) = filter {
        list = list.arg("--filter").arg(filter);
    }
    let json = list
        .read()
        .context("asking the validator for its scenarios")?;
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
    pub source: SourceInfo,
    pub series_hash: String,
    pub kernel: Kernel,
    pub accelerator: Accelerator,
    pub qemu: Qemu,
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
    fn verdicts_compare_kinds() {
        assert!(Expect::Pass.met_by(Some(&Status::Pass)));
        assert!(Expect::Fail.met_by(Some(&Status::Fail)));
        assert!(Expect::Skip.met_by(Some(&Status::Skip("x".into()))));
        assert!(!Expect::Fail.met_by(Some(&Status::Pass)));
        assert!(!Expect::Pass.met_by(None));
    }

    #[test]
    fn declared_json_parses() {
        let json = r#"[{"id":"a","description":"d","vanilla":"pass","patched":"pass","proves":"p"},
                       {"id":"b","description":"d","vanilla":"fail","patched":"pass"}]"#;
        let list: Vec<Declared> = serde_json::from_str(json).unwrap();
        assert_eq!(list[1].expected(Variant::Vanilla), Expect::Fail);
        assert_eq!(list[1].expected(Variant::Patched), Expect::Pass);
        let back = serde_json::to_value(&list[1]).unwrap();
        assert_eq!(
            back["vanilla"], "fail",
            "serialized with the validator's words"
        );
    }

    #[test]
    fn an_unknown_expectation_word_is_refused() {
        let json = r#"[{"id":"a","description":"d","vanilla":"maybe","patched":"pass"}]"#;
        let err = serde_json::from_str::<Vec<Declared>>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("maybe"), "{err}");
    }
}
