//! The contract between the validator and xtask, defined once.
//!
//! The validator declares, per scenario and per kernel, what it expects
//! (`pass`, `fail`, or `skip` with a reason) and prints what it observed;
//! xtask reads the declarations from `validator --list --json` and compares.
//! Both sides spell those words, and the JSON field names, through this
//! crate, so that a change to the contract is a change in one place.
//!
//! An [`Expectation`] is an [`Outcome`] plus an optional reason. Today only
//! `skip` carries one (`skip (why)`); the type is shaped so that `fail` can
//! later name the observable that fails (`fail (EINVAL)`) by relaxing
//! [`Expectation::parse`] and adding a constructor, without changing the
//! representation or its callers.

use std::fmt;

/// A scenario's result as a word: what was observed, or the kind of what is
/// expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

impl Outcome {
    /// Every outcome, in the order the words are listed in messages.
    pub const ALL: [Outcome; 3] = [Outcome::Pass, Outcome::Fail, Outcome::Skip];

    /// The contract word: `pass`, `fail` or `skip`.
    pub const fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
        }
    }

    /// The outcome a contract word names; anything else is an error that
    /// quotes the word and lists the valid ones.
    pub fn from_word(word: &str) -> Result<Outcome, ContractError> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.word() == word)
            .ok_or_else(|| {
                ContractError(format!(
                    "unknown outcome `{word}`: expected `pass`, `fail` or `skip`"
                ))
            })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// What a scenario declares for one kernel: an outcome and, for `skip`,
/// the reason. `R` is the reason's string type: `&'static str` in the
/// validator's tables, `String` where it is parsed back.
///
/// The fields are private so that only valid pairs exist: `pass` and
/// `fail` have no reason (for now), `skip` always has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Expectation<R> {
    outcome: Outcome,
    reason: Option<R>,
}

impl<R> Expectation<R> {
    /// Expected to pass.
    pub const PASS: Expectation<R> = Expectation {
        outcome: Outcome::Pass,
        reason: None,
    };
    /// Expected to fail.
    pub const FAIL: Expectation<R> = Expectation {
        outcome: Outcome::Fail,
        reason: None,
    };

    /// Expected to be skipped, for `reason`.
    pub const fn skip(reason: R) -> Expectation<R> {
        Expectation {
            outcome: Outcome::Skip,
            reason: Some(reason),
        }
    }

    /// The expected outcome.
    pub const fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The outcome's contract word (`pass`, `fail`, `skip`).
    pub const fn word(&self) -> &'static str {
        self.outcome.word()
    }

    /// The reason, if this expectation carries one (today: a skip's).
    pub fn reason(&self) -> Option<&R> {
        self.reason.as_ref()
    }

    /// True if `observed` is the outcome this expectation declares.
    pub fn is_met_by(&self, observed: Outcome) -> bool {
        self.outcome == observed
    }

    /// Builds an expectation from its two JSON fields: the word
    /// (`"vanilla": "skip"`) and the reason (`"vanilla_skip_reason"`).
    /// A skip without a reason, or a reason on `pass`/`fail`, is an error.
    pub fn parse(word: &str, reason: Option<R>) -> Result<Expectation<R>, ContractError> {
        let outcome = Outcome::from_word(word)?;
        match (outcome, reason) {
            (Outcome::Skip, None) => Err(ContractError(
                "expectation `skip` without a reason: every declared skip names why".into(),
            )),
            (Outcome::Skip, Some(reason)) => Ok(Expectation::skip(reason)),
            (_, Some(_)) => Err(ContractError(format!(
                "expectation `{word}` with a reason: only `skip` carries one"
            ))),
            (_, None) => Ok(Expectation {
                outcome,
                reason: None,
            }),
        }
    }
}

/// `pass`, `fail`, or `skip (reason)`: how people read an expectation
/// (docs/scenarios.md, tables).
impl<R: AsRef<str>> fmt::Display for Expectation<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Some(reason) => write!(f, "{} ({})", self.word(), reason.as_ref()),
            None => f.write_str(self.word()),
        }
    }
}

/// The two kernels a scenario declares an expectation for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Linux 6.12 without the series.
    Vanilla,
    /// Linux 6.12 with the series applied.
    Patched,
}

impl Kernel {
    /// `vanilla` or `patched`: also the JSON field holding that kernel's
    /// expectation word.
    pub const fn word(self) -> &'static str {
        match self {
            Kernel::Vanilla => "vanilla",
            Kernel::Patched => "patched",
        }
    }
}

/// Field names of one scenario object in `validator --list --json`
/// (a JSON array of such objects).
pub mod list_json {
    use super::Kernel;

    /// Stable scenario id, `[a-z0-9_]+`, also the KTAP test name.
    pub const ID: &str = "id";
    /// What the scenario checks, one line.
    pub const DESCRIPTION: &str = "description";
    /// Why a reviewer cares.
    pub const PROVES: &str = "proves";

    /// The field holding `kernel`'s expectation word.
    pub const fn expectation(kernel: Kernel) -> &'static str {
        kernel.word()
    }

    /// The field holding the reason of `kernel`'s declared skip; present
    /// only when that expectation is `skip`.
    pub const fn skip_reason(kernel: Kernel) -> &'static str {
        match kernel {
            Kernel::Vanilla => "vanilla_skip_reason",
            Kernel::Patched => "patched_skip_reason",
        }
    }
}

/// A word or field that breaks the contract, with a message naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractError(String);

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ContractError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_words_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_word(o.word()), Ok(o));
        }
        assert_eq!(
            [Outcome::Pass, Outcome::Fail, Outcome::Skip].map(Outcome::word),
            ["pass", "fail", "skip"]
        );
    }

    #[test]
    fn unknown_outcome_word_is_named_in_the_error() {
        for bad in ["", "PASS", "ok", "skip (x)", " pass"] {
            let e = Outcome::from_word(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn expectations_parse_from_their_fields() {
        assert_eq!(
            Expectation::parse("pass", None::<&str>),
            Ok(Expectation::PASS)
        );
        assert_eq!(
            Expectation::parse("fail", None::<&str>),
            Ok(Expectation::FAIL)
        );
        assert_eq!(
            Expectation::parse("skip", Some("no CONFIG_X")),
            Ok(Expectation::skip("no CONFIG_X"))
        );
    }

    #[test]
    fn skip_needs_a_reason_and_only_skip_has_one() {
        let e = Expectation::parse("skip", None::<&str>).unwrap_err();
        assert!(e.to_string().contains("without a reason"), "{e}");
        let e = Expectation::parse("fail", Some("EINVAL")).unwrap_err();
        assert!(e.to_string().contains("`fail` with a reason"), "{e}");
        assert!(Expectation::parse("maybe", None::<&str>).is_err());
    }

    #[test]
    fn expectation_reads_as_word_and_reason() {
        let skip: Expectation<&str> = Expectation::skip("needs CONFIG_NET");
        assert_eq!(skip.to_string(), "skip (needs CONFIG_NET)");
        assert_eq!(skip.reason(), Some(&"needs CONFIG_NET"));
        assert_eq!(Expectation::<&str>::FAIL.to_string(), "fail");
        assert_eq!(Expectation::<String>::PASS.reason(), None);
    }

    #[test]
    fn expectation_is_met_by_its_outcome_only() {
        let skip = Expectation::skip("why");
        assert!(skip.is_met_by(Outcome::Skip));
        assert!(!skip.is_met_by(Outcome::Pass));
        assert!(Expectation::<&str>::FAIL.is_met_by(Outcome::Fail));
        assert!(!Expectation::<&str>::FAIL.is_met_by(Outcome::Pass));
    }

    #[test]
    fn list_json_field_names() {
        assert_eq!(list_json::expectation(Kernel::Vanilla), "vanilla");
        assert_eq!(list_json::expectation(Kernel::Patched), "patched");
        assert_eq!(
            list_json::skip_reason(Kernel::Vanilla),
            "vanilla_skip_reason"
        );
        assert_eq!(
            list_json::skip_reason(Kernel::Patched),
            "patched_skip_reason"
        );
        assert_eq!(
            [list_json::ID, list_json::DESCRIPTION, list_json::PROVES],
            ["id", "description", "proves"]
        );
    }
}
