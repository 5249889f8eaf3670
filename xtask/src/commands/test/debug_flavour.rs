//! End-to-end: the reduced form of the debug-kernel runs (docs/stress.md).
//! The patched kernel of the debug flavour (KASAN, lockdep, DEBUG_VM,
//! UBSAN, KFENCE, kmemleak) runs the whole suite and 20 s of stress: it
//! must announce its detectors, behave as declared, and end with no
//! invariant failure, splat or kmemleak report. The full form (both
//! kernels, 10 seeds of 60 s) is a command of its own; its latest results
//! are in docs/stress.md.

use crate::flags::RunOpts;
use crate::host::paths;
use crate::results::report::RunReport;
use crate::results::stress;
use crate::vm::console;
use anyhow::{ensure, Context, Result};

pub fn check(opts: &RunOpts) -> Result<()> {
    let run_opts = RunOpts {
        filter: None,
        ..opts.clone()
    };
    let args = [
        "run",
        "--variant",
        "patched",
        "--flavour",
        "debug",
        "--stress",
        "20s",
        "--seed",
        "1",
    ];
    let code = super::e2e::xtask(&args, &run_opts)?.run()?.code();
    ensure!(
        code == Some(0),
        "the whole suite with 20 s of stress on the patched debug kernel exited {code:?}, not 0"
    );
    let path = paths::results().join("patched-debug/report.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let report: RunReport =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let console_text = std::fs::read_to_string(&report.console_log)
        .with_context(|| format!("reading {}", report.console_log.display()))?;
    let lines: Vec<String> = console_text.lines().map(String::from).collect();
    let silent = console::debug_detectors_silent(&lines);
    ensure!(
        silent.is_empty(),
        "the debug kernel did not announce {silent:?} at boot ({})",
        report.console_log.display()
    );
    let figures = stress::figures(&report);
    ensure!(
        figures.operations.is_some_and(|n| n > 0)
            && figures.invariant_failures == Some(0)
            && figures.splats == 0
            && figures.kmemleak == 0,
        "stress on the patched debug kernel: {figures}"
    );
    eprintln!("    stress on the patched debug kernel: {figures}");
    Ok(())
}
