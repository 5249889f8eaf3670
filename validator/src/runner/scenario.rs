//! What a scenario is: a stable id, what it proves, its declared results on
//! vanilla 6.12 and on the patched kernel, and the code that observes.

use contract::Kernel;

/// What a scenario declares for one kernel: the contract's expectation,
/// with its reason (a skip's) written in the scenario table.
pub type Expect = contract::Expectation<&'static str>;

/// Why a scenario did not pass.
pub enum Failure {
    /// Failed on the observable named by the reason token (`EINVAL`,
    /// `ELFCLASS64`, `addr>=4G`, ...; see `contract::reason`), with a
    /// message for people. The only kind of failure a declaration can
    /// expect.
    Because(String, String),
    /// Failed without naming the observable: reported with the reason
    /// `unnamed`, which no declaration expects.
    Fail(String),
    Skip(String),
}

impl Failure {
    pub fn because(reason: impl Into<String>, message: impl Into<String>) -> Failure {
        Failure::Because(reason.into(), message.into())
    }
}

pub type Outcome = Result<(), Failure>;

pub struct Scenario {
    /// Stable KTAP test name, [a-z0-9_] only.
    pub id: &'static str,
    pub description: &'static str,
    /// Why a reviewer cares (one or two sentences).
    pub proves: &'static str,
    pub vanilla: Expect,
    pub patched: Expect,
    /// Words of the subject of the one patch of the series that changes
    /// this scenario's result (`compare --per-patch` checks it); None when
    /// vanilla and patched are declared alike. See `scenarios::series::patches`.
    pub changed_by: Option<&'static str>,
    pub run: fn() -> Outcome,
}

impl Scenario {
    pub fn expected(&self, kernel: Kernel) -> Expect {
        match kernel {
            Kernel::Vanilla => self.vanilla,
            Kernel::Patched => self.patched,
        }
    }
}

/// Emits a diagnostic naming observed values.
#[macro_export]
macro_rules! diag {
    ($($arg:tt)*) => { $crate::runner::diag::emit(&format!($($arg)*)) };
}

/// Fails the scenario with a message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err($crate::runner::Failure::Fail(format!($($arg)*)));
        }
    };
}

/// Fails the scenario on the observable `reason` (a token) unless the
/// condition holds.
#[macro_export]
macro_rules! ensure_because {
    ($cond:expr, $reason:expr, $($arg:tt)*) => {
        if !$cond {
            return Err($crate::runner::Failure::because($reason, format!($($arg)*)));
        }
    };
}

/// Fails the scenario on the observable `reason` (a token).
#[macro_export]
macro_rules! fail_because {
    ($reason:expr, $($arg:tt)*) => {
        return Err($crate::runner::Failure::because($reason, format!($($arg)*)))
    };
}

#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { return Err($crate::runner::Failure::Fail(format!($($arg)*))) };
}

#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => { return Err($crate::runner::Failure::Skip(format!($($arg)*))) };
}

/// Collects several independent checks so that every observed value is
/// reported before the scenario fails. The scenario fails on the reason of
/// the first failed check: a scenario puts the check of its declared
/// "before" observable first.
#[derive(Default)]
pub struct Checks {
    failed: Vec<(Option<String>, String)>,
}

impl Checks {
    /// A check that does not name an observable (its failure is `unnamed`).
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        self.record(ok, None, what.into());
    }

    /// A check whose failure is the observable `reason` (a token).
    pub fn check_because(&mut self, ok: bool, reason: &str, what: impl Into<String>) {
        self.record(ok, Some(reason.to_string()), what.into());
    }

    fn record(&mut self, ok: bool, reason: Option<String>, what: String) {
        let tag = match (ok, &reason) {
            (true, _) => "ok:".to_string(),
            (false, Some(r)) => format!("MISMATCH ({r}):"),
            (false, None) => "MISMATCH:".to_string(),
        };
        super::diag::emit(&format!("{tag} {what}"));
        if !ok {
            self.failed.push((reason, what));
        }
    }

    pub fn finish(self) -> Outcome {
        let Some((reason, _)) = self.failed.first() else {
            return Ok(());
        };
        let what: Vec<&str> = self.failed.iter().map(|(_, w)| w.as_str()).collect();
        let message = format!("{} check(s) failed: {}", what.len(), what.join("; "));
        Err(match reason {
            Some(reason) => Failure::Because(reason.clone(), message),
            None => Failure::Fail(message),
        })
    }
}
