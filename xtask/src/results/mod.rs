//! What came out of a boot: the KTAP stream (`ktap`), the run's report and
//! the declared expectations (`report`), the tables people read (`table`),
//! and the reproduction bundle that carries a run elsewhere (`bundle`).

#[allow(dead_code)] // wired to `bundle` and `compare --bundle` in the next commits
pub mod bundle;
pub mod ktap;
pub mod report;
pub mod table;
