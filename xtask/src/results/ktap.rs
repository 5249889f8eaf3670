//! Parsing the KTAP v1 the validator prints on the guest console.
//!
//! The console also carries kernel messages, which may interleave with the
//! validator's lines, so anything that is not KTAP is ignored here (the
//! kernel-problem scan in `vm::console` looks at those lines).

use contract::{Observation, Outcome};
use serde::{Deserialize, Serialize};

/// One observed result. A failure carries the reason token the validator
/// named (`EINVAL`, `SIGSEGV`, `timeout`, ...; `unnamed` when the line had
/// none), a skip its prose reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "status", content = "reason")]
pub enum Status {
    Pass,
    Fail(String),
    Skip(String),
}

impl Status {
    /// The same result as the contract's type, to compare with a declaration.
    pub fn observation(&self) -> Observation<&str> {
        match self {
            Status::Pass => Observation::pass(),
            Status::Fail(reason) => Observation::fail(reason),
            Status::Skip(reason) => Observation::skip(reason),
        }
    }

    fn from_observation(observed: Observation<String>) -> Status {
        let reason = observed.reason().cloned().unwrap_or_default();
        match observed.outcome() {
            Outcome::Pass => Status::Pass,
            Outcome::Fail => Status::Fail(reason),
            Outcome::Skip => Status::Skip(reason),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    pub number: u32,
    pub id: String,
    pub status: Status,
    /// `# <id>: ...` lines, without the prefix.
    pub diagnostics: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ktap {
    pub saw_version: bool,
    pub plan: Option<u32>,
    pub results: Vec<TestResult>,
    /// The id in the last `# start <id>` line: the scenario running when the
    /// output stopped, if it never printed a result.
    pub last_started: Option<String>,
    /// `# Totals: ...` seen: the validator reached its end.
    pub finished: bool,
    /// Diagnostics seen before the result line of their test.
    #[serde(skip)]
    pending: Vec<(String, String)>,
}

impl Ktap {
    #[cfg(test)]
    pub fn parse(text: &str) -> Ktap {
        let mut ktap = Ktap::default();
        for line in text.lines() {
            ktap.push_line(line);
        }
        ktap
    }

    /// Feeds one console line; used while the guest is still running.
    pub fn push_line(&mut self, raw: &str) {
        let line = raw.trim_end_matches(['\r', '\n']);
        // Subtests are indented; only the top level is the suite's result.
        if line.starts_with(' ') || line.starts_with('\t') {
            return;
        }
        if line.starts_with("KTAP version 1") {
            self.saw_version = true;
        } else if let Some(count) = line.strip_prefix("1..") {
            self.plan = count.trim().parse().ok();
        } else if let Some(comment) = line.strip_prefix('#') {
            self.push_comment(comment.trim());
        } else if let Some(result) = parse_result(line) {
            self.push_result(result);
        }
    }

    fn push_comment(&mut self, comment: &str) {
        if let Some(id) = comment.strip_prefix("start ") {
            self.last_started = Some(id.trim().to_string());
        } else if comment.starts_with("Totals:") {
            self.finished = true;
        } else if let Some((id, text)) = comment.split_once(": ") {
            if is_test_id(id) {
                self.pending.push((id.to_string(), text.to_string()));
            }
        }
    }

    fn push_result(&mut self, mut result: TestResult) {
        let (mine, others): (Vec<_>, Vec<_>) =
            self.pending.drain(..).partition(|(id, _)| *id == result.id);
        self.pending = others;
        result.diagnostics = mine.into_iter().map(|(_, text)| text).collect();
        if self.last_started.as_deref() == Some(result.id.as_str()) {
            self.last_started = None;
        }
        self.results.push(result);
    }

    /// Every planned result arrived and the totals line was printed.
    pub fn complete(&self) -> bool {
        self.saw_version && self.finished && self.plan == Some(self.results.len() as u32)
    }

    pub fn get(&self, id: &str) -> Option<&TestResult> {
        self.results.iter().find(|r| r.id == id)
    }
}

fn is_test_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `ok 3 name`, `not ok 4 name # reason=EINVAL`, `ok 5 name # SKIP why`,
/// read as the contract crate defines them.
fn parse_result(line: &str) -> Option<TestResult> {
    let line = contract::ktap::parse_result_line(line)?;
    Some(TestResult {
        number: line.number,
        id: line.id,
        status: Status::from_observation(line.observed),
        diagnostics: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
[    0.912345] Run /init as init process
KTAP version 1
1..3
# start gate_round_trip
# gate_round_trip: eax after 0x48 = 0xffffffff
ok 1 gate_round_trip
# start set_compat
# set_compat: arch_prctl(ARCH_SET_COMPAT) = -22 (EINVAL)
not ok 2 set_compat # reason=EINVAL
# start sysenter_amd
ok 3 sysenter_amd # SKIP not an AMD CPU
# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0
";

    #[test]
    fn parses_results_skips_and_diagnostics() {
        let k = Ktap::parse(SAMPLE);
        assert!(k.complete());
        assert_eq!(k.plan, Some(3));
        assert_eq!(k.results.len(), 3);
        assert_eq!(k.results[0].status, Status::Pass);
        assert_eq!(
            k.results[0].diagnostics,
            vec!["eax after 0x48 = 0xffffffff"]
        );
        assert_eq!(k.results[1].status, Status::Fail("EINVAL".into()));
        assert_eq!(k.get("set_compat").unwrap().number, 2);
        assert_eq!(k.results[2].status, Status::Skip("not an AMD CPU".into()));
        assert_eq!(k.last_started, None);
    }

    #[test]
    fn a_hang_leaves_the_last_started_scenario() {
        let k = Ktap::parse("KTAP version 1\n1..2\n# start a\nok 1 a\n# start b\n# b: waiting\n");
        assert!(!k.complete());
        assert_eq!(k.last_started.as_deref(), Some("b"));
        assert_eq!(k.results.len(), 1);
    }

    #[test]
    fn missing_totals_or_results_is_incomplete() {
        let k = Ktap::parse("KTAP version 1\n1..2\nok 1 a\nok 2 b\n");
        assert!(!k.complete(), "no Totals line");
        let k = Ktap::parse("KTAP version 1\n1..3\nok 1 a\nok 2 b\n# Totals: pass:2\n");
        assert!(!k.complete(), "one result missing");
    }

    #[test]
    fn ignores_kernel_noise_and_subtests() {
        let k = Ktap::parse(
            "KTAP version 1\n1..1\n[ 1.0] random: crng init done\n    ok 1 nested\nok 1 outer\n# Totals: pass:1\n",
        );
        assert!(k.complete());
        assert_eq!(k.results[0].id, "outer");
    }

    #[test]
    fn rejects_lines_that_only_look_like_results() {
        assert!(parse_result("ok").is_none());
        assert!(parse_result("okay 1 x").is_none());
        assert!(parse_result("ok x y").is_none());
        let r = parse_result("ok 7 name # skip lower case").unwrap();
        assert_eq!(r.status, Status::Skip("lower case".into()));
        let r = parse_result("not ok 8 name # TODO later").unwrap();
        assert_eq!(r.status, Status::Fail("unnamed".into()), "no reason= data");
        let r = parse_result("not ok 9 name # reason=SIGSEGV").unwrap();
        assert_eq!(r.status, Status::Fail("SIGSEGV".into()));
    }
}
