//! The exit codes of `cargo xtask` (README "Exit codes"). Scripts and CI
//! rely on them, so they are named once here.

/// Every scenario behaved as declared, on every kernel, and no run had a
/// problem (`compare`, `run`); a check command passed.
pub const AS_DECLARED: i32 = 0;
/// A scenario did not do what it declares, a run had a problem (a splat,
/// a timeout, an early stop), or a check of `check-series` failed.
pub const NOT_AS_DECLARED: i32 = 1;
/// The harness could not do its job: bad input, a build that failed, a
/// missing tool (main.rs prints the error). clap's usage errors are 2 too.
pub const HARNESS_ERROR: i32 = 2;
/// Ctrl-C or SIGTERM (host/process.rs, which cannot import this module,
/// uses the same number).
pub const INTERRUPTED: i32 = 130;
