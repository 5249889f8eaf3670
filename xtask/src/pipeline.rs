//! The steps the commands share, in the order a run takes them: open the
//! workspace (host packages, series, lock, source import), build a kernel
//! (applying the series for the patched one), pack the validator's
//! initramfs, boot it, and collect both kernels' reports for a comparison.
//! Progress and notes are reported here, from the facts the lower layers return.

use crate::host::ui::{self, Step};
use crate::host::{deps, lock, paths};
use crate::kernel::build::{self, BuildInputs, Kernel};
use crate::kernel::series::{self, Series};
use crate::kernel::source::{self, Layout, Provider, SourceInfo};
use crate::kernel::{git, Variant};
use crate::results::bundle;
use crate::results::ktap::Ktap;
use crate::results::report::{self, Declared, RunReport};
use crate::vm::accel::{self, Accel, Booted, NoKvm};
use crate::vm::console::{self, Allowlist};
use crate::vm::initramfs::{self, Contents};
use crate::vm::qemu::{Accelerator, Guest, Qemu};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a run is asked to do, as plain values (the CLI fills it in).
#[derive(Clone, Debug)]
pub struct Settings {
    pub kernel_src: Option<PathBuf>,
    pub kernel_tarball: Option<PathBuf>,
    /// The series directory; None: kernel-patches/.
    pub series: Option<PathBuf>,
    /// Parallel make jobs; None: one per CPU.
    pub jobs: Option<usize>,
    pub accel: Accel,
    /// Whole-boot timeout per VM.
    pub timeout_secs: u64,
    /// The validator's scenario filter.
    pub filter: Option<String>,
}

impl Settings {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// A kernel source imported and locked for this run.
pub struct Workspace {
    pub layout: Layout,
    pub source: SourceInfo,
    pub series: Series,
    pub jobs: usize,
    _lock: lock::DirLock,
}

impl Workspace {
    pub fn open(settings: &Settings) -> Result<Workspace> {
        let provider = Provider::new(
            settings.kernel_src.as_deref(),
            settings.kernel_tarball.as_deref(),
        )?;
        deps::ensure(&deps::needed_for(provider.needs()))?;
        let series_dir = settings
            .series
            .clone()
            .unwrap_or_else(paths::default_series_dir);
        let series = Series::load(&series_dir)?;
        if let Provider::Tree(dir) = &provider {
            // Before a whole tree is copied: refuse another release at once.
            source::check_series_base(&source::kernel_version(dir)?)?;
        }
        let layout = Layout::new(&provider);
        let lock = lock::lock_dir(&layout.dir)?;
        let step = Step::start(format!(
            "Importing kernel source ({})",
            provider.origin().display()
        ));
        let imported = source::import(&provider, &layout)?;
        if imported.refreshed && !matches!(provider, Provider::Tree(_)) {
            ui::note(&format!(
                "unpacked {} (once per tarball)",
                provider.origin().display()
            ));
        }
        step.finish(&format!("Linux {}", imported.info.version));
        source::check_series_base(&imported.info.version)?;
        if imported.info.tree_state.contains("uncommitted") {
            ui::note(&format!(
                "{}: {} (the reports record it)",
                provider.origin().display(),
                imported.info.tree_state
            ));
        }
        let jobs = settings.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        Ok(Workspace {
            layout,
            source: imported.info,
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
        build_kernel(
            &format!("Building {} kernel", variant.name()),
            &BuildInputs {
                src: &src,
                build: &self.layout.build(variant),
                tree_id: &self.source.tree_id,
                series_hash: &self.series_hash(variant),
                fragment: &paths::config_fragment(),
                jobs: self.jobs,
            },
        )
    }

    /// The patched worktree, with the series applied unless it already is.
    fn patched_tree(&self) -> Result<PathBuf> {
        let log = self.layout.logs().join("series.log");
        let tree = git::ensure_worktree(
            &self.layout.src(Variant::Vanilla),
            &self.layout.src(Variant::Patched),
            &self.source.commit,
            &log,
        )?;
        let stamp = self.layout.applied_series_stamp();
        let wanted = format!("{} {}\n", self.source.commit, self.series.hash());
        if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
            return Ok(tree);
        }
        let _ = std::fs::remove_file(&stamp);
        let step = Step::start(format!(
            "Applying {} patches from {}",
            self.series.patches.len(),
            self.series.dir.display()
        ));
        match series::apply(&tree, &self.source.commit, &self.series, &log) {
            Ok(()) => {
                step.finish("applied");
                std::fs::write(&stamp, wanted)
                    .with_context(|| format!("cannot write {}", stamp.display()))?;
                Ok(tree)
            }
            Err(err) => {
                step.fail();
                Err(err)
            }
        }
    }

    /// The validator initramfs (the same bytes for both variants). The
    /// filter travels in it as a file, verbatim: the kernel command line
    /// would split it at spaces and read quotes its own way, so the guest
    /// would not select what `validator --list --filter` on the host did.
    pub fn validator_initramfs(&self, validator: &Path, filter: Option<&str>) -> Result<PathBuf> {
        let dir = paths::target().join("initramfs");
        let out = dir.join("validator.cpio");
        let filter_file = dir.join("validator-filter");
        let extra = match filter {
            Some(filter) => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                std::fs::write(&filter_file, filter)
                    .with_context(|| format!("cannot write {}", filter_file.display()))?;
                format!(
                    "file {} {} 0644 0 0\n",
                    contract::initramfs::FILTER_FILE,
                    filter_file.display()
                )
            }
            None => String::new(),
        };
        let contents = Contents {
            lists: &["validator.list"],
            vars: &[("VALIDATOR", validator)],
            extra,
        };
        initramfs::pack(&self.layout.src(Variant::Vanilla), &contents, &out)?;
        Ok(out)
    }

    /// busybox as /bin/sh, initramfs/shell-init as /init, the validator as
    /// a command (`shell`, `gdb`, and the bundle's `run.sh --shell`).
    pub fn shell_initramfs(&self, validator: &Path) -> Result<PathBuf> {
        let out = paths::target().join("initramfs").join("shell.cpio");
        let contents = Contents {
            lists: &["shell.list"],
            vars: &[
                ("BUSYBOX", Path::new(deps::BUSYBOX)),
                ("VALIDATOR", validator),
            ],
            extra: String::new(),
        };
        initramfs::pack(&self.layout.src(Variant::Vanilla), &contents, &out)?;
        Ok(out)
    }
}

/// Builds (or finds cached) one kernel, shown as a step called `what`.
pub fn build_kernel(what: &str, inputs: &BuildInputs) -> Result<Kernel> {
    let step = Step::start(what);
    match build::build(inputs) {
        Ok(kernel) => {
            step.finish(if kernel.cached {
                "cached, nothing rebuilt"
            } else {
                "built"
            });
            Ok(kernel)
        }
        Err(err) => {
            step.fail();
            Err(err)
        }
    }
}

/// The static validator, built (cargo is incremental) and checked.
pub fn validator() -> Result<PathBuf> {
    let step = Step::start("Building the static validator");
    match initramfs::build_validator() {
        Ok(binary) => {
            step.finish("done");
            Ok(binary)
        }
        Err(err) => {
            step.fail();
            Err(err)
        }
    }
}

/// Boots `guest` with `--accel`'s choice, falling back from a failed KVM
/// guest to TCG, and says why in one line.
pub fn boot(
    guest: &Guest,
    accel: Accel,
    timeout: Duration,
    console_log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<Booted> {
    let booted = accel::run_with_fallback(guest, accel, timeout, console_log, on_line)?;
    match &booted.no_kvm {
        Some(NoKvm::FailedNow(reason)) => ui::note(&format!(
            "KVM not used: {reason}; this boot ran under TCG instead (remembered until the host reboots)"
        )),
        Some(NoKvm::NotTried(reason)) => note_once(
            &KVM_NOTE,
            &format!("KVM not used: {reason} (verdict of this host boot; `cargo xtask doctor` re-probes); TCG"),
        ),
        None => {}
    }
    if booted.accel == Accelerator::Tcg && guest.qemu.needs_smap_workaround() {
        note_once(
            &SMAP_NOTE,
            &format!(
                "{} under TCG: using -cpu max,-smap (far-return bug of QEMU < 9 with SMAP)",
                guest.qemu.version_text
            ),
        );
    }
    Ok(booted)
}

static KVM_NOTE: std::sync::Once = std::sync::Once::new();
static SMAP_NOTE: std::sync::Once = std::sync::Once::new();

/// Says `text` once per run.
fn note_once(once: &std::sync::Once, text: &str) {
    once.call_once(|| ui::note(text));
}

/// Fails with every splat on `console` that qemu/splat-allowlist does not
/// name: its first lines and where the full log is.
pub fn ensure_no_splats(console: &[String], log: &Path) -> Result<()> {
    let allow = Allowlist::load(&paths::splat_allowlist())?;
    let found = console::splats(console, &allow);
    anyhow::ensure!(
        found.is_empty(),
        "the kernel splatted:\n  {}",
        found
            .iter()
            .map(|s| s.describe(log))
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    Ok(())
}

/// Fails when a compare's run had problems (splats, timeouts, early stops).
pub fn ensure_clean(report: &RunReport) -> Result<()> {
    anyhow::ensure!(
        report.problems.is_empty(),
        "the {} run had problems:\n  {}",
        report.variant.name(),
        report.problems.join("\n  ")
    );
    Ok(())
}

/// Boots `kernel` with the validator initramfs and collects the report.
pub fn boot_validator(
    ws: &Workspace,
    variant: Variant,
    kernel: Kernel,
    initrd: &Path,
    qemu: &Qemu,
    settings: &Settings,
) -> Result<RunReport> {
    let dir = paths::results().join(variant.name());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let console_log = dir.join("console.log");
    let guest = Guest {
        qemu,
        kernel: &kernel.vmlinux,
        initrd,
        append: String::new(),
    };
    let step = Step::start(format!("Booting {} kernel", variant.name()));
    let (Booted { boot, accel, .. }, ktap) =
        boot_showing_scenarios(&guest, settings, &console_log, &step)
            .with_context(|| format!("booting the {} kernel", variant.name()))?;
    let allow = Allowlist::load(&paths::splat_allowlist())?;
    let problems = report::run_problems(&boot, &ktap, settings.timeout_secs, &allow, &console_log);
    let clean = if problems.is_empty() {
        "clean"
    } else {
        "PROBLEMS"
    };
    step.finish(&format!("{} results, {clean}", ktap.results.len()));
    let tail_from = boot.console.len().saturating_sub(30);
    let cpu = guest.cpu(accel);
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

/// Boots the validator guest, showing the running scenario next to `step`.
fn boot_showing_scenarios(
    guest: &Guest,
    settings: &Settings,
    console_log: &Path,
    step: &Step,
) -> Result<(Booted, Ktap)> {
    let mut ktap = Ktap::default();
    let mut on_line = |line: &str| {
        ktap.push_line(line);
        if let Some(id) = &ktap.last_started {
            step.set_detail(id);
        }
    };
    let booted = boot(
        guest,
        settings.accel,
        settings.timeout(),
        console_log,
        &mut on_line,
    )?;
    Ok((booted, ktap))
}

/// Packs a finished run into its reproduction bundle (docs/bundle.md).
pub fn write_bundle(run: &bundle::Run, output: Option<&Path>) -> Result<PathBuf> {
    let step = Step::start("Writing the reproduction bundle");
    match bundle::write(run, output) {
        Ok(path) => {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            step.finish(&format!("{:.1} MB", size as f64 / 1e6));
            Ok(path)
        }
        Err(err) => {
            step.fail();
            Err(err)
        }
    }
}

/// Both runs, with what was declared: everything a comparison is made from.
pub struct Comparison {
    pub ws: Workspace,
    pub declared: Vec<Declared>,
    pub vanilla: RunReport,
    pub patched: RunReport,
    /// What was booted, for a bundle of the run.
    pub validator: PathBuf,
    pub initrd: PathBuf,
    pub qemu: Qemu,
}

/// Builds both kernels and boots both (side by side).
pub fn collect(settings: &Settings) -> Result<Comparison> {
    // The declarations first: a filter that selects nothing is an error
    // before ten minutes of kernel builds, not after.
    let validator = validator()?;
    let declared = report::declared(&validator, settings.filter.as_deref())?;
    let ws = Workspace::open(settings)?;
    let vanilla = ws.kernel(Variant::Vanilla)?;
    let patched = ws.kernel(Variant::Patched)?;
    let initrd = ws.validator_initramfs(&validator, settings.filter.as_deref())?;
    let qemu = Qemu::find()?;

    // The two guests are independent: boot them side by side.
    let boot_one = |variant, kernel| boot_validator(&ws, variant, kernel, &initrd, &qemu, settings);
    let (vanilla, patched) = std::thread::scope(|s| {
        let v = s.spawn(|| boot_one(Variant::Vanilla, vanilla));
        let p = s.spawn(|| boot_one(Variant::Patched, patched));
        (
            v.join().expect("vanilla boot thread"),
            p.join().expect("patched boot thread"),
        )
    });
    let (vanilla, patched) = (vanilla?, patched?);
    Ok(Comparison {
        ws,
        declared,
        vanilla,
        patched,
        validator,
        initrd,
        qemu,
    })
}
