//! Results: the validator's declared expectations and one run's report
//! (kept as JSON under target/results).

use crate::host::process::Cmd;
use crate::kernel::build::Kernel;
use crate::kernel::source::SourceInfo;
use crate::kernel::Variant;
use crate::results::ktap::{Ktap, Status};
use crate::vm::boot::{Boot, Ending};
use crate::vm::console::{self, Allowlist};
use crate::vm::qemu::{Accelerator, Qemu};
use anyhow::{Context, Result};
use contract::{list_json, Expectation};
use serde::ser::SerializeStruct;
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What a scenario declares for a kernel, in the contract's terms.
pub type Expect = Expectation<String>;

/// One scenario as the validator declares it (`validator --list --json`,
/// read through the `contract` crate's words and field names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub id: String,
    pub description: String,
    pub vanilla: Expect,
    pub patched: Expect,
    pub proves: String,
    /// Words of the subject of the patch that changes this scenario's
    /// result (None: declared alike on both kernels).
    pub changed_by: Option<String>,
}

impl Declared {
    pub fn expected(&self, variant: Variant) -> &Expect {
        match variant {
            Variant::Vanilla => &self.vanilla,
            Variant::Patched => &self.patched,
        }
    }

    /// One object of the `--list --json` array.
    fn from_json(item: &Value) -> Result<Declared> {
        let text = |field: &str| -> Result<String> {
            item.get(field)
                .and_then(Value::as_str)
                .map(String::from)
                .with_context(|| format!("no text field `{field}`"))
        };
        let expect = |kernel: contract::Kernel| -> Result<Expect> {
            let word = text(list_json::expectation(kernel))?;
            let reason = item
                .get(list_json::reason(kernel))
                .and_then(Value::as_str)
                .map(String::from);
            Expectation::parse(&word, reason)
                .with_context(|| format!("the {} expectation", kernel.word()))
        };
        let id = text(list_json::ID)?;
        let declared = (|| -> Result<Declared> {
            Ok(Declared {
                description: text(list_json::DESCRIPTION)?,
                vanilla: expect(contract::Kernel::Vanilla)?,
                patched: expect(contract::Kernel::Patched)?,
                proves: text(list_json::PROVES).unwrap_or_default(),
                changed_by: text(list_json::CHANGED_BY).ok(),
                id: id.clone(),
            })
        })();
        declared.with_context(|| format!("scenario {id}"))
    }
}

/// The declaration as the reports keep it: the fields of `--list --json`
/// (each expectation's word and, for fail and skip, its reason).
impl Serialize for Declared {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_struct("Declared", 8)?;
        map.serialize_field(list_json::ID, &self.id)?;
        map.serialize_field(list_json::DESCRIPTION, &self.description)?;
        for (kernel, expected) in [
            (contract::Kernel::Vanilla, &self.vanilla),
            (contract::Kernel::Patched, &self.patched),
        ] {
            map.serialize_field(list_json::expectation(kernel), expected.word())?;
            map.serialize_field(list_json::reason(kernel), &expected.reason())?;
        }
        map.serialize_field(list_json::PROVES, &self.proves)?;
        map.serialize_field(list_json::CHANGED_BY, &self.changed_by)?;
        map.end()
    }
}

/// Reads the whole `--list --json` output.
pub fn parse_declared(json: &str) -> Result<Vec<Declared>> {
    let items: Vec<Value> = serde_json::from_str(json).context("not a JSON array")?;
    items.iter().map(Declared::from_json).collect()
}

/// Asks the (host-runnable) validator binary what it will run and expects,
/// with the same filter the guest gets, so the two always agree.
/// The scenarios a run will report: with the run's filter, with the
/// stress scenario when the run asks for one (`stress`: its duration), and
/// with the criu_* scenarios when `criu` (the criu flavour).
pub fn declared(
    validator: &Path,
    filter: Option<&str>,
    stress: Option<&str>,
    criu: bool,
) -> Result<Vec<Declared>> {
    let mut list = Cmd::new(validator).args(["--list", "--json"]);
    if let Some(filter) = filter {
        list = list.arg("--filter").arg(filter);
    }
    if let Some(stress) = stress {
        list = list.arg("--stress").arg(stress);
    }
    if criu {
        list = list.arg("--criu");
    }
    let json = list
        .read()
        .context("asking the validator for its scenarios")?;
    parse_declared(&json).context("reading `validator --list --json`")
}

/// Why a run cannot be trusted, besides scenario results. A boot that
/// ended badly carries how QEMU ended and what it said on stderr.
pub fn run_problems(
    boot: &Boot,
    ktap: &Ktap,
    timeout_secs: u64,
    allow: &Allowlist,
    console_log: &Path,
) -> Vec<String> {
    let mut problems: Vec<String> = console::splats(&boot.console, allow)
        .iter()
        .map(|splat| splat.describe(console_log))
        .collect();
    let running = ktap
        .last_started
        .as_deref()
        .map(|id| format!(" while scenario {id} was running"))
        .unwrap_or_default();
    let qemu = qemu_said(boot);
    match &boot.ending {
        Ending::TimedOut => problems.push(format!(
            "timed out after {timeout_secs}s{running}; QEMU was killed{qemu}"
        )),
        Ending::KvmFailed { reason } => problems.push(format!("KVM failed: {reason}")),
        Ending::Exited { .. } if !ktap.complete() => problems.push(format!(
            "the guest stopped before the validator finished{running} ({} of {} results); QEMU {}{qemu}",
            ktap.results.len(),
            ktap.plan
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into()),
            boot.qemu_status,
        )),
        Ending::Exited { code } if *code != Some(0) => problems.push(format!(
            "QEMU ended with {} after a complete run{qemu}",
            boot.qemu_status
        )),
        Ending::Exited { .. } => {}
    }
    problems
}

/// `; QEMU's stderr: <its last lines>` or `; QEMU's stderr was empty`.
fn qemu_said(boot: &Boot) -> String {
    let lines: Vec<&str> = boot
        .qemu_stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return "; QEMU's stderr was empty".into();
    }
    let last = &lines[lines.len().saturating_sub(5)..];
    format!("; QEMU's stderr: {}", last.join(" / "))
}

#[derive(Debug, Serialize, serde::Deserialize)]
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
    /// What the guest was given besides the kernel: the initramfs' sha256
    /// and the kernel command line. With `kernel.build_key`, what makes
    /// another run the same run (a bundle reuses a report that matches).
    #[serde(default)]
    pub guest_inputs: String,
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

    fn none() -> Allowlist {
        Allowlist::default()
    }

    fn log() -> &'static Path {
        Path::new("console.log")
    }

    fn boot(lines: &[&str], ending: Ending) -> Boot {
        Boot {
            ending,
            console: lines.iter().map(|s| s.to_string()).collect(),
            seconds_to_first_output: Some(0.1),
            seconds_to_kernel: Some(0.1),
            seconds_to_first_ktap: Some(0.5),
            seconds_total: 1.0,
            qemu_status: "exit code 0".into(),
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
        assert!(run_problems(
            &boot(&lines, Ending::Exited { code: Some(0) }),
            &ktap,
            60,
            &none(),
            log()
        )
        .is_empty());
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
        let problems = run_problems(
            &boot(&lines, Ending::Exited { code: Some(0) }),
            &ktap,
            60,
            &none(),
            log(),
        );
        assert_eq!(
            problems,
            ["kernel WARNING (line 3 of console.log):\n      | WARNING: CPU: 0 PID: 1 at x.c:1\n      \
              | ok 1 a\n      | # Totals: pass:1"]
        );
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
        let problems = run_problems(&boot(&lines, Ending::TimedOut), &ktap, 30, &none(), log());
        assert_eq!(
            problems,
            ["timed out after 30s while scenario hangs was running; QEMU was killed; QEMU's stderr was empty"]
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
        let problems = run_problems(
            &boot(&lines, Ending::Exited { code: Some(0) }),
            &ktap,
            30,
            &none(),
            log(),
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("Kernel panic"));
        assert!(
            problems[1].contains("while scenario a was running (0 of 2 results)"),
            "{problems:?}"
        );
    }

    #[test]
    fn qemu_status_and_stderr_are_part_of_every_failure() {
        let lines = ["KTAP version 1", "1..2", "# start a"];
        let ktap = Ktap::parse(&lines.join("\n"));
        let mut b = boot(&lines, Ending::Exited { code: None });
        b.qemu_status = "killed by SIGSEGV".into();
        b.qemu_stderr = "qemu-system-x86_64: warning: x\nqemu: fatal: triple fault\n".into();
        let problems = run_problems(&b, &ktap, 30, &none(), log());
        assert_eq!(
            problems,
            ["the guest stopped before the validator finished while scenario a was running (0 of 2 results); \
              QEMU killed by SIGSEGV; QEMU's stderr: qemu-system-x86_64: warning: x / qemu: fatal: triple fault"]
        );
        b.ending = Ending::TimedOut;
        assert!(run_problems(&b, &ktap, 30, &none(), log())[0].ends_with(
            "QEMU's stderr: qemu-system-x86_64: warning: x / qemu: fatal: triple fault"
        ));
        let complete = ["KTAP version 1", "1..1", "ok 1 a", "# Totals: pass:1"];
        let mut b = boot(&complete, Ending::Exited { code: Some(1) });
        b.qemu_status = "exit code 1".into();
        let problems = run_problems(&b, &Ktap::parse(&complete.join("\n")), 30, &none(), log());
        assert_eq!(
            problems,
            ["QEMU ended with exit code 1 after a complete run; QEMU's stderr was empty"]
        );
        let b = boot(
            &[],
            Ending::KvmFailed {
                reason: "QEMU ended (killed by SIGABRT)".into(),
            },
        );
        assert_eq!(
            run_problems(&b, &Ktap::default(), 30, &none(), log()),
            ["KVM failed: QEMU ended (killed by SIGABRT)"]
        );
    }

    #[test]
    fn verdicts_compare_outcomes() {
        let skip = Expect::skip("no reason needed to match".into());
        let einval = Expect::fail("EINVAL".into());
        assert!(Expect::PASS.is_met_by(&Status::Pass.observation()));
        assert!(einval.is_met_by(&Status::Fail("EINVAL".into()).observation()));
        assert!(!einval.is_met_by(&Status::Fail("SIGSEGV".into()).observation()));
        assert!(skip.is_met_by(&Status::Skip("x".into()).observation()));
        assert!(!einval.is_met_by(&Status::Pass.observation()));
    }

    #[test]
    fn declared_json_parses() {
        let json = r#"[{"id":"a","description":"d","vanilla":"pass","patched":"pass","proves":"p"},
                       {"id":"b","description":"d","vanilla":"skip","vanilla_reason":"no ia32",
                        "patched":"pass","changed_by":"Add X"}]"#;
        let list = parse_declared(json).unwrap();
        assert_eq!(list[1].expected(Variant::Vanilla).word(), "skip");
        assert_eq!(
            list[1]
                .expected(Variant::Vanilla)
                .reason()
                .map(String::as_str),
            Some("no ia32")
        );
        assert_eq!(*list[1].expected(Variant::Patched), Expect::PASS);
        assert_eq!(list[0].changed_by, None);
        assert_eq!(list[1].changed_by.as_deref(), Some("Add X"));
        let back = serde_json::to_value(&list[1]).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"id":"b","description":"d","vanilla":"skip","vanilla_reason":"no ia32",
                "patched":"pass","patched_reason":null,"proves":"","changed_by":"Add X"}),
            "reports keep the fields of --list --json"
        );
    }

    #[test]
    fn contract_breaches_are_named() {
        let err = |json: &str| format!("{:#}", parse_declared(json).unwrap_err());
        let e = err(r#"[{"id":"a","description":"d","vanilla":"maybe","patched":"pass"}]"#);
        assert!(e.contains("scenario a") && e.contains("maybe"), "{e}");
        let e = err(r#"[{"id":"a","description":"d","vanilla":"skip","patched":"pass"}]"#);
        assert!(
            e.contains("vanilla") && e.contains("without a reason"),
            "{e}"
        );
        let e = err(r#"[{"id":"a","vanilla":"pass","patched":"pass"}]"#);
        assert!(e.contains("`description`"), "{e}");
        assert!(err("{}").contains("not a JSON array"));
    }
}
