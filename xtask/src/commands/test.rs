//! `cargo xtask test`: every test. Unit and host tests first (seconds),
//! then the end-to-end checks of the whole pipeline on real kernels (`e2e`).

mod debug_flavour;
mod e2e;
mod fake_apt;
mod fake_kvm;
mod format_series;
mod per_patch;
mod warn_on;

use crate::flags::RunOpts;
use crate::host::{paths, process::Cmd};
use anyhow::{bail, Result};

pub fn run(quick: bool, only: Option<&str>, opts: &RunOpts) -> Result<i32> {
    let status = Cmd::cargo()
        .args(["test", "--workspace"])
        .dir(paths::root())
        .run()?;
    if !status.success() {
        bail!("cargo test --workspace failed");
    }
    if quick {
        return Ok(0);
    }
    e2e::run(only, opts)
}
