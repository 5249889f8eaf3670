//! What came out of a boot: the KTAP stream (`ktap`), the run's report and
//! the declared expectations (`report`), and the tables people read (`table`).

pub mod ktap;
pub mod report;
pub mod stress;
pub mod table;
