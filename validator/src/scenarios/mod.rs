//! The scenario catalogue, in run order: upstream behaviour first (expected
//! to pass on both kernels), then what the series adds.

use crate::runner::Scenario;

pub mod bounds;
pub mod common;
pub mod compat_errors;
pub mod compat_process;
pub mod compat_switch;
pub mod criu;
pub mod gate;
pub mod introspection;
pub mod memory;
pub mod real_programs;
pub mod series;
pub mod signals;
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
        bounds::SCENARIOS,
        criu::SCENARIOS,
        real_programs::SCENARIOS,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Scenarios whose id contains one of the comma-separated patterns
/// (`*` matches anything; no filter or an empty one selects everything).
/// A filter that selects nothing is an error that lists the ids.
pub fn select(filter: Option<&str>) -> Result<Vec<&'static Scenario>, String> {
    let all = all();
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
        let all = all();
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
        let n = |f| select(f).map(|s| s.len()).unwrap_or(0);
        assert_eq!(n(Some("gate_round_trip")), 1);
        assert!(n(Some("set_compat")) >= 4);
        assert_eq!(n(Some("int80_*_below_4g")), 3);
        assert_eq!(n(Some("gate_round_trip, nothing")), 1);
        assert_eq!(n(None), all().len());
        assert_eq!(n(Some("")), all().len());
    }

    #[test]
    fn filter_selecting_nothing_is_an_error_listing_the_ids() {
        for f in [
            "nothing-matches",
            "gate round trip",
            ",",
            "gate_round_trip_x",
        ] {
            let e = select(Some(f)).err().expect("an error");
            assert!(e.contains(&format!("`{f}` selects no scenario")), "{e}");
            for s in all() {
                assert!(e.contains(s.id), "{} missing from {e}", s.id);
            }
        }
    }
}
