//! `cargo xtask compare`: both kernels built and booted, one table.

use crate::pipeline::{self, Workspace};
use crate::qemu::Qemu;
use crate::report::{self, Declared, RunReport, Table};
use crate::{initramfs, paths, RunOpts, Variant};
use anyhow::{Context, Result};
use std::path::Path;

/// Both runs, with what was declared: everything the table is made from.
pub struct Comparison {
    pub ws: Workspace,
    pub declared: Vec<Declared>,
    pub vanilla: RunReport,
    pub patched: RunReport,
}

pub fn run(opts: &RunOpts, cover_letter: bool) -> Result<i32> {
    let Comparison {
        ws,
        declared,
        vanilla,
        patched,
    } = collect(opts)?;
    let table = compare_table(&declared, &vanilla, &patched);
    println!();
    print!("{}", header(&vanilla, &patched, &ws));
    // Descriptions make lines too long for a terminal; the Markdown has them.
    print!("{}", compact_table(&table).terminal());
    for (report, variant) in [(&vanilla, Variant::Vanilla), (&patched, Variant::Patched)] {
        pipeline::print_diagnostics(report, &declared, variant);
        pipeline::print_problems(report);
    }

    let markdown = format!("{}\n{}", header(&vanilla, &patched, &ws), table.markdown());
    let out = paths::results().join("compare.md");
    std::fs::write(&out, &markdown).with_context(|| format!("cannot write {}", out.display()))?;
    let json = paths::results().join("compare.json");
    let both = serde_json::json!({ "declared": declared, "vanilla": vanilla, "patched": patched });
    std::fs::write(&json, serde_json::to_string_pretty(&both)?)?;

    if cover_letter {
        let letter = ws.series.dir.join("0000-cover-letter.patch");
        let text = std::fs::read_to_string(&letter)
            .with_context(|| format!("cannot read {}", letter.display()))?;
        let compact = compact_table(&table).terminal();
        let body = format!("{}\n{compact}", header(&vanilla, &patched, &ws));
        let updated = replace_between_markers(&text, &body).with_context(|| {
            format!(
                "{} has no `{TABLE_START}` ... `{TABLE_END}` lines",
                letter.display()
            )
        })?;
        std::fs::write(&letter, updated)?;
        println!("table written into {}", letter.display());
    }

    let unexpected = table.rows.iter().filter(|r| r[5] != "as expected").count();
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

/// Builds both kernels and boots both (side by side).
pub fn collect(opts: &RunOpts) -> Result<Comparison> {
    let ws = Workspace::open(opts)?;
    let vanilla = ws.kernel(Variant::Vanilla)?;
    let patched = ws.kernel(Variant::Patched)?;
    let validator = initramfs::build_validator()?;
    let declared = report::declared(&validator, opts)?;
    let initrd = ws.validator_initramfs(&validator)?;
    let qemu = Qemu::find()?;

    // The two guests are independent: boot them side by side.
    let (vanilla, patched) = std::thread::scope(|s| {
        let v = s.spawn(|| {
            pipeline::boot_validator(&ws, Variant::Vanilla, vanilla, &initrd, &qemu, opts)
        });
        let p = s.spawn(|| {
            pipeline::boot_validator(&ws, Variant::Patched, patched, &initrd, &qemu, opts)
        });
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
    })
}

const TABLE_START: &str = "--- before/after table (cargo xtask compare) ---";
const TABLE_END: &str = "--- end of before/after table ---";

/// The cover letter's text with `body` between the marker lines.
fn replace_between_markers(text: &str, body: &str) -> Option<String> {
    let start = text.find(TABLE_START)? + TABLE_START.len();
    let end = start + text[start..].find(TABLE_END)?;
    Some(format!("{}\n{body}{}", &text[..start], &text[end..]))
}

/// Without the description column, for terminals and cover letters.
fn compact_table(table: &Table) -> Table {
    let keep = [0, 2, 3, 4, 5];
    let pick = |row: &Vec<String>| keep.iter().map(|&i| row[i].clone()).collect();
    Table {
        header: pick(&table.header),
        rows: table.rows.iter().map(pick).collect(),
    }
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
        accel_name(vanilla),
        vanilla.cpu,
    )
}

fn accel_name(r: &RunReport) -> &'static str {
    match r.accelerator {
        crate::qemu::Accelerator::Kvm => "KVM",
        crate::qemu::Accelerator::Tcg => "TCG",
    }
}

pub fn compare_table(declared: &[Declared], vanilla: &RunReport, patched: &RunReport) -> Table {
    let rows = declared
        .iter()
        .map(|d| {
            let v = vanilla.status_of(&d.id);
            let p = patched.status_of(&d.id);
            let ok = report::matches(v, &d.vanilla) && report::matches(p, &d.patched);
            vec![
                d.id.clone(),
                d.description.clone(),
                report::cell(v),
                report::cell(p),
                format!("{}/{}", d.vanilla, d.patched),
                pipeline::verdict(ok),
            ]
        })
        .collect();
    Table {
        header: [
            "scenario",
            "what it checks",
            "vanilla",
            "patched",
            "expected v/p",
            "verdict",
        ]
        .map(String::from)
        .to_vec(),
        rows,
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
}
