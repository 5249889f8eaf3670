//! The stress run's figures per kernel: operations and invariant failures
//! (the validator's `stress:` line), splats (kernel problems in the
//! console) and kmemleak's findings (the validator's end-of-run scan).

use crate::results::report::RunReport;
use serde::Serialize;

pub const SCENARIO: &str = "stress_compat_mode";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StressFigures {
    /// None when the stress scenario printed no summary (it did not end).
    pub operations: Option<u64>,
    pub invariant_failures: Option<u64>,
    pub seed: Option<String>,
    pub splats: usize,
    pub kmemleak: usize,
}

/// Prefix of the lines the validator prints for kmemleak's findings.
pub const KMEMLEAK_LINE: &str = "# kmemleak: unreferenced object";

pub fn figures(report: &RunReport) -> StressFigures {
    let summary = report
        .ktap
        .get(SCENARIO)
        .and_then(|r| r.diagnostics.iter().rev().find_map(|d| parse_summary(d)));
    let kmemleak = report
        .problems
        .iter()
        .filter(|p| p.contains(KMEMLEAK_LINE))
        .count();
    let splats = report
        .problems
        .iter()
        .filter(|p| p.starts_with("kernel:") && !p.contains(KMEMLEAK_LINE))
        .count();
    let (operations, invariant_failures, seed) = match summary {
        Some((ops, failures, seed)) => (Some(ops), Some(failures), Some(seed)),
        None => (None, None, None),
    };
    StressFigures {
        operations,
        invariant_failures,
        seed,
        splats,
        kmemleak,
    }
}

/// `stress: 42558 operations (workers: ...), 3 invariant failure(s), seed 0x2`
fn parse_summary(line: &str) -> Option<(u64, u64, String)> {
    let rest = line.strip_prefix("stress: ")?;
    let operations = rest.split_whitespace().next()?.parse().ok()?;
    let (_, tail) = rest.split_once("), ")?;
    let failures = tail.split_whitespace().next()?.parse().ok()?;
    let seed = tail.rsplit("seed ").next()?.trim().to_string();
    Some((operations, failures, seed))
}

impl std::fmt::Display for StressFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let number = |n: Option<u64>| n.map_or("?".to_string(), |n| n.to_string());
        write!(
            f,
            "{} operations, {} invariant failure(s), {} splat(s), {} kmemleak report(s) (seed {})",
            number(self.operations),
            number(self.invariant_failures),
            self.splats,
            self.kmemleak,
            self.seed.as_deref().unwrap_or("?")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validator_summary_line_parses() {
        let line =
            "stress: 42558 operations (workers: 10682 + 10728), 3 invariant failure(s), seed 0x2";
        assert_eq!(parse_summary(line), Some((42558, 3, "0x2".to_string())));
        assert_eq!(parse_summary("stress: nothing"), None);
        assert_eq!(parse_summary("seed 0x1, 4 workers"), None);
    }
}
