//! One file per subcommand (`shell` and `gdb` share one). A command uses
//! the pipeline and the layers below it, never another command.

pub mod bench;
pub mod build;
pub mod check_series;
pub mod compare;
pub mod doctor;
pub mod format_series;
pub mod per_patch;
pub mod run;
pub mod shell;
pub mod test;
