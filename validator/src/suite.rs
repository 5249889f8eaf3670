//! Runs the selected scenarios, prints KTAP (or JSON) and compares what was
//! observed with what each scenario declares for the detected kernel.

use crate::ktap::Ktap;
use crate::runner::{self, Observed, ScenarioResult};
use crate::runner::{Expect, Scenario};
use crate::sys;
use serde_json::json;
use std::time::Duration;

pub struct Options {
    pub timeout: Duration,
    pub json: bool,
}

pub fn matches(observed: &Observed, expected: Expect) -> bool {
    matches!(
        (observed, expected),
        (Observed::Pass, Expect::Pass)
            | (Observed::Fail, Expect::Fail)
            | (Observed::Skip(_), Expect::Skip(_))
    )
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
    let patched = probe.is_ok();
    let kernel = if patched { "patched" } else { "vanilla" };
    let ktap = (!opts.json).then(|| Ktap::start(selected.len()));
    let header = format!(
        "validator {}: kernel {} detected as {kernel} (ARCH_GET_COMPAT = {}), CPU {}, timeout {} s per scenario",
        env!("CARGO_PKG_VERSION"),
        kernel_release(),
        sys::show(probe),
        sys::cpu_vendor(),
        opts.timeout.as_secs()
    );
    match &ktap {
        Some(k) => k.comment(&header),
        None => eprintln!("{header}"),
    }
    let mut ktap = ktap;
    let mut results: Vec<ScenarioResult> = Vec::new();
    for s in selected {
        if let Some(k) = &ktap {
            k.begin(s.id);
        }
        let result = runner::run_one(s, opts.timeout, &mut |line| {
            if let Some(k) = &ktap {
                k.diagnostic(s.id, line);
            }
        });
        if let Some(k) = &mut ktap {
            k.result(s.id, &result.observed);
        }
        runner::reap_orphans();
        results.push(result);
    }
    let mismatched: Vec<String> = results
        .iter()
        .filter(|r| !matches(&r.observed, r.scenario.expected(patched)))
        .map(|r| {
            format!(
                "{} (observed {}, declared {})",
                r.scenario.id,
                r.observed.word(),
                r.scenario.expected(patched).word()
            )
        })
        .collect();
    let summary = if mismatched.is_empty() {
        format!(
            "validator {}: all {} results match the declared {kernel} expectations",
            env!("CARGO_PKG_VERSION"),
            results.len()
        )
    } else {
        format!(
            "validator {}: {} result(s) differ from the declared {kernel} expectations: {}",
            env!("CARGO_PKG_VERSION"),
            mismatched.len(),
            mismatched.join(", ")
        )
    };
    match &ktap {
        Some(k) => {
            k.comment(&summary);
            k.finish();
        }
        None => {
            eprintln!("{summary}");
            println!("{}", results_json(&results, kernel, patched));
        }
    }
    i32::from(!mismatched.is_empty())
}

fn results_json(results: &[ScenarioResult], kernel: &str, patched: bool) -> String {
    let items: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let expected = r.scenario.expected(patched);
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
        "kernel": kernel,
        "release": kernel_release(),
        "results": items,
    }))
    .expect("serialize")
}
