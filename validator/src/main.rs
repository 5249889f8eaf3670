//! validator: checks how an x86-64 kernel lets a 64-bit process run 32-bit
//! code, and whether it implements the compat-switch series
//! (ARCH_SET_COMPAT/ARCH_SET_NATIVE/ARCH_GET_COMPAT).
//!
//! As PID 1 it runs the whole suite and reboots; on a host it takes
//! `--list [--json|--markdown]`, `--filter PATTERN`, `--json`, `--timeout S`
//! and `--bench` (see `options`).

mod bench;
mod catalogue;
mod icount;
mod ktap;
mod options;
mod pid1;
mod runner;
mod scenarios;
mod suite;
mod sys;

use options::{Action, Options, USAGE};

fn main() {
    if sys::getpid() == 1 {
        pid1::run();
    }
    // The execve the instruction counts measure: a static binary that exits.
    if std::env::args().nth(1).as_deref() == Some(icount::EXIT_AT_ONCE_ARG) {
        std::process::exit(0);
    }
    // The exec probe re-runs this binary as a scenario's helper: it is not
    // a user option and bypasses option parsing.
    if std::env::args().nth(1).as_deref() == Some(scenarios::compat_process::EXEC_PROBE_ARG) {
        std::process::exit(scenarios::compat_process::exec_probe());
    }
    let opts = match Options::from_args(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("validator: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    std::process::exit(run(&opts));
}

/// Does what the host command line asked; returns the exit status.
fn run(opts: &Options) -> i32 {
    if opts.action == Action::Help {
        println!("{USAGE}");
        return 0;
    }
    // The docs list every scenario, the stress run and criu's included.
    let asked = scenarios::Asked {
        stress: opts.stress.is_some() || opts.markdown,
        criu: opts.criu || opts.markdown,
    };
    let selected = match select(opts, asked) {
        Ok(selected) => selected,
        Err(e) => {
            eprintln!("validator: {e}");
            return 2;
        }
    };
    match opts.action {
        Action::Help => unreachable!("handled above"),
        Action::List if opts.markdown => print!("{}", catalogue::markdown(&selected)),
        Action::List if opts.json => println!("{}", catalogue::list_json(&selected)),
        Action::List => print!("{}", catalogue::list_text(&selected)),
        Action::Bench => return bench::run(),
        Action::Run => return suite::run(&selected, opts),
        Action::Shell => unreachable!("validator.shell comes only from the kernel command line"),
    }
    0
}

/// The scenarios the options ask for, those run only on request among
/// them when `asked` (the stress run is then configured: its seed is
/// chosen here).
pub fn select(
    opts: &Options,
    asked: scenarios::Asked,
) -> Result<Vec<&'static runner::Scenario>, String> {
    if let Some(duration) = opts.stress {
        let workers = opts.workers.unwrap_or(options::DEFAULT_WORKERS);
        scenarios::configure_stress(duration, opts.seed, workers);
    }
    scenarios::select(opts.filter.as_deref(), asked)
}
