//! The command line and nothing else: clap types, and how they become the
//! plain settings the pipeline takes. Only `main.rs` and `commands/` use it.

use crate::kernel::{Flavour, Variant};
use crate::pipeline::Settings;
use crate::vm::accel::Accel;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Compat-mode kernel patches: build, boot, compare",
    after_help = "Exit codes: 0 every scenario as declared (or the check passed); 1 a scenario not as declared, a run problem or a splat; 2 a harness or build error; 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Build vanilla and patched kernels, boot both, print the before/after table.
    Compare {
        /// Also write the table into the series' 0000-cover-letter.patch,
        /// between its `--- before/after table` marker lines.
        #[arg(long)]
        cover_letter: bool,
        /// Also write the run's reproduction bundle under target/bundle/
        /// (a .tar.gz that replays it with bash, coreutils and QEMU only).
        #[arg(long)]
        bundle: bool,
        /// Also write the results as JUnit XML (one testcase per scenario and kernel).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Boot the kernel after each prefix of the series (vanilla, +0001,
        /// ...; check-series' prefix builds are reused) and print which patch
        /// changes which scenario, flagging a change that is not the declared one.
        #[arg(long, conflicts_with_all = ["cover_letter", "bundle", "junit"])]
        per_patch: bool,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Run compare (or run, for one kernel) and pack the run into a .tar.gz
    /// that replays it anywhere with bash, coreutils and QEMU (docs/bundle.md).
    Bundle {
        /// The kernels to boot and bundle.
        #[arg(long, value_enum, default_value_t = Kernels::Both)]
        variant: Kernels,
        /// The archive to write (default: target/bundle/<name>.tar.gz).
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Build kernels only (both unless --variant is given); no VM.
    Build {
        #[arg(long, value_enum)]
        variant: Option<Variant>,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Build one kernel, boot it with the validator and print its results.
    Run {
        #[arg(long, value_enum, default_value_t = Variant::Patched)]
        variant: Variant,
        /// Also write the results as JUnit XML (one testcase per scenario).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Boot one kernel into an interactive busybox shell (exit with `reboot -f`).
    Shell {
        #[arg(long, value_enum, default_value_t = Variant::Patched)]
        variant: Variant,
        /// The shell is Debian's i386 busybox sh run by compat-exec: a 32-bit
        /// shell in a 64-bit process switched with ARCH_SET_COMPAT (patched kernel).
        #[arg(long)]
        compat_shell: bool,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Boot one kernel halted under QEMU's gdb stub and print how to attach.
    Gdb {
        #[arg(long, value_enum, default_value_t = Variant::Patched)]
        variant: Variant,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// The series' quality checks: apply, checkpatch, every prefix builds, config matrix, selftests.
    CheckSeries {
        /// Only the checks whose name contains one of the comma-separated
        /// words (e.g. "checkpatch,selftests", "builds with"); the series is
        /// always applied and built.
        #[arg(long, value_name = "TEXT")]
        only: Option<String>,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Write the series as mails to send (git send-email), under your git
    /// identity, with Cc lines, base and the last compare's table (docs/pipeline.md).
    FormatSeries(FormatOpts),
    /// Measure the edit-build-boot loop and compat-mode transition costs (reports, never fails on a number).
    Bench {
        /// Instead of the build-loop figures: guest instructions per
        /// operation (user and kernel) on vanilla and patched, counted by a
        /// QEMU TCG plugin (docs/benchmarks.md), with the wall-clock
        /// micro-benchmarks beside them.
        #[arg(long)]
        instructions: bool,
        /// With --instructions: count on the kernel after each prefix of the
        /// series (vanilla, +0001, ...; check-series' prefix builds are
        /// reused) and show which patch changes which operation's count.
        #[arg(long, requires = "instructions")]
        per_patch: bool,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Show what is installed, missing and usable (QEMU, KVM, kernel source).
    Doctor(SourceOpts),
    /// The full test run: unit tests, host validator tests, end-to-end pipeline.
    Test {
        /// Only the unit and host tests (no kernel build, no VM).
        #[arg(long)]
        quick: bool,
        /// Only the end-to-end checks whose name contains TEXT (after the unit tests).
        #[arg(long, value_name = "TEXT", conflicts_with = "quick")]
        check: Option<String>,
        #[command(flatten)]
        opts: RunOpts,
    },
}

/// `format-series`: where the mails go and what they carry besides the patches.
#[derive(Args, Clone, Debug)]
pub struct FormatOpts {
    /// What goes inside the subject's brackets, before NN/MM.
    #[arg(long, default_value = "PATCH v2", value_name = "WORDS")]
    pub subject_prefix: String,
    /// The folder to write (default: target/format-series/<prefix as a slug>/);
    /// it must be empty or hold only the mails of an earlier run.
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// The upstream commit the series applies to (full id), for the cover
    /// letter's base-commit: line; a clean --kernel-src git tree gives its own.
    #[arg(long, value_name = "SHA")]
    pub base_commit: Option<String>,
    /// Send the cover letter without a before/after table (else the last
    /// `compare` of this very series and source must have passed).
    #[arg(long)]
    pub no_table: bool,
    #[command(flatten)]
    pub source: SourceOpts,
    /// Directory holding the patch series (a `series` file and its patches).
    #[arg(long, value_name = "DIR")]
    pub series: Option<PathBuf>,
}

/// `--variant` of `bundle`: one kernel or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kernels {
    Vanilla,
    Patched,
    Both,
}

impl Kernels {
    /// The one kernel asked for, or None for both.
    pub fn one(self) -> Option<Variant> {
        match self {
            Kernels::Vanilla => Some(Variant::Vanilla),
            Kernels::Patched => Some(Variant::Patched),
            Kernels::Both => None,
        }
    }
}

/// Where the kernel source comes from. Default: Debian's linux-source-6.12.
#[derive(Args, Clone, Debug, Default)]
pub struct SourceOpts {
    /// A kernel tree (git checkout or unpacked release); it is copied, never modified.
    #[arg(long, value_name = "DIR", conflicts_with = "kernel_tarball")]
    pub kernel_src: Option<PathBuf>,
    /// A kernel release tarball (.tar.xz, .tar.gz, ...), e.g. linux-6.12.tar.xz.
    #[arg(long, value_name = "FILE")]
    pub kernel_tarball: Option<PathBuf>,
}

#[derive(Args, Clone, Debug)]
pub struct RunOpts {
    #[command(flatten)]
    pub source: SourceOpts,
    /// Directory holding the patch series (a `series` file and its patches).
    #[arg(long, value_name = "DIR")]
    pub series: Option<PathBuf>,
    /// QEMU accelerator; `auto` tries KVM and falls back to TCG if the guest stays silent.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// Whole-boot timeout in seconds, per VM.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Only run matching scenarios (validator syntax: substring, `*` wildcard, commas for alternatives).
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// Parallel make jobs (default: number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Kernel configuration: `debug` adds qemu/debug.config (KASAN, lockdep, DEBUG_VM, UBSAN, KFENCE, kmemleak).
    #[arg(long, value_enum, default_value_t = Flavour::Default)]
    pub flavour: Flavour,
    /// Also run the validator's stress scenario for DURATION (60s, 90, 2m).
    #[arg(long, value_name = "DURATION")]
    pub stress: Option<String>,
    /// The stress run's seed (decimal or 0x hex, as a stress run prints it).
    #[arg(long, value_name = "N", requires = "stress")]
    pub seed: Option<String>,
    /// Stress worker processes (the validator's default: 4).
    #[arg(long, value_name = "N", requires = "stress")]
    pub workers: Option<u32>,
}

impl RunOpts {
    pub fn settings(&self) -> Settings {
        Settings {
            kernel_src: self.source.kernel_src.clone(),
            kernel_tarball: self.source.kernel_tarball.clone(),
            series: self.series.clone(),
            jobs: self.jobs,
            accel: self.accel,
            timeout_secs: self.timeout,
            filter: self.filter.clone(),
            flavour: self.flavour,
            stress: self.stress.clone(),
            seed: self.seed.clone(),
            workers: self.workers,
        }
    }
}
