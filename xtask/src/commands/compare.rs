//! `cargo xtask compare`: both kernels built and booted, one table.

use crate::flags::RunOpts;
use crate::host::paths;
use crate::kernel::{Flavour, Variant};
use crate::pipeline::{self, Comparison, Settings, Workspace};
use crate::results::bundle;
use crate::results::cover_letter::{self, LastTable, TABLE_END, TABLE_START};
use crate::results::stress;
use crate::results::table::{self, Verdicts};
use crate::results::{exit, junit};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// `bundle`: also write the reproduction bundle of this run, to the file
/// given or under target/bundle/ (docs/bundle.md); `junit`: the results as
/// JUnit XML too.
pub fn run(
    opts: &RunOpts,
    cover_letter: bool,
    bundle: Option<Option<&Path>>,
    junit: Option<&Path>,
) -> Result<i32> {
    let settings = opts.settings();
    if cover_letter && !is_cover_letter_run(&settings) {
        let mut given = Vec::new();
        if settings.flavour != Flavour::Default {
            given.push(format!("--flavour {}", settings.flavour.name()));
        }
        if let Some(stress) = &settings.stress {
            given.push(format!("--stress {stress}"));
        }
        anyhow::bail!(
            "--cover-letter takes the table of the default kernels without --stress; drop {}",
            given.join(" and ")
        );
    }
    let both = pipeline::collect(&settings)?;
    report(&settings, both, cover_letter, bundle, junit)
}

/// The cover letter's table is that of the default kernels' plain run: a
/// debug, criu or stress compare neither goes into the cover letter nor
/// replaces the table format-series sends.
fn is_cover_letter_run(settings: &Settings) -> bool {
    settings.flavour == Flavour::Default && settings.stress.is_none()
}

/// `cargo xtask bundle`: the last compare's results when they are of these
/// very inputs (then two bundles are the same bytes), else a new compare.
pub fn bundle(opts: &RunOpts, output: Option<&Path>) -> Result<i32> {
    let settings = opts.settings();
    let both = pipeline::last_comparison(&settings)?;
    report(&settings, both, false, Some(output), None)
}

/// The table, the reports and what was asked besides, of `both`.
fn report(
    settings: &Settings,
    both: Comparison,
    cover_letter: bool,
    bundle: Option<Option<&Path>>,
    junit: Option<&Path>,
) -> Result<i32> {
    let Comparison {
        ws,
        declared,
        vanilla,
        patched,
        ..
    } = &both;
    let verdicts = Verdicts::new(declared, &[vanilla, patched]);
    let header = table::header(
        &ws.source,
        ws.series.patches.len(),
        &patched.series_hash,
        vanilla,
    );
    // Descriptions make lines too long for a terminal; the Markdown has them.
    let compact = format!("{header}{}", verdicts.table(false).terminal());
    print!("\n{compact}");
    for report in [vanilla, patched] {
        table::print_diagnostics(report, declared);
        table::print_problems(report);
    }
    let stress_figures = settings.stress.as_ref().map(|_| {
        let figures = [stress::figures(vanilla), stress::figures(patched)];
        println!();
        for (report, figures) in [vanilla, patched].iter().zip(&figures) {
            println!("stress on {}: {figures}", report.variant.name());
        }
        figures
    });

    let markdown = format!("{header}\n{}", verdicts.table(true).markdown());
    let out = paths::results().join("compare.md");
    std::fs::write(&out, &markdown).with_context(|| format!("cannot write {}", out.display()))?;
    let json = paths::results().join("compare.json");
    let all = serde_json::json!({
        "declared": declared,
        "vanilla": vanilla,
        "patched": patched,
        "stress": stress_figures,
    });
    std::fs::write(&json, serde_json::to_string_pretty(&all)?)?;

    let bundled = match bundle {
        Some(output) => Some(write_bundle(&both, settings, &compact, &markdown, output)?),
        None => None,
    };
    if let Some(file) = junit {
        junit::write(file, declared, &[vanilla, patched])?;
        println!("JUnit: {}", file.display());
    }
    // The table a cover letter gets, recorded with what it is a table of
    // (format-series sends it only for the same series and source).
    let name = bundle::name_of(
        &ws.source,
        &ws.series,
        &[Variant::Vanilla, Variant::Patched],
    );
    let table = verdicts.table(false).terminal();
    let last = LastTable {
        series_hash: patched.series_hash.clone(),
        tree_id: ws.source.tree_id.clone(),
        version: ws.source.version.clone(),
        filter: settings.filter.clone(),
        unexpected: verdicts.unexpected(),
        problems: vanilla.problems.len() + patched.problems.len(),
        body: format!("{header}\n{table}{}", cover_letter::bundle_note(&name)),
    };
    if is_cover_letter_run(settings) {
        last.write()?;
    }
    if cover_letter {
        write_cover_letter(ws, &last.body)?;
    }

    println!(
        "\ntable (Markdown, for a cover letter): {}\nreports: {}",
        out.display(),
        json.display()
    );
    if let Some(path) = bundled {
        println!(
            "bundle (replays with bash, coreutils and QEMU: tar xf, then ./run.sh): {}",
            path.display()
        );
    }
    let problems = vanilla.problems.len() + patched.problems.len();
    Ok(verdict(verdicts.unexpected(), problems))
}

/// The last line and the exit status: 0 iff everything was as declared.
fn verdict(unexpected: usize, problems: usize) -> i32 {
    if unexpected == 0 && problems == 0 {
        println!("every scenario behaved as declared on both kernels");
        exit::AS_DECLARED
    } else {
        println!("{unexpected} scenario(s) differ from their declared expectation; {problems} run problem(s)");
        exit::NOT_AS_DECLARED
    }
}

/// The reproduction bundle of both runs.
fn write_bundle(
    both: &Comparison,
    settings: &Settings,
    table: &str,
    markdown: &str,
    output: Option<&Path>,
) -> Result<PathBuf> {
    let shell_initrd = both.ws.shell_initramfs(&both.programs)?;
    let run = bundle::Run {
        source: &both.ws.source,
        series: &both.ws.series,
        declared: &both.declared,
        reports: &[&both.vanilla, &both.patched],
        table,
        markdown,
        validator_initrd: &both.initrd,
        shell_initrd: &shell_initrd,
        qemu: &both.qemu,
        timeout_secs: settings.timeout_secs,
        filter: settings.filter.as_deref(),
    };
    pipeline::write_bundle(&run, output)
}

/// Puts `body` between the table markers of the series' cover letter.
fn write_cover_letter(ws: &Workspace, body: &str) -> Result<()> {
    let letter = ws.series.dir.join("0000-cover-letter.patch");
    let text = std::fs::read_to_string(&letter)
        .with_context(|| format!("cannot read {}", letter.display()))?;
    let updated = cover_letter::replace_between_markers(&text, body).with_context(|| {
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
