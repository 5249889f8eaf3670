//! `cargo xtask`: build vanilla and patched Linux kernels, boot them in QEMU
//! with the validator as PID 1, and compare what each kernel does.
//!
//! `main` only parses the command line and dispatches to one module per
//! command; the steps they share live in their own modules.

mod bench;
mod check_series;
mod cmd;
mod compare;
mod console;
mod deps;
mod doctor;
mod e2e;
mod initramfs;
mod kbuild;
mod kconfig;
mod ktap;
mod lock;
mod paths;
mod pipeline;
mod qemu;
mod reaper;
mod report;
mod series;
mod source;
mod test;
mod ui;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Compat-mode kernel patches: build, boot, compare"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build vanilla and patched kernels, boot both, print the before/after table.
    Compare {
        /// Also write the table into the series' 0000-cover-letter.patch,
        /// between its `--- before/after table` marker lines.
        #[arg(long)]
        cover_letter: bool,
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
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Boot one kernel into an interactive busybox shell (exit with `reboot -f`).
    Shell {
        #[arg(long, value_enum, default_value_t = Variant::Patched)]
        variant: Variant,
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
    CheckSeries(RunOpts),
    /// Measure the edit-build-boot loop and compat-mode transition costs (reports, never fails on a number).
    Bench(RunOpts),
    /// Show what is installed, missing and usable (QEMU, KVM, kernel source).
    Doctor(SourceOpts),
    /// The full test run: unit tests, host validator tests, end-to-end pipeline.
    Test {
        /// Only the unit and host tests (no kernel build, no VM).
        #[arg(long)]
        quick: bool,
        #[command(flatten)]
        opts: RunOpts,
    },
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
    /// Also run the validator's stress scenario for DURATION (60s, 90, 2m), as validator.stress=.
    #[arg(long, value_name = "DURATION")]
    pub stress: Option<String>,
    /// The stress run's seed (decimal or 0x hex, as a stress run prints it).
    #[arg(long, value_name = "N", requires = "stress")]
    pub seed: Option<String>,
    /// Stress worker processes (validator default 4).
    #[arg(long, value_name = "N", requires = "stress")]
    pub workers: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Vanilla,
    Patched,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Vanilla => "vanilla",
            Variant::Patched => "patched",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    Auto,
    Kvm,
    Tcg,
}

fn main() {
    ui::install_interrupt_handler();
    let cli = Cli::parse();
    let result: Result<i32> = match cli.command {
        Command::Compare { cover_letter, opts } => compare::run(&opts, cover_letter),
        Command::Build { variant, opts } => pipeline::build_only(variant, &opts),
        Command::Run { variant, opts } => pipeline::run_one(variant, &opts),
        Command::Shell { variant, opts } => pipeline::shell(variant, &opts),
        Command::Gdb { variant, opts } => pipeline::gdb(variant, &opts),
        Command::CheckSeries(opts) => check_series::run(&opts),
        Command::Bench(opts) => bench::run(&opts),
        Command::Doctor(source) => doctor::run(&source),
        Command::Test { quick, opts } => test::run(quick, &opts),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            ui::finish_all();
            eprintln!("error: {err:#}");
            std::process::exit(2);
        }
    }
}
