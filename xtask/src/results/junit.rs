//! JUnit XML for machines (CI dashboards): one testsuite per kernel, one
//! testcase per scenario with what it observed and its diagnostics. A
//! scenario that ran and did not do what it declares is a `<failure>`; a
//! scenario without a result (the guest stopped, timed out, KVM failed) is
//! an `<error>`, as are the run's own problems (splats, a timeout), in a
//! testcase `(run)` per kernel.

use crate::results::report::{Declared, RunReport};
use crate::results::table::met;
use anyhow::{Context, Result};
use std::fmt::Write;
use std::path::Path;

/// The document for these runs.
pub fn render(declared: &[Declared], runs: &[&RunReport]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for run in runs {
        suite(&mut out, declared, run);
    }
    out.push_str("</testsuites>\n");
    out
}

pub fn write(path: &Path, declared: &[Declared], runs: &[&RunReport]) -> Result<()> {
    std::fs::write(path, render(declared, runs))
        .with_context(|| format!("cannot write the JUnit file {}", path.display()))
}

fn suite(out: &mut String, declared: &[Declared], run: &RunReport) {
    let kernel = run.variant.name();
    let mut cases = String::new();
    let (mut failures, mut errors, mut skipped) = (0, 0, 0);
    for d in declared {
        let expected = d.expected(run.variant);
        let result = run.ktap.get(&d.id);
        let body = match result {
            None => {
                errors += 1;
                let why = if run.problems.is_empty() {
                    "the validator printed no result for it".to_string()
                } else {
                    run.problems.join("; ")
                };
                element(
                    "error",
                    &format!("no result (declared {expected}): {why}"),
                    "",
                )
            }
            Some(r) if !met(expected, Some(&r.status)) => {
                failures += 1;
                let message = format!("observed {}, declared {expected}", r.status.observation());
                element("failure", &message, &r.diagnostics.join("\n"))
            }
            Some(r) if expected.word() == "skip" => {
                skipped += 1;
                format!(
                    "<skipped message=\"{}\"/>",
                    escape(&r.status.observation().to_string())
                )
            }
            Some(_) => String::new(),
        };
        let out_text = result.map(|r| r.diagnostics.join("\n")).unwrap_or_default();
        let _ = writeln!(
            cases,
            "    <testcase classname=\"compat.{kernel}\" name=\"{}\">{body}{}</testcase>",
            escape(&d.id),
            system_out(&format!("observed: {}\n{out_text}", observed(run, &d.id))),
        );
    }
    if !run.problems.is_empty() {
        errors += 1;
        let body = element("error", "the run had problems", &run.problems.join("\n"));
        let _ = writeln!(
            cases,
            "    <testcase classname=\"compat.{kernel}\" name=\"(run)\">{body}{}</testcase>",
            system_out(&format!("console log: {}", run.console_log.display()))
        );
    }
    let tests = declared.len() + usize::from(!run.problems.is_empty());
    let _ = write!(
        out,
        "  <testsuite name=\"{kernel}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">\n{cases}  </testsuite>\n"
    );
}

fn observed(run: &RunReport, id: &str) -> String {
    match run.ktap.get(id) {
        Some(r) => r.status.observation().to_string(),
        None => "(none)".into(),
    }
}

fn element(name: &str, message: &str, text: &str) -> String {
    format!(
        "<{name} message=\"{}\">{}</{name}>",
        escape(message),
        escape(text)
    )
}

fn system_out(text: &str) -> String {
    format!("<system-out>{}</system-out>", escape(text.trim_end()))
}

/// XML text: the five entities, and no control characters XML 1.0 forbids
/// (a console may hold escape sequences).
fn escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
        .fold(String::new(), |mut out, c| {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&apos;"),
                c => out.push(c),
            }
            out
        })
}

#[cfg(test)]
mod tests;
