//! This machine and its terminal: paths, programs, locks, packages, progress.
//! Nothing here knows about kernels, guests or results.

pub mod archive;
pub mod deps;
pub mod lock;
pub mod paths;
pub mod process;
pub mod ui;
