//! `cargo xtask run`: one kernel, its results against its expectations.

use crate::flags::RunOpts;
use crate::host::paths;
use crate::kernel::Variant;
use crate::pipeline::{self, Workspace};
use crate::results::bundle;
use crate::results::stress;
use crate::results::table::{self, Verdicts};
use crate::results::{exit, junit};
use crate::vm::qemu::Qemu;
use anyhow::Result;
use std::path::Path;

/// `bundle`: also write the reproduction bundle of this run, to the file
/// given or under target/bundle/ (docs/bundle.md); `junit`: the results as
/// JUnit XML too.
pub fn run(
    variant: Variant,
    opts: &RunOpts,
    bundle: Option<Option<&Path>>,
    junit: Option<&Path>,
) -> Result<i32> {
    let settings = opts.settings();
    let programs = pipeline::programs()?;
    let declared = pipeline::declared(&programs, &settings)?;
    let ws = Workspace::open(&settings)?;
    let kernel = ws.kernel(variant)?;
    let initrd = ws.validator_initramfs(&programs, settings.filter.as_deref())?;
    let qemu = Qemu::find()?;
    let report = pipeline::boot_validator(&ws, variant, kernel, &initrd, &qemu, &settings)?;
    let verdicts = Verdicts::new(&declared, &[&report]);
    let compact = verdicts.table(false).terminal();
    print!("{compact}");
    table::print_diagnostics(&report, &declared);
    table::print_problems(&report);
    if settings.stress.is_some() {
        println!(
            "\nstress on {}: {}",
            variant.name(),
            stress::figures(&report)
        );
    }
    println!(
        "\nreport: {}",
        paths::results()
            .join(format!("{}{}", variant.name(), settings.flavour.suffix()))
            .join("report.json")
            .display()
    );
    if let Some(output) = bundle {
        let series_hash = ws.series.hash();
        let header = table::header(&ws.source, ws.series.patches.len(), &series_hash, &report);
        let shell_initrd = ws.shell_initramfs(&programs)?;
        let run = bundle::Run {
            source: &ws.source,
            series: &ws.series,
            declared: &declared,
            reports: &[&report],
            table: &format!("{header}{compact}"),
            markdown: &format!("{header}\n{}", verdicts.table(true).markdown()),
            validator_initrd: &initrd,
            shell_initrd: &shell_initrd,
            qemu: &qemu,
            timeout_secs: settings.timeout_secs,
            filter: settings.filter.as_deref(),
        };
        let path = pipeline::write_bundle(&run, output)?;
        println!(
            "bundle (replays with bash, coreutils and QEMU: tar xf, then ./run.sh): {}",
            path.display()
        );
    }
    if let Some(file) = junit {
        junit::write(file, &declared, &[&report])?;
        println!("JUnit: {}", file.display());
    }
    let clean = verdicts.unexpected() == 0 && report.problems.is_empty();
    Ok(if clean {
        exit::AS_DECLARED
    } else {
        exit::NOT_AS_DECLARED
    })
}
