//! One `Options` type, read from argv on a host or from the kernel command
//! line (`validator.<key>[=value]`) and the initramfs filter file as PID 1. Bad input is an error that
//! names the option and the value, never a silent default.

use std::fmt;
use std::time::Duration;

pub const USAGE: &str = "usage: validator [--list [--json|--markdown]] [--filter PATTERN] [--json] [--timeout SECONDS] [--bench]
                 [--stress DURATION [--seed N] [--workers N]] [--criu]
  (no options)      run every scenario, print KTAP v1; exit 0 iff all results match the declared
                    expectations for this kernel (vanilla or patched, probed with ARCH_GET_COMPAT)
  --list            list scenarios with declared results (--json: for the harness, --markdown: docs/scenarios.md)
  --filter PATTERN  only ids containing PATTERN (comma-separated alternatives, * wildcard)
  --json            print results as JSON instead of KTAP
  --timeout S       per-scenario timeout (default 20)
  --bench           micro-benchmarks as KTAP diagnostics
  --stress D        also run stress_compat_mode for D (90, 90s, 2m): random operations in worker processes
  --seed N          the stress run's seed (decimal or 0x hex; default: random, printed)
  --workers N       stress worker processes (default 4, at most 64)
  --criu            also run the criu_* scenarios (Debian's criu in the guest: `cargo xtask run --flavour criu`)
As PID 1: kernel command line validator.filter=P, validator.timeout=S, validator.shell (exec /bin/sh), validator.bench,
  validator.stress=D, validator.seed=N, validator.workers=N, validator.criu;
  the filter may instead come verbatim from the file /validator-filter in the initramfs (what xtask uses)";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_WORKERS: u32 = 4;
const MAX_WORKERS: u32 = 64;
const MAX_STRESS: Duration = Duration::from_secs(24 * 3600);

/// What the validator was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run the selected scenarios (the default).
    Run,
    /// Print the catalogue with the declared results.
    List,
    /// Micro-benchmarks as KTAP diagnostics.
    Bench,
    /// PID 1 only: exec /bin/sh instead of running the suite.
    Shell,
    /// Print the usage text.
    Help,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub action: Action,
    /// JSON instead of KTAP (run) or text (list).
    pub json: bool,
    /// Markdown (list only): the text of docs/scenarios.md.
    pub markdown: bool,
    /// Comma-separated id patterns; `None` selects every scenario.
    pub filter: Option<String>,
    /// Per-scenario timeout.
    pub timeout: Duration,
    /// Run the stress scenario for this long (it runs only when asked).
    pub stress: Option<Duration>,
    /// The stress run's seed; `None` picks one (and prints it).
    pub seed: Option<u64>,
    /// Stress worker processes; `None` is `DEFAULT_WORKERS`.
    pub workers: Option<u32>,
    /// Run the criu_* scenarios too (they need criu in the initramfs and
    /// the criu kernel flavour, so they run only when asked).
    pub criu: bool,
}

/// Why the options cannot be used, naming the option and the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionsError(String);

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            action: Action::Run,
            json: false,
            markdown: false,
            filter: None,
            timeout: DEFAULT_TIMEOUT,
            stress: None,
            seed: None,
            workers: None,
            criu: false,
        }
    }
}

impl Options {
    /// Parses the arguments after the program name: `--flag`, `--key value`
    /// or `--key=value`.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Options, OptionsError> {
        let mut opts = Options::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
                _ => (arg.as_str(), None),
            };
            match flag {
                "--filter" | "--timeout" | "--stress" | "--seed" | "--workers" => {
                    let value = inline.or_else(|| args.next()).ok_or_else(|| {
                        OptionsError(format!("{flag} needs a value (see --help)"))
                    })?;
                    opts.set_value(flag, &flag[2..], &value)?;
                }
                "--list" | "--json" | "--markdown" | "--bench" | "--criu" | "--help" | "-h" => {
                    if let Some(value) = inline {
                        return Err(OptionsError(format!(
                            "{flag} takes no value (got `{value}`)"
                        )));
                    }
                    opts.set_flag(flag, flag.trim_start_matches('-'))?;
                }
                _ => return Err(OptionsError(format!("unknown argument `{arg}`"))),
            }
        }
        opts.check()
    }

    /// Parses the `validator.<key>[=value]` words of a kernel command line
    /// (`filter`, `timeout`, `stress`, `seed`, `workers`, `shell`, `bench`,
    /// `criu`);
    /// other words are the kernel's and are ignored.
    pub fn from_cmdline(cmdline: &str) -> Result<Options, OptionsError> {
        let mut opts = Options::default();
        for word in cmdline.split_whitespace() {
            let Some(rest) = word.strip_prefix("validator.") else {
                continue;
            };
            match (rest.split_once('='), rest) {
                (Some((key @ ("filter" | "timeout" | "stress" | "seed" | "workers"), value)), _) => {
                    opts.set_value(&format!("validator.{key}"), key, value)?
                }
                (None, key @ ("shell" | "bench" | "criu")) => opts.set_flag(word, key)?,
                (None, "filter" | "timeout" | "stress" | "seed" | "workers") => {
                    return Err(OptionsError(format!("{word} needs a value ({word}=...)")))
                }
                _ => {
                    return Err(OptionsError(format!(
                        "unknown kernel command line option `{word}` (known: validator.filter=P, validator.timeout=S, validator.stress=D, validator.seed=N, validator.workers=N, validator.shell, validator.bench, validator.criu)"
                    )))
                }
            }
        }
        opts.check()
    }

    /// The options of the validator as PID 1: the kernel command line
    /// and, if xtask put one into the initramfs, the filter file
    /// (`contract::initramfs::FILTER_FILE`), read verbatim so that the
    /// guest matches exactly as the host did. Both at once is an error.
    pub fn for_guest(cmdline: &str, filter_file: Option<String>) -> Result<Options, OptionsError> {
        let mut opts = Options::from_cmdline(cmdline)?;
        let Some(content) = filter_file else {
            return Ok(opts);
        };
        if opts.filter.is_some() {
            return Err(OptionsError(format!(
                "validator.filter on the kernel command line and {} in the initramfs: give one",
                contract::initramfs::FILTER_FILE
            )));
        }
        let filter = content.strip_suffix('\n').unwrap_or(&content);
        opts.filter = Some(filter.to_string());
        Ok(opts)
    }

    /// `name` is the option as the user wrote it, for messages.
    fn set_value(&mut self, name: &str, key: &str, value: &str) -> Result<(), OptionsError> {
        match key {
            "filter" => self.filter = Some(value.to_string()),
            "timeout" => self.timeout = parse_timeout(name, value)?,
            "stress" => self.stress = Some(parse_duration(name, value)?),
            "seed" => self.seed = Some(parse_seed(name, value)?),
            "workers" => self.workers = Some(parse_workers(name, value)?),
            _ => unreachable!("value option {key} has no setter"),
        }
        Ok(())
    }

    fn set_flag(&mut self, name: &str, key: &str) -> Result<(), OptionsError> {
        let action = match key {
            "json" => {
                self.json = true;
                return Ok(());
            }
            "markdown" => {
                self.markdown = true;
                return Ok(());
            }
            "criu" => {
                self.criu = true;
                return Ok(());
            }
            "list" => Action::List,
            "bench" => Action::Bench,
            "shell" => Action::Shell,
            "help" | "h" => Action::Help,
            _ => unreachable!("flag {key} has no setter"),
        };
        if self.action != Action::Run && self.action != action {
            return Err(OptionsError(format!(
                "{name} cannot be combined with {}: choose one",
                action_name(self.action)
            )));
        }
        self.action = action;
        Ok(())
    }

    /// Rejects combinations that have no meaning.
    fn check(self) -> Result<Options, OptionsError> {
        if self.markdown && self.action != Action::List {
            return Err(OptionsError("--markdown only goes with --list".into()));
        }
        if self.markdown && self.json {
            return Err(OptionsError(
                "--json and --markdown are two list formats: choose one".into(),
            ));
        }
        if self.json && self.action == Action::Bench {
            return Err(OptionsError("--bench prints KTAP only, not --json".into()));
        }
        if self.stress.is_none() && (self.seed.is_some() || self.workers.is_some()) {
            return Err(OptionsError(
                "--seed and --workers only go with --stress DURATION".into(),
            ));
        }
        Ok(self)
    }
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Run => "running the suite",
        Action::List => "--list",
        Action::Bench => "--bench",
        Action::Shell => "validator.shell",
        Action::Help => "--help",
    }
}

/// `90`, `90s` or `2m`: above 0, at most a day.
fn parse_duration(name: &str, value: &str) -> Result<Duration, OptionsError> {
    let (number, unit) = match value.strip_suffix('m') {
        Some(minutes) => (minutes, 60),
        None => (value.strip_suffix('s').unwrap_or(value), 1),
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 && Duration::from_secs(n * unit) <= MAX_STRESS => {
            Ok(Duration::from_secs(n * unit))
        }
        _ => Err(OptionsError(format!(
            "{name}: `{value}` is not a duration above 0 and at most 24 h (e.g. 60s, 90, 2m)"
        ))),
    }
}

/// Decimal or `0x` hexadecimal, as the stress run prints it.
fn parse_seed(name: &str, value: &str) -> Result<u64, OptionsError> {
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse::<u64>(),
    };
    parsed.map_err(|_| {
        OptionsError(format!(
            "{name}: `{value}` is not a seed (a 64-bit number, decimal or 0x hex, as printed by a stress run)"
        ))
    })
}

fn parse_workers(name: &str, value: &str) -> Result<u32, OptionsError> {
    match value.parse::<u32>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        _ => Err(OptionsError(format!(
            "{name}: `{value}` is not a number of workers from 1 to {MAX_WORKERS}"
        ))),
    }
}

fn parse_timeout(name: &str, value: &str) -> Result<Duration, OptionsError> {
    match value.parse::<u64>() {
        Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(OptionsError(format!(
            "{name}: `{value}` is not a whole number of seconds above 0 (e.g. 20)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Options, OptionsError> {
        Options::from_args(line.split_whitespace().map(String::from))
    }

    #[test]
    fn no_arguments_run_the_suite_with_defaults() {
        assert_eq!(args(""), Ok(Options::default()));
        assert_eq!(Options::default().timeout, Duration::from_secs(20));
    }

    #[test]
    fn argv_options_in_both_spellings() {
        let o = args("--list --json --filter set_compat").unwrap();
        assert_eq!((o.action, o.json), (Action::List, true));
        assert_eq!(o.filter.as_deref(), Some("set_compat"));
        let o = args("--filter=a,b --timeout=5").unwrap();
        assert_eq!(o.filter.as_deref(), Some("a,b"));
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(args("--timeout 7").unwrap().timeout, Duration::from_secs(7));
        assert!(args("--list --markdown").unwrap().markdown);
        assert_eq!(args("--bench").unwrap().action, Action::Bench);
        assert_eq!(args("-h").unwrap().action, Action::Help);
    }

    #[test]
    fn bad_timeout_names_the_flag_and_the_value() {
        for bad in [
            "--timeout abc",
            "--timeout=-1",
            "--timeout 0",
            "--timeout 1.5",
        ] {
            let e = args(bad).unwrap_err().to_string();
            let value = bad.split([' ', '=']).nth(1).unwrap();
            assert!(e.starts_with("--timeout:"), "{e}");
            assert!(e.contains(&format!("`{value}`")), "{e}");
        }
    }

    #[test]
    fn unknown_missing_or_conflicting_arguments_are_errors() {
        let e = args("--verbose").unwrap_err().to_string();
        assert_eq!(e, "unknown argument `--verbose`");
        assert!(args("list").is_err());
        assert!(args("--timeout")
            .unwrap_err()
            .to_string()
            .contains("--timeout needs a value"));
        assert!(args("--filter").is_err());
        assert!(args("--list=yes")
            .unwrap_err()
            .to_string()
            .contains("takes no value"));
        assert!(args("--list --bench")
            .unwrap_err()
            .to_string()
            .contains("choose one"));
        assert!(args("--markdown").is_err());
        assert!(args("--list --json --markdown").is_err());
        assert!(args("--bench --json").is_err());
    }

    #[test]
    fn stress_options_in_both_places() {
        let o = args("--stress 60s --seed 0x2a --workers 2").unwrap();
        assert_eq!(o.stress, Some(Duration::from_secs(60)));
        assert_eq!((o.seed, o.workers), (Some(42), Some(2)));
        assert_eq!(
            args("--stress=2m").unwrap().stress,
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            args("--stress 90").unwrap().stress,
            Some(Duration::from_secs(90))
        );
        assert_eq!(args("--stress 5 --seed 17").unwrap().seed, Some(17));
        let o = Options::from_cmdline("validator.stress=30s validator.seed=7 validator.workers=8")
            .unwrap();
        assert_eq!(o.stress, Some(Duration::from_secs(30)));
        assert_eq!((o.seed, o.workers), (Some(7), Some(8)));
        assert_eq!(Options::default().stress, None);
    }

    #[test]
    fn criu_scenarios_are_asked_for_in_both_places() {
        assert!(!Options::default().criu);
        assert!(args("--list --json --criu").unwrap().criu);
        assert!(
            Options::from_cmdline("console=ttyS0 validator.criu")
                .unwrap()
                .criu
        );
        assert!(args("--criu=yes")
            .unwrap_err()
            .to_string()
            .contains("takes no value"));
        assert!(Options::from_cmdline("validator.criu=1").is_err());
    }

    #[test]
    fn bad_stress_options_name_the_option_and_the_value() {
        for (bad, option) in [
            ("--stress 0", "--stress"),
            ("--stress 10h", "--stress"),
            ("--stress 2000m", "--stress"),
            ("--stress 5 --seed x1", "--seed"),
            ("--stress 5 --seed -3", "--seed"),
            ("--stress 5 --workers 0", "--workers"),
            ("--stress 5 --workers 65", "--workers"),
        ] {
            let e = args(bad).unwrap_err().to_string();
            let value = bad.split(' ').next_back().unwrap();
            assert!(e.starts_with(&format!("{option}:")), "{e}");
            assert!(e.contains(&format!("`{value}`")), "{e}");
        }
        let e = args("--seed 3").unwrap_err().to_string();
        assert!(e.contains("only go with --stress"), "{e}");
        assert!(args("--workers 3").is_err());
        let e = Options::from_cmdline("validator.stress=abc")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("validator.stress: `abc`"), "{e}");
        assert!(Options::from_cmdline("validator.stress").is_err());
        assert!(Options::from_cmdline("validator.seed=1").is_err());
    }

    #[test]
    fn kernel_command_line_options() {
        let c = "console=ttyS0 validator.filter=set_compat validator.timeout=5 panic=-1";
        let o = Options::from_cmdline(c).unwrap();
        assert_eq!(o.filter.as_deref(), Some("set_compat"));
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert_eq!(o.action, Action::Run);
        assert_eq!(
            Options::from_cmdline("validator.shell").unwrap().action,
            Action::Shell
        );
        assert_eq!(
            Options::from_cmdline("quiet validator.bench")
                .unwrap()
                .action,
            Action::Bench
        );
        assert_eq!(Options::from_cmdline("").unwrap(), Options::default());
    }

    #[test]
    fn guest_filter_file_is_taken_verbatim() {
        let o = Options::for_guest("console=ttyS0", Some("a b,c*\n".into())).unwrap();
        assert_eq!(o.filter.as_deref(), Some("a b,c*"));
        let o = Options::for_guest("validator.timeout=5", None).unwrap();
        assert_eq!((o.filter, o.timeout), (None, Duration::from_secs(5)));
        let e = Options::for_guest("validator.filter=x", Some("y".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("give one"), "{e}");
    }

    #[test]
    fn kernel_command_line_errors_name_the_word() {
        let e = Options::from_cmdline("validator.timeout=abc")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("validator.timeout: `abc`"), "{e}");
        let e = Options::from_cmdline("validator.shellx")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`validator.shellx`"), "{e}");
        assert!(Options::from_cmdline("validator.timeout").is_err());
        assert!(Options::from_cmdline("validator.shell=1").is_err());
        assert!(Options::from_cmdline("validator.shell validator.bench").is_err());
    }
}
