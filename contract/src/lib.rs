//! The contract between the validator and xtask, defined once.
//!
//! The validator declares, per scenario and per kernel, what it expects
//! (`pass`, `fail`, or `skip` with a reason) and prints what it observed;
//! xtask reads the declarations from `validator --list --json` and compares.
//! Both sides spell those words, and the JSON field names, through this
//! crate, so that a change to the contract is a change in one place.
//!
//! An [`Expectation`] is an [`Outcome`] plus a reason: `fail` names the
//! observable that makes it a failure as a token ([`reason`]: `EINVAL`,
//! `ELFCLASS64`, `addr>=4G`, `SIGSEGV`), `skip` says why in words. An
//! [`Observation`] is the same pair for what a run produced; an
//! expectation is met only by the same outcome with, for `fail`, the same
//! reason, so a crash, a timeout or another errno is never the expected
//! "before".
//!
//! Wire format:
//! - `validator --list --json`: `"vanilla": "fail", "vanilla_reason":
//!   "EINVAL"` ([`list_json`]); people read it as `fail (EINVAL)`
//!   (docs/scenarios.md, tables).
//! - KTAP: `not ok 4 id # reason=EINVAL` ([`ktap`]).

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

/// Tokens that name why a scenario failed: the observable that makes it a
/// failure, in the terms the scenario checks it.
///
/// A reason is a stable token, not a sentence: an errno name (`EINVAL`), a
/// signal name (`SIGSEGV`), an ELF class (`ELFCLASS64`), an address
/// relation (`addr>=4G`), a short kebab-case observable (`vsyscall-listed`).
/// Grammar: a letter, then up to 39 of `[A-Za-z0-9_.<>=+-]`; no spaces, no
/// `#`, so it fits unquoted in a KTAP result line and in `fail (REASON)`.
/// Numbers that vary between runs (addresses, pids) belong in the
/// diagnostics, not in the reason.
pub mod reason {
    use super::ContractError;

    /// The scenario did not finish within its timeout.
    pub const TIMEOUT: &str = "timeout";
    /// The scenario's code panicked.
    pub const PANIC: &str = "panic";
    /// A failure that does not name its observable (a plain `fail!` or
    /// check): never what a declaration may expect, so always UNEXPECTED.
    pub const UNNAMED: &str = "unnamed";
    /// The scenario process exited with a status that means no outcome.
    pub const BAD_EXIT: &str = "bad-exit-status";

    const MAX_LEN: usize = 40;

    /// Ok if `token` follows the reason grammar; else an error quoting it.
    pub fn check(token: &str) -> Result<(), ContractError> {
        let mut chars = token.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.<>=+-".contains(c));
        if first_ok && rest_ok && token.len() <= MAX_LEN {
            Ok(())
        } else {
            Err(ContractError(format!(
                "`{token}` is not a reason token: a letter, then up to {} of [A-Za-z0-9_.<>=+-] (e.g. EINVAL, SIGSEGV, addr>=4G)",
                MAX_LEN - 1
            )))
        }
    }
}

/// What a scenario declares for one kernel: an outcome and, for `fail`
/// and `skip`, the reason. `R` is the reason's string type: `&'static str`
/// in the validator's tables, `String` where it is parsed back.
///
/// The fields are private so that only valid pairs exist: `pass` has no
/// reason; `fail` always names the observable it fails on (a token, see
/// [`reason`]); `skip` always says why, in words.
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

    /// Expected to fail on the observable `reason` (a token: `EINVAL`,
    /// `ELFCLASS64`, ...); a failure for any other reason is unexpected.
    pub const fn fail(reason: R) -> Expectation<R> {
        Expectation {
            outcome: Outcome::Fail,
            reason: Some(reason),
        }
    }

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

    /// The reason: a fail's token or a skip's words; none for pass.
    pub fn reason(&self) -> Option<&R> {
        self.reason.as_ref()
    }
}

impl<R: AsRef<str>> Expectation<R> {
    /// True if `observed` is what this expectation declares: the same
    /// outcome and, for `fail`, the same reason token. A skip's reason is
    /// prose and is not compared.
    pub fn is_met_by<O: AsRef<str>>(&self, observed: &Observation<O>) -> bool {
        if self.outcome != observed.outcome {
            return false;
        }
        match (self.outcome, &self.reason, &observed.reason) {
            (Outcome::Fail, Some(want), Some(got)) => want.as_ref() == got.as_ref(),
            (Outcome::Fail, _, _) => false,
            _ => true,
        }
    }

    /// Builds an expectation from its two JSON fields: the word
    /// (`"vanilla": "fail"`) and the reason (`"vanilla_reason": "EINVAL"`).
    /// A fail or skip without a reason, a reason on `pass`, or a fail
    /// reason that is not a token is an error.
    pub fn parse(word: &str, reason: Option<R>) -> Result<Expectation<R>, ContractError> {
        let outcome = Outcome::from_word(word)?;
        match (outcome, reason) {
            (Outcome::Pass, None) => Ok(Expectation::PASS),
            (Outcome::Pass, Some(_)) => Err(ContractError(
                "expectation `pass` with a reason: only `fail` and `skip` carry one".into(),
            )),
            (_, None) => Err(ContractError(format!(
                "expectation `{word}` without a reason: every declared {word} names why"
            ))),
            (Outcome::Fail, Some(r)) => {
                reason::check(r.as_ref())?;
                Ok(Expectation::fail(r))
            }
            (Outcome::Skip, Some(r)) => Ok(Expectation::skip(r)),
        }
    }
}

/// `pass`, `fail (EINVAL)` or `skip (reason)`: how people read an
/// expectation (docs/scenarios.md, tables).
impl<R: AsRef<str>> fmt::Display for Expectation<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Some(reason) => write!(f, "{} ({})", self.word(), reason.as_ref()),
            None => f.write_str(self.word()),
        }
    }
}

/// What a scenario run produced: an outcome and, for `fail`, the reason
/// token it observed (for `skip`, the words it gave). Printed as a KTAP
/// result line by [`ktap::result_line`] and read back by
/// [`ktap::parse_result_line`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Observation<R> {
    outcome: Outcome,
    reason: Option<R>,
}

impl<R> Observation<R> {
    pub const fn pass() -> Observation<R> {
        Observation {
            outcome: Outcome::Pass,
            reason: None,
        }
    }

    /// A failure on the observable `reason` (a token).
    pub const fn fail(reason: R) -> Observation<R> {
        Observation {
            outcome: Outcome::Fail,
            reason: Some(reason),
        }
    }

    pub const fn skip(reason: R) -> Observation<R> {
        Observation {
            outcome: Outcome::Skip,
            reason: Some(reason),
        }
    }

    pub const fn outcome(&self) -> Outcome {
        self.outcome
    }

    pub fn reason(&self) -> Option<&R> {
        self.reason.as_ref()
    }
}

/// `pass`, `fail (SIGSEGV)`, `skip (why)`: the same reading as
/// [`Expectation`], so a table can put the two side by side.
impl<R: AsRef<str>> fmt::Display for Observation<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Some(reason) => write!(f, "{} ({})", self.outcome.word(), reason.as_ref()),
            None => f.write_str(self.outcome.word()),
        }
    }
}

/// KTAP result lines as the validator prints them (kernel
/// Documentation/dev-tools/ktap.rst, "Test case result lines":
/// `<result> <number> [<description>][ # [<directive>] [<diagnostic data>]]`).
///
/// - pass: `ok 3 id`
/// - fail: `not ok 4 id # reason=EINVAL`: the reason is diagnostic data
///   after the `#`, not a directive, so any KTAP parser reads a plain
///   failure (ktap.rst: unknown directives fall back to ok / not ok, and
///   `ok 5 check return code # rcode=0` is its own example of such data).
/// - skip: `ok 5 id # SKIP why` (the standard SKIP directive).
///
/// A `not ok` line without `reason=` (another producer, an older
/// validator) reads as a failure with the reason [`reason::UNNAMED`].
pub mod ktap {
    use super::{reason, Observation, Outcome};

    /// The key of the diagnostic data that carries a failure's reason.
    pub const REASON_KEY: &str = "reason=";

    /// One parsed result line.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct ResultLine {
        pub number: u32,
        pub id: String,
        pub observed: Observation<String>,
    }

    /// The result line for test `number` named `id`.
    pub fn result_line<R: AsRef<str>>(number: u32, id: &str, observed: &Observation<R>) -> String {
        let reason = observed.reason().map(|r| r.as_ref()).unwrap_or("");
        match observed.outcome() {
            Outcome::Pass => format!("ok {number} {id}"),
            Outcome::Fail => format!("not ok {number} {id} # {REASON_KEY}{reason}"),
            Outcome::Skip => format!("ok {number} {id} # SKIP {reason}"),
        }
    }

    /// Reads `ok N id`, `not ok N id # reason=TOKEN`, `ok N id # SKIP why`
    /// (also `not ok ... # SKIP`); `None` if the line is not a result line.
    /// An invalid reason token reads as [`reason::UNNAMED`].
    pub fn parse_result_line(line: &str) -> Option<ResultLine> {
        let (passed, rest) = match line.strip_prefix("not ok ") {
            Some(rest) => (false, rest),
            None => (true, line.strip_prefix("ok ")?),
        };
        let (number, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let number = number.parse().ok()?;
        let (id, data) = match rest.split_once('#') {
            Some((id, data)) => (id.trim(), data.trim()),
            None => (rest.trim(), ""),
        };
        let observed = if let Some(why) = skip_reason(data) {
            Observation::skip(why.to_string())
        } else if passed {
            Observation::pass()
        } else {
            Observation::fail(fail_reason(data))
        };
        Some(ResultLine {
            number,
            id: id.to_string(),
            observed,
        })
    }

    fn skip_reason(data: &str) -> Option<&str> {
        let head = data.get(..4)?;
        head.eq_ignore_ascii_case("SKIP").then(|| data[4..].trim())
    }

    fn fail_reason(data: &str) -> String {
        data.split_whitespace()
            .find_map(|word| word.strip_prefix(REASON_KEY))
            .filter(|token| reason::check(token).is_ok())
            .unwrap_or(reason::UNNAMED)
            .to_string()
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
    /// Words of the subject of the patch expected to change the scenario's
    /// result (`compare --per-patch`); absent when vanilla and patched are
    /// declared alike.
    pub const CHANGED_BY: &str = "changed_by";

    /// The field holding `kernel`'s expectation word.
    pub const fn expectation(kernel: Kernel) -> &'static str {
        kernel.word()
    }

    /// The field holding the reason of `kernel`'s declared `fail` (a
    /// token: `"vanilla": "fail", "vanilla_reason": "EINVAL"`) or `skip`
    /// (words); absent for `pass`.
    pub const fn reason(kernel: Kernel) -> &'static str {
        match kernel {
            Kernel::Vanilla => "vanilla_reason",
            Kernel::Patched => "patched_reason",
        }
    }
}

/// What xtask puts into the guest's initramfs for the validator.
pub mod initramfs {
    /// The `--filter` of the run, verbatim (no trailing newline added or
    /// stripped beyond one `\n`), so that the guest selects exactly what
    /// `validator --list --json --filter` selected on the host; absent when
    /// there is no filter. A file rather than the kernel command line,
    /// which splits at spaces and has its own quoting.
    pub const FILTER_FILE: &str = "/validator-filter";
}

/// Instruction-count markers (`cargo xtask bench --instructions`): the
/// validator brackets each measured operation with two marker
/// instructions, and the QEMU plugin `qemu/plugins/icount.c` counts the
/// guest instructions executed between them. QEMU 7.2's plugin API cannot
/// read guest registers, so the marker carries its meaning in its own
/// bytes: `nopl disp32(%rax)` (`0f 1f 80` + disp32, a no-op in 64-bit and
/// 32-bit code alike) whose displacement is [`MAGIC`] in the high half,
/// [`STOP`] set for the closing marker, and the operation's id in the low
/// 15 bits. The plugin writes one line per closed window:
/// `sample <id> <user> <kernel>` (instructions at user and at kernel
/// addresses), then `end <user> <kernel>` (whole-run totals) when QEMU exits.
pub mod icount {
    /// The high half of every marker's displacement (`0x1c57`: "ICoST").
    pub const MAGIC: u32 = 0x1c57_0000;
    /// Set in the closing marker of a window.
    pub const STOP: u32 = 0x8000;

    /// The displacement of an operation's opening marker.
    pub const fn start(op: Op) -> u32 {
        MAGIC | op.id() as u32
    }

    /// The displacement of an operation's closing marker.
    pub const fn stop(op: Op) -> u32 {
        MAGIC | STOP | op.id() as u32
    }

    /// What is measured, in the order of the report.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Op {
        GetpidSyscall64 = 1,
        MmapMunmap = 2,
        MmapMunmapHint = 3,
        MremapGrow = 4,
        ForkExitWait = 5,
        ForkExecveExitWait = 6,
        Signal64 = 7,
        SignalIa32 = 8,
        ClockGettimeVdso = 9,
        GetpidInt80From32 = 10,
        SetCompatNativePair = 11,
    }

    impl Op {
        pub const ALL: [Op; 11] = [
            Op::GetpidSyscall64,
            Op::MmapMunmap,
            Op::MmapMunmapHint,
            Op::MremapGrow,
            Op::ForkExitWait,
            Op::ForkExecveExitWait,
            Op::Signal64,
            Op::SignalIa32,
            Op::ClockGettimeVdso,
            Op::GetpidInt80From32,
            Op::SetCompatNativePair,
        ];

        pub const fn id(self) -> u16 {
            self as u16
        }

        pub fn from_id(id: u16) -> Option<Op> {
            Op::ALL.into_iter().find(|op| op.id() == id)
        }

        /// The name in reports.
        pub const fn name(self) -> &'static str {
            match self {
                Op::GetpidSyscall64 => "getpid (64-bit syscall)",
                Op::MmapMunmap => "mmap+munmap, no hint",
                Op::MmapMunmapHint => "mmap+munmap, with hint",
                Op::MremapGrow => "mremap growth (1 -> 2 pages)",
                Op::ForkExitWait => "fork+exit+wait",
                Op::ForkExecveExitWait => "fork+execve (static)+exit+wait",
                Op::Signal64 => "signal, 64-bit frame",
                Op::SignalIa32 => "signal, ia32 frame (from 32-bit code)",
                Op::ClockGettimeVdso => "clock_gettime via the vDSO",
                Op::GetpidInt80From32 => "getpid, int 0x80 from 32-bit code",
                Op::SetCompatNativePair => "ARCH_SET_COMPAT + ARCH_SET_NATIVE",
            }
        }

        /// Only a kernel with the series can run it.
        pub const fn needs_series(self) -> bool {
            matches!(self, Op::SetCompatNativePair)
        }
    }

    /// The text the validator prints once every window is closed, so a
    /// reader can tell a finished run from a guest that stopped early.
    pub const DONE_LINE: &str = "# icount done";
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
    fn icount_markers_are_distinct_and_decode() {
        use icount::{start, stop, Op, MAGIC, STOP};
        for op in Op::ALL {
            assert_eq!(Op::from_id(op.id()), Some(op));
            assert_eq!(start(op) & 0xffff_0000, MAGIC);
            assert_eq!(stop(op), start(op) | STOP);
            assert!(op.id() > 0 && u32::from(op.id()) < STOP);
            // Positive as an i32: the assembler keeps the 32-bit form.
            assert!(stop(op) < 0x8000_0000);
        }
        assert_eq!(Op::from_id(0), None);
    }

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
            Expectation::parse("fail", Some("EINVAL")),
            Ok(Expectation::fail("EINVAL"))
        );
        assert_eq!(
            Expectation::parse("skip", Some("no CONFIG_X")),
            Ok(Expectation::skip("no CONFIG_X"))
        );
    }

    #[test]
    fn fail_and_skip_need_a_reason_and_pass_has_none() {
        let e = Expectation::parse("skip", None::<&str>).unwrap_err();
        assert!(e.to_string().contains("`skip` without a reason"), "{e}");
        let e = Expectation::parse("fail", None::<&str>).unwrap_err();
        assert!(e.to_string().contains("`fail` without a reason"), "{e}");
        let e = Expectation::parse("pass", Some("EINVAL")).unwrap_err();
        assert!(e.to_string().contains("`pass` with a reason"), "{e}");
        assert!(Expectation::parse("maybe", None::<&str>).is_err());
    }

    #[test]
    fn fail_reason_must_be_a_token() {
        for bad in [
            "",
            "got 0xfffff000",
            "EINVAL ",
            "4G",
            "a#b",
            "x".repeat(41).as_str(),
        ] {
            let e = Expectation::parse("fail", Some(bad)).unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        for good in [
            "EINVAL",
            "SIGSEGV",
            "ELFCLASS64",
            "addr>=4G",
            "vsyscall-listed",
        ] {
            assert!(reason::check(good).is_ok(), "{good}");
        }
        for own in [
            reason::TIMEOUT,
            reason::PANIC,
            reason::UNNAMED,
            reason::BAD_EXIT,
        ] {
            assert!(reason::check(own).is_ok(), "{own}");
        }
    }

    #[test]
    fn expectation_reads_as_word_and_reason() {
        let skip: Expectation<&str> = Expectation::skip("needs CONFIG_NET");
        assert_eq!(skip.to_string(), "skip (needs CONFIG_NET)");
        assert_eq!(skip.reason(), Some(&"needs CONFIG_NET"));
        assert_eq!(Expectation::fail("EINVAL").to_string(), "fail (EINVAL)");
        assert_eq!(Expectation::<String>::PASS.reason(), None);
        assert_eq!(Observation::fail("SIGSEGV").to_string(), "fail (SIGSEGV)");
        assert_eq!(Observation::<&str>::pass().to_string(), "pass");
    }

    #[test]
    fn fail_is_met_only_by_the_declared_reason() {
        let want = Expectation::fail("EINVAL");
        assert!(want.is_met_by(&Observation::fail("EINVAL")));
        for other in [
            "ENOSYS",
            "SIGSEGV",
            reason::TIMEOUT,
            reason::PANIC,
            reason::UNNAMED,
        ] {
            assert!(!want.is_met_by(&Observation::fail(other)), "{other}");
        }
        assert!(!want.is_met_by(&Observation::<&str>::pass()));
        assert!(!want.is_met_by(&Observation::skip("EINVAL")));
        let crash = Expectation::fail("SIGSEGV");
        assert!(crash.is_met_by(&Observation::fail("SIGSEGV")));
        assert!(!crash.is_met_by(&Observation::fail("SIGILL")));
    }

    #[test]
    fn pass_and_skip_are_met_by_their_outcome() {
        let pass = Expectation::<&str>::PASS;
        assert!(pass.is_met_by(&Observation::<&str>::pass()));
        assert!(!pass.is_met_by(&Observation::fail("EINVAL")));
        let skip = Expectation::skip("why");
        assert!(skip.is_met_by(&Observation::skip("other words")));
        assert!(!skip.is_met_by(&Observation::<&str>::pass()));
    }

    #[test]
    fn ktap_result_lines_round_trip() {
        let cases = [
            (Observation::pass(), "ok 3 set_compat"),
            (
                Observation::fail("EINVAL".to_string()),
                "not ok 3 set_compat # reason=EINVAL",
            ),
            (
                Observation::fail("addr>=4G".to_string()),
                "not ok 3 set_compat # reason=addr>=4G",
            ),
            (
                Observation::skip("no vsyscall".to_string()),
                "ok 3 set_compat # SKIP no vsyscall",
            ),
        ];
        for (observed, line) in cases {
            assert_eq!(ktap::result_line(3, "set_compat", &observed), line);
            let parsed = ktap::parse_result_line(line).unwrap();
            assert_eq!((parsed.number, parsed.id.as_str()), (3, "set_compat"));
            assert_eq!(parsed.observed, observed);
        }
    }

    #[test]
    fn ktap_lines_from_other_producers() {
        let p = |l| ktap::parse_result_line(l).unwrap().observed;
        assert_eq!(
            p("not ok 1 x"),
            Observation::fail(reason::UNNAMED.to_string())
        );
        assert_eq!(
            p("not ok 1 x # TIMEOUT 30 seconds"),
            Observation::fail(reason::UNNAMED.to_string())
        );
        assert_eq!(
            p("not ok 1 x # reason=got 0x1"),
            Observation::fail("got".to_string())
        );
        assert_eq!(
            p("not ok 1 x # reason=0x1"),
            Observation::fail(reason::UNNAMED.to_string())
        );
        assert_eq!(
            p("not ok 1 x # SKIP later"),
            Observation::skip("later".to_string())
        );
        assert_eq!(p("ok 5 check return code # rcode=0"), Observation::pass());
        assert_eq!(
            ktap::parse_result_line("ok 5 check return code # rcode=0")
                .unwrap()
                .id,
            "check return code"
        );
        for not_a_result in ["# ok 1 x", "okay", "ok x y", "KTAP version 1", "1..3"] {
            assert_eq!(
                ktap::parse_result_line(not_a_result),
                None,
                "{not_a_result}"
            );
        }
    }

    #[test]
    fn list_json_field_names() {
        assert_eq!(list_json::expectation(Kernel::Vanilla), "vanilla");
        assert_eq!(list_json::expectation(Kernel::Patched), "patched");
        assert_eq!(list_json::reason(Kernel::Vanilla), "vanilla_reason");
        assert_eq!(list_json::reason(Kernel::Patched), "patched_reason");
        assert_eq!(
            [list_json::ID, list_json::DESCRIPTION, list_json::PROVES],
            ["id", "description", "proves"]
        );
    }
}
