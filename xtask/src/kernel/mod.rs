//! The Linux tree: where it comes from (`source`), what is applied on top
//! (`series`), how it is configured (`kconfig`) and built (`build`).
//! Nothing here prints: the callers report what these functions return.

pub mod build;
pub mod git;
pub mod identity;
pub mod kconfig;
pub mod mail;
pub mod maintainers;
pub mod outgoing;
pub mod series;
pub mod source;

use clap::ValueEnum;

/// The two kernels every comparison is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Vanilla,
    Patched,
}

/// How a kernel is configured: the test VM's fragment alone (`default`,
/// fast), or with a fragment of its own on top: `debug` (KASAN, lockdep,
/// DEBUG_VM, UBSAN, KFENCE, kmemleak; qemu/debug.config) or `criu` (what
/// Debian's criu needs to check, dump and restore in the guest; the guest
/// then carries criu and runs the `criu_*` scenarios; qemu/criu.config).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    #[default]
    Default,
    Debug,
    Criu,
}

impl Flavour {
    pub fn name(self) -> String {
        self.to_possible_value()
            .expect("no flavour is skipped")
            .get_name()
            .to_string()
    }

    /// What a build or results folder of this flavour is called: the
    /// default flavour keeps the plain names it always had.
    pub fn suffix(self) -> String {
        match self {
            Flavour::Default => String::new(),
            Flavour::Debug | Flavour::Criu => format!("-{}", self.name()),
        }
    }
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
