//! validator: checks how an x86-64 kernel lets a 64-bit process run 32-bit
//! code, and whether it implements the compat-switch series
//! (ARCH_SET_COMPAT/ARCH_SET_NATIVE/ARCH_GET_COMPAT).
//!
//! As PID 1 it runs the whole suite and reboots; on a host it takes
//! `--list [--json|--markdown]`, `--filter PATTERN`, `--json`, `--timeout S`
//! and `--bench`.

mod bench;
mod catalogue;
mod ktap;
mod pid1;
mod runner;
mod scenarios;
mod suite;
mod sys;

use std::time::Duration;

const USAGE: &str = "usage: validator [--list [--json|--markdown]] [--filter PATTERN] [--json] [--timeout SECONDS] [--bench]
  (no options)      run every scenario, print KTAP v1; exit 0 iff all results match the declared
                    expectations for this kernel (vanilla or patched, probed with ARCH_GET_COMPAT)
  --list            list scenarios with declared results (--json: for the harness, --markdown: docs/scenarios.md)
  --filter PATTERN  only ids containing PATTERN (comma-separated alternatives, * wildcard)
  --json            print results as JSON instead of KTAP
  --timeout S       per-scenario timeout (default 20)
  --bench           micro-benchmarks as KTAP diagnostics
As PID 1: kernel command line validator.filter=P, validator.timeout=S, validator.shell (exec /bin/sh), validator.bench";

fn main() {
    if sys::getpid() == 1 {
        pid1::run();
    }
    let mut list = false;
    let mut json = false;
    let mut markdown = false;
    let mut bench = false;
    let mut filter: Option<String> = None;
    let mut timeout = 20u64;
    if std::env::args().nth(1).as_deref() == Some(scenarios::compat_process::EXEC_PROBE_ARG) {
        std::process::exit(scenarios::compat_process::exec_probe());
    }
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--list" => list = true,
            "--json" => json = true,
            "--markdown" => markdown = true,
            "--bench" => bench = true,
            "--filter" => filter = args.next(),
            "--timeout" => timeout = args.next().and_then(|t| t.parse().ok()).unwrap_or(timeout),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                if let Some(f) = other.strip_prefix("--filter=") {
                    filter = Some(f.to_string());
                } else {
                    eprintln!("unknown argument {other}\n{USAGE}");
                    std::process::exit(2);
                }
            }
        }
    }
    let selected = scenarios::select(filter.as_deref());
    if list {
        if markdown {
            print!("{}", catalogue::markdown(&selected));
        } else if json {
            println!("{}", catalogue::list_json(&selected));
        } else {
            print!("{}", catalogue::list_text(&selected));
        }
        return;
    }
    if bench {
        std::process::exit(bench::run());
    }
    let code = suite::run(
        &selected,
        &suite::Options {
            timeout: Duration::from_secs(timeout),
            json,
        },
    );
    std::process::exit(code);
}
