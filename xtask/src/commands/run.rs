//! `cargo xtask run`: one kernel, its results against its expectations.

use crate::flags::RunOpts;
use crate::host::paths;
use crate::kernel::Variant;
use crate::pipeline::{self, Workspace};
use crate::results::report;
use crate::results::table::{self, Verdicts};
use crate::vm::qemu::Qemu;
use anyhow::Result;

pub fn run(variant: Variant, opts: &RunOpts) -> Result<i32> {
    let settings = opts.settings();
    let programs = pipeline::programs()?;
    let declared = report::declared(&programs.validator, settings.filter.as_deref())?;
    let ws = Workspace::open(&settings)?;
    let kernel = ws.kernel(variant)?;
    let initrd = ws.validator_initramfs(&programs, settings.filter.as_deref())?;
    let qemu = Qemu::find()?;
    let report = pipeline::boot_validator(&ws, variant, kernel, &initrd, &qemu, &settings)?;
    let verdicts = Verdicts::new(&declared, &[&report]);
    print!("{}", verdicts.table(false).terminal());
    table::print_diagnostics(&report, &declared);
    table::print_problems(&report);
    println!(
        "\nreport: {}",
        paths::results()
            .join(variant.name())
            .join("report.json")
            .display()
    );
    let clean = verdicts.unexpected() == 0 && report.problems.is_empty();
    Ok(if clean { 0 } else { 1 })
}
