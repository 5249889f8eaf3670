//! The Linux tree: where it comes from (`source`), what is applied on top
//! (`series`), how it is configured (`kconfig`) and built (`build`).
//! Nothing here prints: the callers report what these functions return.

pub mod build;
pub mod git;
pub mod kconfig;
pub mod series;
pub mod source;

use clap::ValueEnum;

/// The two kernels every comparison is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Vanilla,
    Patched,
}

impl Variant {
    pub const BOTH: [Variant; 2] = [Variant::Vanilla, Variant::Patched];

    /// The word used on the command line, in paths and in reports.
    pub fn name(self) -> String {
        self.to_possible_value()
            .expect("no variant is skipped")
            .get_name()
            .to_string()
    }
}
