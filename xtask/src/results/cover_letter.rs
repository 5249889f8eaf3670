//! The before/after table of a cover letter: where it goes (between two
//! marker lines), and the record `compare` leaves of the last table so
//! `format-series` can tell whether it is of the series being sent.

use crate::host::paths;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const TABLE_START: &str = "--- before/after table (cargo xtask compare) ---";
pub const TABLE_END: &str = "--- end of before/after table ---";

/// The cover letter's text with `body` between the marker lines.
pub fn replace_between_markers(text: &str, body: &str) -> Option<String> {
    let start = text.find(TABLE_START)? + TABLE_START.len();
    let end = start + text[start..].find(TABLE_END)?;
    Some(format!("{}\n{body}{}", &text[..start], &text[end..]))
}

/// The cover letter's text without the marker lines and what is between,
/// and without the line that introduces them (a one-line paragraph ending
/// in `:` right above the start marker).
pub fn without_table(text: &str) -> Option<String> {
    let mut start = text.find(TABLE_START)?;
    let before = text[..start].trim_end_matches('\n');
    let intro = before.rfind('\n').map_or(0, |i| i + 1);
    let paragraph_start = intro == 0 || before[..intro].ends_with("\n\n");
    if before[intro..].ends_with(':') && paragraph_start {
        start = intro;
    }
    let end = start + text[start..].find(TABLE_END)? + TABLE_END.len();
    let after = text[end..].strip_prefix('\n').unwrap_or(&text[end..]);
    let after = after.strip_prefix('\n').unwrap_or(after);
    Some(format!("{}{after}", &text[..start]))
}

/// The cover letter `text` with `table` between its markers, or with no
/// table (and no markers) at all.
pub fn with_table(text: &str, table: Option<&LastTable>) -> Result<String> {
    let placed = match table {
        Some(table) => replace_between_markers(text, &table.body),
        None => without_table(text),
    };
    placed
        .with_context(|| format!("the cover letter has no `{TABLE_START}` ... `{TABLE_END}` lines"))
}

/// Under the table: how a reader gets and replays the run.
pub fn bundle_note(name: &str) -> String {
    format!(
        "\nReplay with only bash, coreutils and QEMU: the bundle\n\
         {name}.tar.gz (cargo xtask compare --bundle);\n\
         tar xf it, then run {name}/run.sh\n\
         (run.sh --shell patched gives a shell in that kernel).\n"
    )
}

/// The table of the last compare and what it was a table of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTable {
    pub series_hash: String,
    /// The vanilla tree's git tree id (the same source, whatever its path).
    pub tree_id: String,
    pub version: String,
    /// The scenario filter the compare ran with (a partial table).
    pub filter: Option<String>,
    pub unexpected: usize,
    pub problems: usize,
    /// What goes between the markers.
    pub body: String,
}

impl LastTable {
    pub fn path() -> PathBuf {
        paths::results().join("cover-letter-table.json")
    }

    pub fn write(&self) -> Result<()> {
        let path = Self::path();
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The table of the last compare if it is of `series_hash` on the
    /// source `tree_id`, complete and as declared; else why not.
    pub fn read_for(series_hash: &str, tree_id: &str) -> Result<LastTable> {
        let path = Self::path();
        let rerun =
            "run `cargo xtask compare` (same --kernel-src/--kernel-tarball/--series) first, \
                     or pass --no-table to send the cover letter without a table";
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no before/after table from a compare run ({}): {rerun}",
                path.display()
            )
        })?;
        let last: LastTable = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a table record: {rerun}", path.display()))?;
        last.check(series_hash, tree_id).with_context(|| {
            format!(
                "the last compare's table ({}) cannot go out: {rerun}",
                path.display()
            )
        })?;
        Ok(last)
    }

    fn check(&self, series_hash: &str, tree_id: &str) -> Result<()> {
        let short = |h: &str| h.get(..12).unwrap_or(h).to_string();
        if self.series_hash != series_hash {
            bail!(
                "it is of series {}, the series now is {} (a patch changed since)",
                short(&self.series_hash),
                short(series_hash)
            );
        }
        if self.tree_id != tree_id {
            bail!(
                "it ran on another kernel source (Linux {}, tree {})",
                self.version,
                short(&self.tree_id)
            );
        }
        if let Some(filter) = &self.filter {
            bail!("it ran only the scenarios matching --filter {filter:?}");
        }
        if self.unexpected > 0 || self.problems > 0 {
            bail!(
                "{} scenario(s) were not as declared and the run had {} problem(s)",
                self.unexpected,
                self.problems
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_goes_between_the_markers_and_replaces_the_old_one() {
        let letter = format!("intro\n{TABLE_START}\nold table\n{TABLE_END}\nsign-off\n");
        let once = replace_between_markers(&letter, "new table\n").unwrap();
        assert_eq!(
            once,
            format!("intro\n{TABLE_START}\nnew table\n{TABLE_END}\nsign-off\n")
        );
        let twice = replace_between_markers(&once, "newer\n").unwrap();
        assert!(!twice.contains("new table") && twice.contains("newer"));
        assert!(replace_between_markers("no markers", "x").is_none());
    }

    #[test]
    fn without_a_table_the_markers_and_the_table_go() {
        let letter = format!("intro\n\n{TABLE_START}\nold table\n{TABLE_END}\n\nsign-off\n");
        assert_eq!(without_table(&letter).unwrap(), "intro\n\nsign-off\n");
        let introduced = format!("intro\n\nThe table:\n\n{TABLE_START}\nt\n{TABLE_END}\n\nend\n");
        assert_eq!(without_table(&introduced).unwrap(), "intro\n\nend\n");
        let list = format!("a list:\n - one:\n\n{TABLE_START}\nt\n{TABLE_END}\nend\n");
        assert_eq!(without_table(&list).unwrap(), "a list:\n - one:\n\nend\n");
        assert!(without_table("no markers").is_none());
    }

    #[test]
    fn only_a_complete_as_declared_table_of_this_series_and_source_goes_out() {
        let good = LastTable {
            series_hash: "a".repeat(64),
            tree_id: "t".repeat(40),
            version: "6.12.117".into(),
            filter: None,
            unexpected: 0,
            problems: 0,
            body: "table\n".into(),
        };
        let why = |last: &LastTable| {
            format!(
                "{:#}",
                last.check(&"a".repeat(64), &"t".repeat(40)).unwrap_err()
            )
        };
        good.check(&"a".repeat(64), &"t".repeat(40)).unwrap();
        let other_series = LastTable {
            series_hash: "b".repeat(64),
            ..good.clone()
        };
        assert!(
            why(&other_series).contains("of series bbbbbbbbbbbb, the series now is aaaaaaaaaaaa")
        );
        let other_tree = LastTable {
            tree_id: "u".repeat(40),
            ..good.clone()
        };
        assert!(why(&other_tree).contains("another kernel source (Linux 6.12.117"));
        let filtered = LastTable {
            filter: Some("busybox*".into()),
            ..good.clone()
        };
        assert!(why(&filtered).contains("--filter \"busybox*\""));
        let failing = LastTable {
            unexpected: 2,
            ..good.clone()
        };
        assert!(why(&failing).contains("2 scenario(s) were not as declared"));
    }
}
