//! Runs the selected scenarios, prints KTAP (or JSON) and compares what was
//! observed with what each scenario declares for the detected kernel.

use crate::ktap::Ktap;
use crate::options::Options;
use crate::runner::{self, Observed, ScenarioResult};
use crate::runner::{Expect, Scenario};
use crate::scenarios;
use crate::sys;
use contract::Kernel;
use serde_json::json;
use std::time::Duration;

pub fn matches(observed: &Observed, expected: Expect) -> bool {
    expected.is_met_by(observed.outcome())
}

pub fn kernel_release() -> String {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Returns the process exit status: 0 if every observed result equals the
/// declared expectation for this kernel, 1 otherwise.
pub fn run(selected: &[&'static Scenario], opts: &Options) -> i32 {
    let probe = sys::get_compat();
    let kernel = if probe.is_ok() {
        Kernel::Patched
    } else {
        Kernel::Vanilla
    };
    let mut ktap = (!opts.json).then(|| Ktap::start(selected.len()));
    comment(&ktap, &header(kernel, probe, opts.timeout));
    let results = run_all(selected, opts.timeout, &mut ktap);
    let mismatched = mismatches(&results, kernel);
    comment(&ktap, &summary(kernel, results.len(), &mismatched));
    match &ktap {
        Some(k) => k.finish(),
        None => println!("{}", results_json(&results, kernel)),
    }
    i32::from(!mismatched.is_empty())
}

/// A line about the whole run: a KTAP comment, or on stderr beside JSON.
fn comment(ktap: &Option<Ktap>, line: &str) {
    match ktap {
        Some(k) => k.comment(line),
        None => eprintln!("{line}"),
    }
}

fn header(kernel: Kernel, probe: Result<u64, i32>, timeout: Duration) -> String {
    format!(
        "validator {}: kernel {} detected as {} (ARCH_GET_COMPAT = {}), CPU {}, timeout {} s per scenario",
        env!("CARGO_PKG_VERSION"),
        kernel_release(),
        kernel.word(),
        sys::show(probe),
        sys::cpu_vendor(),
        timeout.as_secs()
    )
}

/// Runs each scenario in turn, streaming its KTAP lines as they come.
fn run_all(
    selected: &[&'static Scenario],
    timeout: Duration,
    ktap: &mut Option<Ktap>,
) -> Vec<ScenarioResult> {
    let mut results = Vec::new();
    for s in selected {
        if let Some(k) = ktap {
            k.begin(s.id);
        }
        let result = runner::run_one(s, scenarios::time_allowed(s, timeout), &mut |line| {
            if let Some(k) = ktap {
                k.diagnostic(s.id, line);
            }
        });
        if let Some(k) = ktap {
            k.result(s.id, &result.observed);
        }
        runner::reap_orphans();
        results.push(result);
    }
    results
}

/// `id (observed X, declared Y)` for each result that differs from its
/// declaration.
fn mismatches(results: &[ScenarioResult], kernel: Kernel) -> Vec<String> {
    results
        .iter()
        .filter(|r| !matches(&r.observed, r.scenario.expected(kernel)))
        .map(|r| {
            format!(
                "{} (observed {}, declared {})",
                r.scenario.id,
                r.observed.word(),
                r.scenario.expected(kernel).word()
            )
        })
        .collect()
}

fn summary(kernel: Kernel, count: usize, mismatched: &[String]) -> String {
    let kernel = kernel.word();
    if mismatched.is_empty() {
        format!(
            "validator {}: all {count} results match the declared {kernel} expectations",
            env!("CARGO_PKG_VERSION"),
        )
    } else {
        format!(
            "validator {}: {} result(s) differ from the declared {kernel} expectations: {}",
            env!("CARGO_PKG_VERSION"),
            mismatched.len(),
            mismatched.join(", ")
        )
    }
}

fn results_json(results: &[ScenarioResult], kernel: Kernel) -> String {
    let items: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let expected = r.scenario.expected(kernel);
            json!({
                "id": r.scenario.id,
                "observed": r.observed.word(),
                "expected": expected.word(),
                "matches": matches(&r.observed, expected),
                "skip_reason": match &r.observed { Observed::Skip(s) => json!(s), _ => json!(null) },
                "diagnostics": r.diagnostics,
            })
        })
        .collect();
    serde_json::to_string_pretty(&json!({
        "kernel": kernel.word(),
        "release": kernel_release(),
        "results": items,
    }))
    .expect("serialize")
}
