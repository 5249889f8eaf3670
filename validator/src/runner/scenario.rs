//! What a scenario is: a stable id, what it proves, its declared results on
//! vanilla 6.12 and on the patched kernel, and the code that observes.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Pass,
    Fail,
    /// Declared skip with its reason (no current scenario needs one, the
    /// harness contract allows it).
    #[allow(dead_code)]
    Skip(&'static str),
}

impl Expect {
    pub fn word(&self) -> &'static str {
        match self {
            Expect::Pass => "pass",
            Expect::Fail => "fail",
            Expect::Skip(_) => "skip",
        }
    }
}

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
    pub fn expected(&self, patched_kernel: bool) -> Expect {
        if patched_kernel {
            self.patched
        } else {
            self.vanilla
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
