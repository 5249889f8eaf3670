//! The steps every command shares: host dependencies, source import, the
//! series, kernel builds, the initramfs and a validator boot.

use crate::kbuild::{self, BuildInputs, Kernel};
use crate::ktap::Ktap;
use crate::qemu::{self, Guest, Qemu};
use crate::report::{self, Declared, RunReport, Table};
use crate::series::Series;
use crate::source::{self, Layout, Provider, SourceInfo};
use crate::{deps, initramfs, lock, paths, ui, RunOpts, Variant};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// A kernel source imported and locked for this run.
pub struct Workspace {
    pub layout: Layout,
    pub source: SourceInfo,
    pub series: Series,
    pub jobs: usize,
    _lock: lock::DirLock,
}

impl Workspace {
    pub fn open(opts: &RunOpts) -> Result<Workspace> {
        let provider = Provider::from_opts(&opts.source)?;
        deps::ensure(&deps::needed_for(&provider))?;
        let series_dir = opts
            .series
            .clone()
            .unwrap_or_else(paths::default_series_dir);
        let series = Series::load(&series_dir)?;
        let layout = Layout::new(&provider);
        let lock = lock::lock_dir(&layout.dir)?;
        let step = ui::Step::start(format!(
            "Importing kernel source ({})",
            provider.origin().display()
        ));
        let source = source::import(&provider, &layout)?;
        step.finish(&format!("Linux {}", source.version));
        let jobs = opts.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        Ok(Workspace {
            layout,
            source,
            series,
            jobs,
            _lock: lock,
        })
    }

    /// The series hash a variant is built with (vanilla: the empty series).
    pub fn series_hash(&self, variant: Variant) -> String {
        match variant {
            Variant::Vanilla => String::new(),
            Variant::Patched => self.series.hash(),
        }
    }

    /// Builds one variant, applying the series first for the patched one.
    pub fn kernel(&self, variant: Variant) -> Result<Kernel> {
        let src = match variant {
            Variant::Vanilla => self.layout.src(Variant::Vanilla),
            Variant::Patched => self.patched_tree()?,
        };
        kbuild::build(&BuildInputs {
            what: format!("Building {} kernel", variant.name()),
            src: &src,
            build: &self.layout.build(variant),
            tree_id: &self.source.tree_id,
            series_hash: &self.series_hash(variant),
            fragment: &paths::config_fragment(),
            jobs: self.jobs,
        })
    }

    /// The patched worktree, with the series applied unless it already is.
    fn patched_tree(&self) -> Result<PathBuf> {
        let log = self.layout.logs().join("series.log");
        let tree = source::ensure_worktree(
            &self.layout,
            &self.layout.src(Variant::Patched),
            &self.source.commit,
            &log,
        )?;
        let stamp = self.layout.dir.join("patched").join("applied-series");
        let wanted = format!("{} {}\n", self.source.commit, self.series.hash());
        if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
            return Ok(tree);
        }
        let _ = std::fs::remove_file(&stamp);
        let step = ui::Step::start(format!(
            "Applying {} patches from {}",
            self.series.patches.len(),
            self.series.dir.display()
        ));
        match crate::series::apply(&tree, &self.source.commit, &self.series, &log) {
            Ok(()) => {
                step.finish("applied");
                std::fs::write(&stamp, wanted)?;
                Ok(tree)
            }
            Err(err) => {
                step.fail();
                Err(err)
            }
        }
    }

    /// The validator initramfs (the same bytes for both variants).
    pub fn validator_initramfs(&self, validator: &std::path::Path) -> Result<PathBuf> {
        let mut entries = initramfs::base_entries();
        entries.push(initramfs::Entry::File {
            dest: "/init".into(),
            source: validator.to_path_buf(),
            mode: 0o755,
        });
        let out = paths::target().join("initramfs").join("validator.cpio");
        std::fs::create_dir_all(out.parent().unwrap())?;
        initramfs::pack(&self.layout.src(Variant::Vanilla), &entries, &out)?;
        Ok(out)
    }
}

/// Kernel command line for the validator as PID 1.
fn validator_append(opts: &RunOpts) -> String {
    let mut words = Vec::new();
    if let Some(filter) = &opts.filter {
        words.push(format!("validator.filter={filter}"));
    }
    if let Some(stress) = &opts.stress {
        words.push(format!("validator.stress={stress}"));
    }
    if let Some(seed) = &opts.seed {
        words.push(format!("validator.seed={seed}"));
    }
    if let Some(workers) = opts.workers {
        words.push(format!("validator.workers={workers}"));
    }
    words.join(" ")
}

/// Boots `kernel` with the validator initramfs and collects the report.
pub fn boot_validator(
    ws: &Workspace,
    variant: Variant,
    kernel: Kernel,
    initrd: &std::path::Path,
    qemu: &Qemu,
    opts: &RunOpts,
) -> Result<RunReport> {
    let dir = paths::results().join(variant.name());
    std::fs::create_dir_all(&dir)?;
    let console_log = dir.join("console.log");
    let guest = Guest {
        qemu,
        kernel: &kernel.vmlinux,
        initrd,
        append: validator_append(opts),
    };
    let step = ui::Step::start(format!("Booting {} kernel", variant.name()));
    let mut ktap = Ktap::default();
    let (boot, accel) = qemu::run_with_fallback(
        &guest,
        opts.accel,
        Duration::from_secs(opts.timeout),
        &console_log,
        &mut |line| {
            ktap.push_line(line);
            if let Some(id) = &ktap.last_started {
                step.set_detail(id);
            }
        },
    )
    .with_context(|| format!("booting the {} kernel", variant.name()))?;
    let problems = report::run_problems(&boot, &ktap, opts.timeout);
    step.finish(&format!(
        "{} results, {}",
        ktap.results.len(),
        if problems.is_empty() {
            "clean"
        } else {
            "PROBLEMS"
        }
    ));
    let cpu = guest.cpu(accel).to_string();
    let tail_from = boot.console.len().saturating_sub(30);
    let report = RunReport {
        variant,
        source: ws.source.clone(),
        series_hash: ws.series_hash(variant),
        kernel,
        accelerator: accel,
        qemu: qemu.clone(),
        cpu,
        ending: boot.ending.clone(),
        problems,
        ktap,
        seconds_to_first_ktap: boot.seconds_to_first_ktap,
        seconds_boot_total: boot.seconds_total,
        console_log: console_log.clone(),
        console_tail: boot.console[tail_from..].to_vec(),
    };
    report.write_json(&dir.join("report.json"))?;
    Ok(report)
}

/// Prints a run's problems with the console tail, so no log needs opening.
pub fn print_problems(report: &RunReport) {
    if report.problems.is_empty() {
        return;
    }
    println!("\n{} kernel: the run had problems:", report.variant.name());
    for p in &report.problems {
        println!("  - {p}");
    }
    println!("  console tail ({}):", report.console_log.display());
    for line in &report.console_tail {
        println!("    | {line}");
    }
}

/// `cargo xtask build`: kernels only, printing where they are.
pub fn build_only(variant: Option<Variant>, opts: &RunOpts) -> Result<i32> {
    let ws = Workspace::open(opts)?;
    let variants = match variant {
        Some(v) => vec![v],
        None => vec![Variant::Vanilla, Variant::Patched],
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

/// `cargo xtask run`: one kernel, its results against its expectations.
pub fn run_one(variant: Variant, opts: &RunOpts) -> Result<i32> {
    let ws = Workspace::open(opts)?;
    let kernel = ws.kernel(variant)?;
    let validator = initramfs::build_validator()?;
    let declared = report::declared(&validator, opts)?;
    let initrd = ws.validator_initramfs(&validator)?;
    let qemu = Qemu::find()?;
    let report = boot_validator(&ws, variant, kernel, &initrd, &qemu, opts)?;
    let table = single_table(&report, &declared);
    print!("{}", table.terminal());
    print_diagnostics(&report, &declared, variant);
    print_problems(&report);
    let as_expected = table.rows.iter().all(|r| r[3] == "as expected");
    println!(
        "\nreport: {}",
        paths::results()
            .join(variant.name())
            .join("report.json")
            .display()
    );
    Ok(if as_expected && report.problems.is_empty() {
        0
    } else {
        1
    })
}

/// Every scenario the run should have reported.
fn single_table(report: &RunReport, declared: &[Declared]) -> Table {
    let rows = declared
        .iter()
        .map(|d| {
            let observed = report.status_of(&d.id);
            let expected = d.expected(report.variant);
            vec![
                d.id.clone(),
                report::cell(observed),
                expected.to_string(),
                verdict(report::matches(observed, expected)),
            ]
        })
        .collect();
    Table {
        header: vec![
            "scenario".into(),
            report.variant.name().into(),
            "expected".into(),
            "verdict".into(),
        ],
        rows,
    }
}

pub fn verdict(ok: bool) -> String {
    if ok {
        "as expected".into()
    } else {
        "UNEXPECTED".into()
    }
}

/// The diagnostics of every scenario that did not do what it declares.
pub fn print_diagnostics(report: &RunReport, declared: &[Declared], variant: Variant) {
    for d in declared {
        let Some(result) = report.ktap.get(&d.id) else {
            continue;
        };
        if report::matches(Some(&result.status), d.expected(variant)) {
            continue;
        }
        println!(
            "\n{} on {}: {} (expected {})",
            d.id,
            variant.name(),
            result.status.word(),
            d.expected(variant)
        );
        for line in &result.diagnostics {
            println!("  # {line}");
        }
    }
}

/// `cargo xtask shell`: the kernel with busybox, attached to this terminal.
pub fn shell(variant: Variant, opts: &RunOpts) -> Result<i32> {
    interactive(variant, opts, InteractiveMode::Shell)
}

/// `cargo xtask gdb`: QEMU waits for a debugger before the first instruction.
pub fn gdb(variant: Variant, opts: &RunOpts) -> Result<i32> {
    interactive(variant, opts, InteractiveMode::Gdb)
}

enum InteractiveMode {
    Shell,
    Gdb,
}

/// Boots the busybox initramfs with QEMU attached to this terminal.
fn interactive(variant: Variant, opts: &RunOpts, mode: InteractiveMode) -> Result<i32> {
    let ws = Workspace::open(opts)?;
    let kernel = ws.kernel(variant)?;
    let validator = initramfs::build_validator()?;
    let initrd = shell_initramfs(&ws, &validator)?;
    let qemu = Qemu::find()?;
    let (append, accel, extra): (&str, _, &[&str]) = match mode {
        InteractiveMode::Shell => ("", qemu::first_choice(opts.accel), &[]),
        // TCG and nokaslr: breakpoints and symbols match vmlinux.
        InteractiveMode::Gdb => ("nokaslr", qemu::Accelerator::Tcg, &["-s", "-S"]),
    };
    let guest = Guest {
        qemu: &qemu,
        kernel: &kernel.vmlinux,
        initrd: &initrd,
        append: append.into(),
    };
    match mode {
        InteractiveMode::Shell => println!(
            "Booting the {} kernel into busybox sh; `validator` runs the suite, `reboot -f` or Ctrl-A X leaves.",
            variant.name()
        ),
        InteractiveMode::Gdb => {
            println!("QEMU is stopped at the first instruction, gdb stub on localhost:1234. In another terminal:");
            println!("  gdb {} -ex 'target remote :1234' -ex 'hbreak start_kernel' -ex 'continue'", kernel.vmlinux.display());
            println!("(use hbreak before paging is up: the kernel's virtual addresses are not mapped yet)");
            println!("(TCG, nokaslr, so symbols match; for source-level debugging add CONFIG_DEBUG_INFO_DWARF5=y to qemu/kernel.config.)");
        }
    }
    qemu::interactive(&guest, accel, extra)
}

/// busybox as /bin/sh, a tiny /init script, and the validator as a command.
fn shell_initramfs(ws: &Workspace, validator: &std::path::Path) -> Result<PathBuf> {
    let dir = paths::target().join("initramfs");
    std::fs::create_dir_all(&dir)?;
    let init = dir.join("shell-init.sh");
    std::fs::write(
        &init,
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t proc proc /proc\nmount -t sysfs sys /sys\n\
         mount -t devtmpfs dev /dev 2>/dev/null\nmount -t tmpfs tmp /tmp\necho 'compat-mode test guest: busybox shell'\n\
         setsid cttyhack sh\nreboot -f\n",
    )?;
    let mut entries = initramfs::base_entries();
    entries.extend([
        initramfs::Entry::File {
            dest: "/bin/busybox".into(),
            source: deps::BUSYBOX.into(),
            mode: 0o755,
        },
        initramfs::Entry::File {
            dest: "/bin/validator".into(),
            source: validator.to_path_buf(),
            mode: 0o755,
        },
        initramfs::Entry::File {
            dest: "/init".into(),
            source: init,
            mode: 0o755,
        },
    ]);
    let out = dir.join("shell.cpio");
    initramfs::pack(&ws.layout.src(Variant::Vanilla), &entries, &out)?;
    Ok(out)
}
