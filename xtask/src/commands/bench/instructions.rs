//! `cargo xtask bench --instructions`: guest instructions per operation on
//! vanilla and patched, counted by the TCG plugin qemu/plugins/icount.c
//! between the validator's markers (contract::icount), each kernel booted
//! `RUNS` times; plus the wall-clock micro-benchmarks of a plain boot,
//! which are noisy under TCG on a shared host.

use super::{machine_description, micro_benchmarks, micro_table, Micro};
use crate::flags::RunOpts;
use crate::host::{paths, ui};
use crate::kernel::Variant;
use crate::pipeline::prefixes;
use crate::pipeline::{self, Settings, Workspace};
use crate::results::icount::{self, ConsoleReport, Measured, PluginOutput};
use crate::results::table::Table;
use crate::vm::accel::Accel;
use crate::vm::icount::{self as plugin, Plugin};
use crate::vm::qemu::{Guest, Qemu};
use anyhow::{bail, Context, Result};
use contract::icount::Op;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Boots per kernel: two, so that the report shows the run-to-run spread.
pub(super) const RUNS: usize = 2;

pub(super) type PerOp = BTreeMap<Op, Measured>;

/// Under TCG the guest's TSC calibration against the PIT succeeds or fails
/// with the host's load, and with it the clocksource (tsc, or jiffies with
/// the vDSO falling back to the syscall): clock_gettime through the vDSO
/// took 55 or 355 instructions from one boot to the next. A stated
/// frequency and no watchdog make it tsc every time. The frequency only
/// scales the guest's clock, whose wall-clock figures these boots do not
/// report.
const FIXED_TSC: &str = "tsc_early_khz=1000000 tsc=reliable";

pub fn run(opts: &RunOpts, per_patch: bool) -> Result<i32> {
    let settings = tcg_settings(opts)?;
    if per_patch {
        // Before anything is fetched or built.
        prefixes::refuse_flavour(settings.flavour)?;
    }
    let qemu = Qemu::find()?;
    let step = ui::Step::start("TCG plugin (qemu-plugin.h from Debian's qemu source package)");
    let plugin = plugin::build(&qemu)?;
    step.finish(&format!(
        "{} {}",
        plugin.qemu_source.name, plugin.qemu_source.version
    ));
    let ws = Workspace::open(&settings)?;
    if per_patch {
        return super::instructions_per_patch::run(&ws, &qemu, &plugin, &settings);
    }
    let kernels = [
        ws.kernel(Variant::Vanilla)?.vmlinux,
        ws.kernel(Variant::Patched)?.vmlinux,
    ];
    let programs = pipeline::programs()?;
    let initrd = ws.validator_initramfs(&programs, None)?;
    let mut counts = Vec::new();
    for (kernel, variant) in kernels.iter().zip([Variant::Vanilla, Variant::Patched]) {
        let has_series = variant == Variant::Patched;
        let label = variant.name();
        counts.push(count_kernel(
            &qemu, &plugin, kernel, &initrd, &settings, &label, has_series,
        )?);
    }
    let micro = micro_benchmarks(&programs.validator, &kernels, &initrd, &settings)?;
    report(&qemu, &counts[0], &counts[1], &micro)?;
    Ok(0)
}

/// Plugins run only under TCG: `--accel auto` means TCG here.
fn tcg_settings(opts: &RunOpts) -> Result<Settings> {
    let mut settings = opts.settings();
    match settings.accel {
        Accel::Kvm => bail!("instruction counts need TCG (QEMU runs plugins only under TCG): use --accel tcg or auto"),
        _ => settings.accel = Accel::Tcg,
    }
    Ok(settings)
}

/// The counts of the kernel called `label` (vanilla, patched, +0003)
/// over `RUNS` boots; `has_series`: the series' operation must run.
pub(super) fn count_kernel(
    qemu: &Qemu,
    plugin: &Plugin,
    kernel: &Path,
    initrd: &Path,
    settings: &Settings,
    label: &str,
    has_series: bool,
) -> Result<PerOp> {
    let boots = (1..=RUNS)
        .map(|run| counted_boot(qemu, plugin, kernel, initrd, settings, label, run))
        .collect::<Result<Vec<_>>>()?;
    icount::summarize(&boots, has_series)
        .with_context(|| format!("instruction counts of the {label} kernel"))
}

/// One boot with the plugin of the kernel called `label`: its sample file
/// and what the validator said.
fn counted_boot(
    qemu: &Qemu,
    plugin: &Plugin,
    kernel: &Path,
    initrd: &Path,
    settings: &Settings,
    label: &str,
    run: usize,
) -> Result<(PluginOutput, ConsoleReport)> {
    let name = format!("icount-{label}-{run}");
    let step = ui::Step::start(format!(
        "Instruction counts, {label} kernel, boot {run}/{RUNS}"
    ));
    let results = paths::results();
    std::fs::create_dir_all(&results)?;
    let samples = results.join(format!("{name}.txt"));
    let log = results.join(format!("{name}-console.log"));
    let _ = std::fs::remove_file(&samples);
    let guest = Guest {
        qemu,
        kernel,
        initrd,
        append: format!("validator.bench {FIXED_TSC}"),
        extra_args: plugin::qemu_args(plugin, &samples)?,
    };
    let where_ = || {
        format!(
            "the {label} guest, boot {run} (console {}, samples {})",
            log.display(),
            samples.display()
        )
    };
    let booted = pipeline::boot_without_splats(&guest, settings, &log).with_context(where_)?;
    let text = std::fs::read_to_string(&samples)
        .with_context(|| {
            format!(
                "the plugin wrote no samples: {}",
                booted.boot.qemu_stderr.trim()
            )
        })
        .with_context(where_)?;
    let output = icount::parse_plugin_output(&text).with_context(where_)?;
    let console = icount::console_report(&booted.boot.console).with_context(where_)?;
    step.finish("done");
    Ok((output, console))
}

fn report(qemu: &Qemu, vanilla: &PerOp, patched: &PerOp, micro: &[Micro]) -> Result<()> {
    let table = counts_table(vanilla, patched);
    let header = format!(
        "{}\n{} under TCG (-smp 1), {RUNS} boots per kernel; instructions per operation, \
         median over every sample of every boot; spread: (p90 - p10) / median within the \
         boots, and (largest - smallest) / smallest of the boots' medians",
        machine_description(),
        qemu.version_text
    );
    let wall = micro_table(micro);
    let noisy = "Wall-clock (NOISY: TCG on a shared host; a plain boot without the plugin):";
    println!(
        "\n{header}\n\n{}\n{noisy}\n{}",
        table.terminal(),
        wall.terminal()
    );
    let md = format!(
        "{header}\n\n{}\n{noisy}\n\n{}",
        table.markdown(),
        wall.markdown()
    );
    let out = paths::results().join("bench-instructions.md");
    std::fs::write(&out, md).with_context(|| format!("cannot write {}", out.display()))?;
    let json = serde_json::json!({
        "qemu": qemu.version_text,
        "vanilla": named(vanilla),
        "patched": named(patched),
        "micro": micro,
    });
    let json_path: PathBuf = paths::results().join("bench-instructions.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)?;
    println!("\nwritten: {} and {}", out.display(), json_path.display());
    Ok(())
}

pub(super) fn named(per_op: &PerOp) -> BTreeMap<&'static str, &Measured> {
    per_op.iter().map(|(op, m)| (op.name(), m)).collect()
}

fn counts_table(vanilla: &PerOp, patched: &PerOp) -> Table {
    let header = [
        "operation",
        "vanilla user",
        "vanilla kernel",
        "vanilla total",
        "patched user",
        "patched kernel",
        "patched total",
        "patched/vanilla",
        "spread v / p",
        "run-to-run v / p",
    ];
    let rows = Op::ALL
        .iter()
        .map(|op| row(*op, &vanilla[op], &patched[op]))
        .collect();
    Table {
        header: header.map(String::from).to_vec(),
        rows,
    }
}

fn row(op: Op, vanilla: &Measured, patched: &Measured) -> Vec<String> {
    let cells = |m: &Measured| match m {
        Measured::Counts(c) => [
            c.user_median.to_string(),
            c.kernel_median.to_string(),
            c.total.median.to_string(),
        ],
        Measured::NotRun(_) => ["n/a".into(), "n/a".into(), "n/a".into()],
    };
    let pct = |x: f64| format!("{:.2}%", x * 100.0);
    let both = |f: &dyn Fn(&icount::Counts) -> String| {
        let one = |m: &Measured| match m {
            Measured::Counts(c) => f(c),
            Measured::NotRun(_) => "-".into(),
        };
        format!("{} / {}", one(vanilla), one(patched))
    };
    let ratio = match (vanilla, patched) {
        (Measured::Counts(v), Measured::Counts(p)) => {
            format!(
                "{:.4}",
                p.total.median as f64 / v.total.median.max(1) as f64
            )
        }
        _ => "-".into(),
    };
    let mut out = vec![op.name().to_string()];
    out.extend(cells(vanilla));
    out.extend(cells(patched));
    out.push(ratio);
    out.push(both(&|c| pct(c.total.spread())));
    out.push(both(&|c| pct(c.run_to_run())));
    out
}
