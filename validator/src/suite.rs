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

/// The verdict: the observed outcome is the declared one and, for a
/// declared `fail (REASON)`, the observed reason is that same token.
pub fn matches(observed: &Observed, expected: Expect) -> bool {
    expected.is_met_by(observed)
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

/// `id (observed fail (SIGSEGV), declared fail (EINVAL))` for each result
/// that differs from its declaration.
fn mismatches(results: &[ScenarioResult], kernel: Kernel) -> Vec<String> {
    results
        .iter()
        .filter(|r| !matches(&r.observed, r.scenario.expected(kernel)))
        .map(|r| {
            format!(
                "{} (observed {}, declared {})",
                r.scenario.id,
                r.observed,
                r.scenario.expected(kernel)
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
                "observed": r.observed.outcome().word(),
                "reason": r.observed.reason(),
                "expected": expected.word(),
                "expected_reason": expected.reason(),
                "matches": matches(&r.observed, expected),
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

/// The verdict logic against deliberately broken scenarios: each one is
/// declared like a real series scenario on vanilla, and each must come out
/// as not matching its declaration (UNEXPECTED), because it passes or
/// fails for another reason than the declared one.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{Outcome, Scenario};
    use crate::sys::{self, FOUR_GIB, PAGE};
    use crate::{ensure_because, fail};

    /// Declared like `compat_mmap_placement` on vanilla.
    fn declared(id: &'static str, run: fn() -> Outcome) -> &'static Scenario {
        Box::leak(Box::new(Scenario {
            id,
            description: "test",
            proves: "test",
            vanilla: Expect::fail("addr>=4G"),
            patched: Expect::PASS,
            changed_by: Some("ARCH_SET_COMPAT"),
            run,
        }))
    }

    fn verdict(s: &'static Scenario) -> (bool, String) {
        let _turn = runner::serial_for_tests();
        let r = runner::run_one(s, Duration::from_secs(2), &mut |_| {});
        let line = mismatches(std::slice::from_ref(&r), Kernel::Vanilla).join("");
        (matches(&r.observed, s.vanilla), line)
    }

    fn hintless_mmap() -> u64 {
        sys::mmap_anon(0, PAGE, 0).expect("mmap")
    }

    /// The real observable: a hint-less mmap of a 64-bit process lands
    /// above 4 GiB on any kernel without a switched mm.
    fn as_written() -> Outcome {
        let a = hintless_mmap();
        ensure_because!(a + PAGE <= FOUR_GIB, "addr>=4G", "mmap at {a:#x}");
        Ok(())
    }

    /// The same assertion reversed: passes on vanilla.
    fn assertion_reversed() -> Outcome {
        let a = hintless_mmap();
        ensure_because!(a + PAGE > FOUR_GIB, "addr>=4G", "mmap at {a:#x}");
        Ok(())
    }

    /// Fails, but on a check that names no observable (a typo'd helper).
    fn unnamed_failure() -> Outcome {
        fail!("something else went wrong")
    }

    /// Fails on another observable than the declared one.
    fn other_reason() -> Outcome {
        crate::fail_because!("EINVAL", "the call is missing")
    }

    fn crashes() -> Outcome {
        unsafe { std::ptr::read_volatile(0x10 as *const u8) };
        Ok(())
    }

    fn hangs() -> Outcome {
        loop {
            sys::sleep_ms(100);
        }
    }

    #[test]
    fn the_scenario_as_written_fails_as_declared() {
        let (ok, line) = verdict(declared("as_written", as_written));
        assert!(ok, "{line}");
        assert_eq!(line, "");
    }

    #[test]
    fn a_reversed_assertion_is_unexpected() {
        let (ok, line) = verdict(declared("reversed", assertion_reversed));
        assert!(!ok);
        assert_eq!(line, "reversed (observed pass, declared fail (addr>=4G))");
    }

    #[test]
    fn another_reason_a_crash_or_a_timeout_is_unexpected() {
        for (id, run, observed) in [
            (
                "unnamed",
                unnamed_failure as fn() -> Outcome,
                "fail (unnamed)",
            ),
            ("other", other_reason, "fail (EINVAL)"),
            ("crash", crashes, "fail (SIGSEGV)"),
            ("hang", hangs, "fail (timeout)"),
        ] {
            let (ok, line) = verdict(declared(id, run));
            assert!(!ok, "{id}");
            assert_eq!(
                line,
                format!("{id} (observed {observed}, declared fail (addr>=4G))")
            );
        }
    }
}
