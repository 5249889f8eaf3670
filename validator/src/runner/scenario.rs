//! What a scenario is: a stable id, what it proves, its declared results on
//! vanilla 6.12 and on the patched kernel, and the code that observes.

use contract::Kernel;

/// What a scenario declares for one kernel: the contract's expectation,
/// with its reason (a skip's) written in the scenario table.
pub type Expect = contract::Expectation<&'static str>;

pub enum Failure {
    Fail(String),
    Skip(String),
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

#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { return Err($crate::runner::Failure::Fail(format!($($arg)*))) };
}

#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => { return Err($crate::runner::Failure::Skip(format!($($arg)*))) };
}

/// Collects several independent checks so that every observed value is
/// reported before the scenario fails.
#[derive(Default)]
pub struct Checks {
    failed: Vec<String>,
}

impl Checks {
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        super::diag::emit(&format!("{} {what}", if ok { "ok:" } else { "MISMATCH:" }));
        if !ok {
            self.failed.push(what);
        }
    }

    pub fn finish(self) -> Outcome {
        if self.failed.is_empty() {
            Ok(())
        } else {
            Err(Failure::Fail(format!(
                "{} check(s) failed: {}",
                self.failed.len(),
                self.failed.join("; ")
            )))
        }
    }
}
