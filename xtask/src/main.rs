//! `cargo xtask`: build vanilla and patched Linux kernels, boot them in QEMU
//! with the validator as PID 1, and compare what each kernel does.
//!
//! `main` parses the command line and dispatches to one module per command
//! (docs/design.md has the map).

mod commands;
mod flags;
mod host;
mod kernel;
#[cfg(test)]
mod layering;
mod pipeline;
mod results;
mod vm;

use clap::Parser;
use commands::{
    bench, build, check_series, compare, doctor, format_series, per_patch, run, shell, test,
};
use flags::{Cli, Command};

fn main() {
    host::process::install_interrupt_handler();
    let result = match Cli::parse().command {
        Command::Compare {
            per_patch: true,
            opts,
            ..
        } => per_patch::run(&opts),
        Command::Compare {
            cover_letter,
            bundle,
            junit,
            opts,
            ..
        } => compare::run(
            &opts,
            cover_letter,
            bundle.then_some(None),
            junit.as_deref(),
        ),
        // A bundle is the run of compare (both kernels) or run (one), packed.
        Command::Bundle {
            variant,
            output,
            opts,
        } => match variant.one() {
            None => compare::bundle(&opts, output.as_deref()),
            Some(one) => run::run(one, &opts, Some(output.as_deref()), None),
        },
        Command::Build { variant, opts } => build::run(variant, &opts),
        Command::Run {
            variant,
            junit,
            opts,
        } => run::run(variant, &opts, None, junit.as_deref()),
        Command::Shell {
            variant,
            compat_shell,
            opts,
        } => shell::shell(variant, &opts, compat_shell),
        Command::Gdb { variant, opts } => shell::gdb(variant, &opts),
        Command::CheckSeries { only, opts } => check_series::run(only.as_deref(), &opts),
        Command::FormatSeries(opts) => format_series::run(&opts),
        Command::Bench {
            instructions,
            per_patch,
            opts,
        } => bench::run(&opts, instructions, per_patch),
        Command::Doctor(source) => doctor::run(&source),
        Command::Test { quick, check, opts } => test::run(quick, check.as_deref(), &opts),
    };
    // The handler kills the children and exits with 130 on its own thread;
    // this thread may see a killed child first and must not report that as
    // an error of its own (exit 2 instead of 130).
    if host::process::interrupted() {
        std::process::exit(results::exit::INTERRUPTED);
    }
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            host::ui::finish_all();
            eprintln!("error: {err:#}");
            std::process::exit(results::exit::HARNESS_ERROR);
        }
    }
}
