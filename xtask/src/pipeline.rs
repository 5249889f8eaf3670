//! The steps the commands share, in the order a run takes them: open the
//! workspace (host packages, series, lock, source import), build a kernel
//! (applying the series for the patched one), pack the validator's
//! initramfs, boot it, and collect both kernels' reports for a comparison.
//! Progress and notes are reported here, from the facts the lower layers return.

use crate::host::ui::{self, Step};
use crate::host::{debian, deps, lock, paths};
use crate::kernel::build::{self, BuildInputs, Kernel};
use crate::kernel::series::{self, Series};
use crate::kernel::source::{self, Layout, Provider, SourceInfo};
use crate::kernel::{git, kconfig, Flavour, Variant};
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

pub mod prefixes;

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
    /// How the kernels are configured (the debug flavour: KASAN, lockdep...).
    pub flavour: Flavour,
    /// The validator's stress run, when asked: duration, seed, workers as
    /// the validator parses them (validator.stress=, .seed=, .workers=).
    pub stress: Option<String>,
    pub seed: Option<String>,
    pub workers: Option<u32>,
}

impl Settings {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// A kernel source imported and locked for this run.
pub struct Workspace {
    pub layout: Layout,
    pub flavour: Flavour,
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
            flavour: settings.flavour,
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
        let build = self.layout.build_for(variant, self.flavour);
        let fragment = kconfig::fragment_for(self.flavour, &build)?;
        build_kernel(
            &format!(
                "Building {} kernel{}",
                variant.name(),
                self.flavour.suffix()
            ),
            &BuildInputs {
                src: &src,
                build: &build,
                tree_id: &self.source.tree_id,
                series_hash: &self.series_hash(variant),
                fragment: &fragment,
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

    /// The validator initramfs (the same bytes for both variants): the
    /// validator as /init, compat-exec and the i386 busybox (and criu for
    /// the criu flavour, in a file of its own). The
    /// filter travels in it as a file, verbatim: the kernel command line
    /// would split it at spaces and read quotes its own way, so the guest
    /// would not select what `validator --list --filter` on the host did.
    pub fn validator_initramfs(
        &self,
        programs: &Programs,
        filter: Option<&str>,
    ) -> Result<PathBuf> {
        let dir = paths::target().join("initramfs");
        let out = dir.join(format!("validator{}.cpio", self.criu_suffix()));
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
            lists: &self.lists("validator.list")?,
            vars: &programs.vars(),
            extra,
        };
        initramfs::pack(&self.layout.src(Variant::Vanilla), &contents, &out)?;
        Ok(out)
    }

    /// The initramfs lists of a guest (`validator.list`, `shell.list`): the
    /// criu flavour adds the host's criu and its libraries
    /// (initramfs/criu.list).
    fn lists(&self, guest: &'static str) -> Result<Vec<&'static str>> {
        if self.flavour != Flavour::Criu {
            return Ok(vec![guest]);
        }
        // Installed like every other package the run needs (or the exact
        // apt-get line when that is not possible).
        deps::ensure(&deps::needed_for_criu())?;
        Ok(vec![guest, "criu.list"])
    }

    /// `-criu` for the criu flavour's initramfs, else nothing.
    fn criu_suffix(&self) -> String {
        match self.flavour {
            Flavour::Criu => self.flavour.suffix(),
            _ => String::new(),
        }
    }

    /// busybox as /bin/sh, initramfs/shell-init as /init, the validator as
    /// a command (`shell`, `gdb`, and the bundle's `run.sh --shell`); with
    /// the criu flavour, criu as well.
    pub fn shell_initramfs(&self, programs: &Programs) -> Result<PathBuf> {
        let out = paths::target()
            .join("initramfs")
            .join(format!("shell{}.cpio", self.criu_suffix()));
        let mut vars = vec![("BUSYBOX", Path::new(deps::BUSYBOX))];
        vars.extend(programs.vars());
        let contents = Contents {
            lists: &self.lists("shell.list")?,
            vars: &vars,
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

/// What the guests carry besides busybox: the validator, compat-exec and
/// Debian's i386 busybox (the program the real-program scenarios run).
pub struct Programs {
    pub validator: PathBuf,
    pub compat_exec: PathBuf,
    pub busybox_i386: PathBuf,
}

impl Programs {
    /// The `${VARS}` of initramfs/ lists that name them.
    pub fn vars(&self) -> [(&'static str, &Path); 3] {
        [
            ("VALIDATOR", &self.validator),
            ("COMPAT_EXEC", &self.compat_exec),
            ("BUSYBOX_I386", &self.busybox_i386),
        ]
    }
}

/// Where busybox-static puts its one binary.
const BUSYBOX_IN_PACKAGE: &str = "bin/busybox";

/// The static validator and compat-exec, built (cargo is incremental) and
/// checked, and the i386 busybox, fetched unless it already was.
pub fn programs() -> Result<Programs> {
    let step = Step::start("Building the static validator and compat-exec");
    let built = initramfs::build_static(&[initramfs::VALIDATOR, initramfs::COMPAT_EXEC]);
    let [validator, compat_exec]: [PathBuf; 2] = match built {
        Ok(binaries) => binaries
            .try_into()
            .map_err(|_| anyhow::anyhow!("cargo built fewer binaries than asked"))?,
        Err(err) => {
            step.fail();
            return Err(err);
        }
    };
    step.finish("done");
    let package = debian::BUSYBOX_I386;
    let step = Step::start(format!("Debian's {} (private apt state)", package.spec()));
    let unpacked = match debian::unpacked(package) {
        Ok(unpacked) => unpacked,
        Err(err) => {
            step.fail();
            return Err(err);
        }
    };
    step.finish(&format!(
        "{} {}",
        if unpacked.fetched {
            "fetched"
        } else {
            "cached"
        },
        unpacked.deb
    ));
    let busybox_i386 = unpacked.root.join(BUSYBOX_IN_PACKAGE);
    if !busybox_i386.is_file() {
        anyhow::bail!(
            "{} has no {BUSYBOX_IN_PACKAGE}; remove {} and retry",
            unpacked.deb,
            unpacked.root.display()
        );
    }
    Ok(Programs {
        validator,
        compat_exec,
        busybox_i386,
    })
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

/// Boots a guest other than the validator (the selftests, the benchmarks)
/// with the run's accelerator and timeout, and fails on any splat its
/// console shows.
pub fn boot_without_splats(guest: &Guest, settings: &Settings, log: &Path) -> Result<Booted> {
    let booted = boot(guest, settings.accel, settings.timeout(), log, &mut |_| {})?;
    ensure_no_splats(&booted.boot.console, log)?;
    Ok(booted)
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

/// Kernel command line words for the validator guest: the stress run,
/// for the debug flavour an oops that does not end the run (the guest's
/// default `oops=panic` is undone by the sysctl, applied later at boot),
/// and for the criu flavour the criu_* scenarios.
fn validator_append(settings: &Settings) -> String {
    let mut words = Vec::new();
    match settings.flavour {
        Flavour::Debug => words.push("sysctl.kernel.panic_on_oops=0".to_string()),
        Flavour::Criu => words.push("validator.criu".to_string()),
        Flavour::Default => {}
    }
    let stress = [
        ("stress", settings.stress.clone()),
        ("seed", settings.seed.clone()),
        ("workers", settings.workers.map(|w| w.to_string())),
    ];
    for (key, value) in stress {
        if let Some(value) = value {
            words.push(format!("validator.{key}={value}"));
        }
    }
    words.join(" ")
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
    let run = RunName {
        variant,
        label: variant.name(),
        series_hash: ws.series_hash(variant),
        dir: paths::results().join(format!("{}{}", variant.name(), settings.flavour.suffix())),
    };
    boot_validator_as(ws, &run, kernel, initrd, qemu, settings)
}

/// Which kernel a validator boot is of, and where its results go.
pub struct RunName {
    /// Whose declarations apply (a prefix of the series: vanilla for none).
    pub variant: Variant,
    /// How the progress line names the kernel (`vanilla`, `+0003`).
    pub label: String,
    pub series_hash: String,
    pub dir: PathBuf,
}

/// `boot_validator` for any kernel built from this workspace's source.
pub fn boot_validator_as(
    ws: &Workspace,
    run: &RunName,
    kernel: Kernel,
    initrd: &Path,
    qemu: &Qemu,
    settings: &Settings,
) -> Result<RunReport> {
    let RunName {
        variant,
        label,
        series_hash,
        dir,
    } = run;
    let variant = *variant;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let console_log = dir.join("console.log");
    let guest = Guest {
        extra_args: Vec::new(),
        qemu,
        kernel: &kernel.boot_image,
        initrd,
        append: validator_append(settings),
    };
    let step = Step::start(format!("Booting {label} kernel"));
    let (Booted { boot, accel, .. }, ktap) =
        boot_showing_scenarios(&guest, settings, &console_log, &step)
            .with_context(|| format!("booting the {label} kernel"))?;
    let allow = Allowlist::load(&paths::splat_allowlist())?;
    let mut problems =
        report::run_problems(&boot, &ktap, settings.timeout_secs, &allow, &console_log);
    if settings.flavour == Flavour::Debug {
        problems.extend(
            console::debug_detectors_silent(&boot.console)
                .into_iter()
                .map(|d| format!("debug flavour: {d} did not announce itself at boot")),
        );
    }
    let clean = if problems.is_empty() {
        "clean"
    } else {
        "PROBLEMS"
    };
    step.finish(&format!("{} results, {clean}", ktap.results.len()));
    let tail_from = boot.console.len().saturating_sub(30);
    let cpu = guest.cpu(accel);
    let guest_inputs = guest_inputs(initrd, &guest.append)?;
    let report = RunReport {
        variant,
        source: ws.source.clone(),
        series_hash: series_hash.clone(),
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
        guest_inputs,
    };
    report.write_json(&dir.join("report.json"))?;
    Ok(report)
}

/// The initramfs bytes and the kernel command line, as one string a later
/// run compares with its own (see `last_comparison`).
fn guest_inputs(initrd: &Path, append: &str) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes =
        std::fs::read(initrd).with_context(|| format!("cannot read {}", initrd.display()))?;
    Ok(format!(
        "initramfs sha256 {:x}; append {append:?}",
        Sha256::digest(&bytes)
    ))
}

/// The reports of the last `compare` if they are of these very inputs (the
/// same kernel build keys, initramfs bytes and kernel command line), so a
/// bundle of them needs no new boot: `bundle` twice gives the same bytes.
/// None when a report is missing, unreadable or of other inputs.
fn last_reports(
    ws: &Workspace,
    kernels: [&Kernel; 2],
    initrd: &Path,
    settings: &Settings,
) -> Result<Option<[RunReport; 2]>> {
    let inputs = guest_inputs(initrd, &validator_append(settings))?;
    let read = |variant: Variant, kernel: &Kernel| -> Option<RunReport> {
        let dir = paths::results().join(format!("{}{}", variant.name(), settings.flavour.suffix()));
        let text = std::fs::read_to_string(dir.join("report.json")).ok()?;
        let report: RunReport = serde_json::from_str(&text).ok()?;
        // The console log is overwritten by any later boot of this kernel
        // (an interrupted `run` too): it must still end as the report says.
        let console = std::fs::read_to_string(&report.console_log).ok()?;
        let lines: Vec<&str> = console.lines().collect();
        let tail = &lines[lines.len().saturating_sub(report.console_tail.len())..];
        let same = report.variant == variant
            && report.kernel.build_key == kernel.build_key
            && report.series_hash == ws.series_hash(variant)
            && report.guest_inputs == inputs
            && tail == report.console_tail.as_slice();
        same.then_some(report)
    };
    Ok(
        match (
            read(Variant::Vanilla, kernels[0]),
            read(Variant::Patched, kernels[1]),
        ) {
            (Some(v), Some(p)) => Some([v, p]),
            _ => None,
        },
    )
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
    pub programs: Programs,
    pub initrd: PathBuf,
    pub qemu: Qemu,
}

/// Builds both kernels and boots both (side by side).
pub fn collect(settings: &Settings) -> Result<Comparison> {
    collect_or_reuse(settings, false)
}

/// Like `collect`, but the last compare's reports stand in for new boots
/// when they are of the same inputs (`last_reports`); says which it did.
pub fn last_comparison(settings: &Settings) -> Result<Comparison> {
    collect_or_reuse(settings, true)
}

/// What the validator declares for the scenarios this run selects.
pub fn declared(programs: &Programs, settings: &Settings) -> Result<Vec<Declared>> {
    report::declared(
        &programs.validator,
        settings.filter.as_deref(),
        settings.stress.as_deref(),
        settings.flavour == Flavour::Criu,
    )
}

fn collect_or_reuse(settings: &Settings, reuse: bool) -> Result<Comparison> {
    // The declarations first: a filter that selects nothing is an error
    // before ten minutes of kernel builds, not after.
    let programs = programs()?;
    let declared = declared(&programs, settings)?;
    let ws = Workspace::open(settings)?;
    let vanilla = ws.kernel(Variant::Vanilla)?;
    let patched = ws.kernel(Variant::Patched)?;
    let initrd = ws.validator_initramfs(&programs, settings.filter.as_deref())?;
    let qemu = Qemu::find()?;
    if reuse {
        if let Some([vanilla, patched]) =
            last_reports(&ws, [&vanilla, &patched], &initrd, settings)?
        {
            ui::note("the last compare ran these very kernels and initramfs: its results are used, nothing is booted");
            return Ok(Comparison {
                ws,
                declared,
                vanilla,
                patched,
                programs,
                initrd,
                qemu,
            });
        }
    }

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
        programs,
        initrd,
        qemu,
    })
}
