//! What came out of a boot: the KTAP stream (`ktap`), the run's report and
//! the declared expectations (`report`), the tables people read (`table`),
//! the per-patch matrix (`per_patch`), JUnit XML for machines (`junit`),
//! the exit codes (`exit`) and the
//! reproduction bundle that carries a run elsewhere (`bundle`).

pub mod bundle;
pub mod cover_letter;
pub mod exit;
pub mod icount;
pub mod junit;
pub mod ktap;
pub mod per_patch;
pub mod report;
pub mod stress;
pub mod table;
