//! What came out of a boot: the KTAP stream (`ktap`), the run's report and
//! the declared expectations (`report`), the tables people read (`table`), JUnit XML for machines (`junit`)
//! and the exit codes (`exit`).

pub mod exit;
pub mod junit;
pub mod ktap;
pub mod report;
pub mod table;
