//! `cargo xtask test`: every test. Unit and host tests first (seconds),
//! then the end-to-end checks of the whole pipeline on real kernels.

use crate::{paths, RunOpts};
use anyhow::{bail, Context, Result};
use std::process::Command;

pub fn run(quick: bool, opts: &RunOpts) -> Result<i32> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["test", "--workspace"])
        .current_dir(paths::root())
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("cargo test --workspace failed");
    }
    if quick {
        return Ok(0);
    }
    crate::e2e::run(opts)
}
