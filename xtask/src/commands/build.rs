//! `cargo xtask build`: kernels only, printing where they are.

use crate::flags::RunOpts;
use crate::kernel::Variant;
use crate::pipeline::Workspace;
use anyhow::Result;

pub fn run(variant: Option<Variant>, opts: &RunOpts) -> Result<i32> {
    let ws = Workspace::open(&opts.settings())?;
    let variants = match variant {
        Some(v) => vec![v],
        None => Variant::BOTH.to_vec(),
    };
    for v in variants {
        let kernel = ws.kernel(v)?;
        println!(
            "{}: {} (config {})",
            v.name(),
            kernel.bzimage.display(),
            kernel.build_dir.join(".config").display()
        );
    }
    Ok(0)
}
