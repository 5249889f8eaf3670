//! The scenario catalogue, in run order: upstream behaviour first (expected
//! to pass on both kernels), then what the series adds, then what runs only
//! when asked (the stress run, and the criu_* scenarios that need Debian's
//! criu in the guest and the criu kernel flavour).

use crate::runner::Scenario;
use std::time::Duration;

pub mod bounds;
pub mod common;
pub mod compat_errors;
pub mod compat_process;
pub mod compat_rollback;
pub mod compat_switch;
pub mod criu;
pub mod criu_tool;
pub mod gate;
pub mod introspection;
pub mod memory;
pub mod real_programs;
pub mod series;
pub mod signals;
pub mod stress;
pub mod vdso_upstream;

pub fn all() -> Vec<&'static Scenario> {
    [
        gate::SCENARIOS,
        memory::SCENARIOS,
        vdso_upstream::SCENARIOS,
        introspection::SCENARIOS,
        signals::SCENARIOS,
        compat_switch::SCENARIOS,
        compat_process::SCENARIOS,
        compat_errors::SCENARIOS,
        compat_rollback::SCENARIOS,
        bounds::SCENARIOS,
        criu::SCENARIOS,
        real_programs::SCENARIOS,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Which of the scenarios that run only when asked for are asked for:
/// the stress run (`--stress`) and the criu_* ones (`--criu`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    pub stress: bool,
    pub criu: bool,
}

impl Asked {
    pub const NONE: Asked = Asked {
        stress: false,
        criu: false,
    };
    /// Everything: what docs/scenarios.md lists.
    pub const ALL: Asked = Asked {
        stress: true,
        criu: true,
    };
}

/// The scenarios that run only when asked for, of those `asked`.
pub fn on_request(asked: Asked) -> Vec<&'static Scenario> {
    let criu: &[Scenario] = if asked.criu {
        criu_tool::SCENARIOS
    } else {
        &[]
    };
    let stress: &[Scenario] = if asked.stress { stress::SCENARIOS } else { &[] };
    criu.iter().chain(stress).collect()
}

/// The scenarios to run or list: every one of `all()`, plus those of
/// `on_request()` that are `asked` for, narrowed by the filter.
pub fn select(filter: Option<&str>, asked: Asked) -> Result<Vec<&'static Scenario>, String> {
    let mut all = all();
    all.extend(on_request(asked));
    filter_ids(all, filter)
}

/// Prepares the stress run (chooses its seed if none was given); call
/// before the suite forks the scenarios.
pub fn configure_stress(duration: Duration, seed: Option<u64>, workers: u32) {
    stress::configure(duration, seed, workers);
}

/// How long `s` may run: the per-scenario timeout, plus the stress
/// duration for the stress run, plus criu's commands for criu's scenarios.
pub fn time_allowed(s: &Scenario, timeout: Duration) -> Duration {
    if s.id == stress::ID {
        timeout + stress::extra_time()
    } else if criu_tool::is_criu_tool(s) {
        timeout + criu_tool::EXTRA_TIME
    } else {
        timeout
    }
}

/// Scenarios whose id contains one of the comma-separated patterns
/// (`*` matches anything; no filter or an empty one selects everything).
/// A filter that selects nothing is an error that lists the ids.
fn filter_ids(
    all: Vec<&'static Scenario>,
    filter: Option<&str>,
) -> Result<Vec<&'static Scenario>, String> {
    let Some(filter) = filter.filter(|f| !f.is_empty()) else {
        return Ok(all);
    };
    let pats: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let ids: Vec<&str> = all.iter().map(|s| s.id).collect();
    let selected: Vec<&'static Scenario> = all
        .into_iter()
        .filter(|s| pats.iter().any(|p| glob_match(p, s.id)))
        .collect();
    if selected.is_empty() {
        return Err(format!(
            "--filter `{filter}` selects no scenario (comma-separated substrings of an id, * wildcard); the ids are: {}",
            ids.join(", ")
        ));
    }
    Ok(selected)
}

/// Substring match where `*` inside the pattern matches any run of
/// characters (the pattern is implicitly surrounded by `*`).
fn glob_match(pattern: &str, id: &str) -> bool {
    let mut rest = id;
    for part in pattern.split('*').filter(|p| !p.is_empty()) {
        match rest.find(part) {
            Some(pos) => rest = &rest[pos + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_names_and_unique() {
        let all = select(None, Asked::ALL).unwrap();
        let mut seen = std::collections::HashSet::new();
        for s in &all {
            assert!(
                s.id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                s.id
            );
            assert!(seen.insert(s.id), "duplicate id {}", s.id);
            assert!(!s.description.is_empty() && !s.proves.is_empty());
        }
    }

    #[test]
    fn filter_selects_by_substring_and_glob() {
        let n = |f, asked: bool| {
            let asked = if asked { Asked::ALL } else { Asked::NONE };
            select(f, asked).map(|s| s.len()).unwrap_or(0)
        };
        assert_eq!(n(Some("gate_round_trip"), false), 1);
        assert!(n(Some("set_compat"), false) >= 4);
        assert_eq!(n(Some("int80_*_below_4g"), false), 3);
        assert_eq!(n(Some("gate_round_trip, nothing"), false), 1);
        assert_eq!(n(None, false), all().len());
        assert_eq!(n(Some(""), false), all().len());
    }

    #[test]
    fn stress_runs_only_when_asked() {
        let ids = |f, stress| -> Vec<&str> {
            select(
                f,
                Asked {
                    stress,
                    criu: false,
                },
            )
            .unwrap_or_default()
            .iter()
            .map(|s| s.id)
            .collect()
        };
        assert!(!ids(None, false).contains(&stress::ID));
        assert!(select(Some("stress_compat_mode"), Asked::NONE).is_err());
        assert_eq!(ids(Some("stress_compat_mode"), true), [stress::ID]);
        assert_eq!(ids(None, true).last(), Some(&stress::ID));
    }

    #[test]
    fn criu_scenarios_run_only_when_asked() {
        let ids = |f, criu| -> Vec<&str> {
            select(
                f,
                Asked {
                    stress: false,
                    criu,
                },
            )
            .unwrap_or_default()
            .iter()
            .map(|s| s.id)
            .collect()
        };
        let criu: Vec<&str> = criu_tool::SCENARIOS.iter().map(|s| s.id).collect();
        assert!(criu.len() >= 3);
        assert!(ids(None, false).iter().all(|id| !criu.contains(id)));
        assert!(select(Some("criu_tool_"), Asked::NONE).is_err());
        assert_eq!(ids(Some("criu_tool_"), true), criu);
        assert!(ids(None, true).ends_with(&criu));
        let everything = select(None, Asked::ALL).unwrap();
        assert_eq!(everything.last().map(|s| s.id), Some(stress::ID));
    }

    #[test]
    fn filter_selecting_nothing_is_an_error_listing_the_ids() {
        for f in [
            "nothing-matches",
            "gate round trip",
            ",",
            "gate_round_trip_x",
        ] {
            let e = select(Some(f), Asked::NONE).err().expect("an error");
            assert!(e.contains(&format!("`{f}` selects no scenario")), "{e}");
            for s in all() {
                assert!(e.contains(s.id), "{} missing from {e}", s.id);
            }
        }
    }
}
