//! `cargo xtask compare`: both kernels built and booted, one table.

use crate::flags::RunOpts;
use crate::host::paths;
use crate::pipeline::{self, Comparison, Workspace};
use crate::results::report::RunReport;
use crate::results::stress;
use crate::results::table::{self, Verdicts};
use anyhow::{Context, Result};
use std::path::Path;

pub fn run(opts: &RunOpts, cover_letter: bool) -> Result<i32> {
    let Comparison {
        ws,
        declared,
        vanilla,
        patched,
    } = pipeline::collect(&opts.settings())?;
    let verdicts = Verdicts::new(&declared, &[&vanilla, &patched]);
    // Descriptions make lines too long for a terminal; the Markdown has them.
    let compact = verdicts.table(false).terminal();
    println!();
    print!("{}", header(&vanilla, &patched, &ws));
    print!("{compact}");
    for report in [&vanilla, &patched] {
        table::print_diagnostics(report, &declared);
        table::print_problems(report);
    }
    let stress_figures = opts.stress.as_ref().map(|_| {
        let both = [stress::figures(&vanilla), stress::figures(&patched)];
        println!();
        for (report, figures) in [&vanilla, &patched].iter().zip(&both) {
            println!("stress on {}: {figures}", report.variant.name());
        }
        both
    });

    let markdown = format!(
        "{}\n{}",
        header(&vanilla, &patched, &ws),
        verdicts.table(true).markdown()
    );
    let out = paths::results().join("compare.md");
    std::fs::write(&out, &markdown).with_context(|| format!("cannot write {}", out.display()))?;
    let json = paths::results().join("compare.json");
    let both = serde_json::json!({
        "declared": declared,
        "vanilla": vanilla,
        "patched": patched,
        "stress": stress_figures,
    });
    std::fs::write(&json, serde_json::to_string_pretty(&both)?)?;

    if cover_letter {
        let body = format!("{}\n{compact}", header(&vanilla, &patched, &ws));
        write_cover_letter(&ws, &body)?;
    }

    let unexpected = verdicts.unexpected();
    let problems = vanilla.problems.len() + patched.problems.len();
    println!(
        "\ntable (Markdown, for a cover letter): {}\nreports: {}",
        out.display(),
        json.display()
    );
    if unexpected == 0 && problems == 0 {
        println!("every scenario behaved as declared on both kernels");
        Ok(0)
    } else {
        println!("{unexpected} scenario(s) differ from their declared expectation; {problems} run problem(s)");
        Ok(1)
    }
}

/// Puts `body` between the table markers of the series' cover letter.
fn write_cover_letter(ws: &Workspace, body: &str) -> Result<()> {
    let letter = ws.series.dir.join("0000-cover-letter.patch");
    let text = std::fs::read_to_string(&letter)
        .with_context(|| format!("cannot read {}", letter.display()))?;
    let updated = replace_between_markers(&text, body).with_context(|| {
        format!(
            "{} has no `{TABLE_START}` ... `{TABLE_END}` lines",
            letter.display()
        )
    })?;
    std::fs::write(&letter, updated)
        .with_context(|| format!("cannot write {}", letter.display()))?;
    println!("table written into {}", letter.display());
    Ok(())
}

const TABLE_START: &str = "--- before/after table (cargo xtask compare) ---";
const TABLE_END: &str = "--- end of before/after table ---";

/// The cover letter's text with `body` between the marker lines.
fn replace_between_markers(text: &str, body: &str) -> Option<String> {
    let start = text.find(TABLE_START)? + TABLE_START.len();
    let end = start + text[start..].find(TABLE_END)?;
    Some(format!("{}\n{body}{}", &text[..start], &text[end..]))
}

/// What was compared: a reader of the table must be able to rebuild it.
fn header(vanilla: &RunReport, patched: &RunReport, ws: &Workspace) -> String {
    // No local paths: this line goes into cover letters (reports keep them).
    let origin = Path::new(&ws.source.origin)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    format!(
        "Linux {} ({} {})\n{} patches (series {}), config {}\nQEMU {}.{}.{} {} -cpu {}\n",
        ws.source.version,
        ws.source.provider,
        origin.unwrap_or_default(),
        ws.series.patches.len(),
        &patched.series_hash.get(..12).unwrap_or("empty"),
        &vanilla.kernel.config_hash[..12],
        vanilla.qemu.version.0,
        vanilla.qemu.version.1,
        vanilla.qemu.version.2,
        vanilla.accelerator.name().to_uppercase(),
        vanilla.cpu,
    )
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
}
