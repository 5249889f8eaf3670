//! `cargo xtask compare --per-patch`: the validator on the kernel after
//! each prefix of the series, as a matrix (docs/pipeline.md).

use crate::flags::RunOpts;
use crate::host::paths;
use crate::pipeline::prefixes::{self, PerPatchRuns};
use crate::results::exit;
use crate::results::per_patch::Matrix;
use crate::results::report::RunReport;
use crate::results::table;
use anyhow::{Context, Result};

pub fn run(opts: &RunOpts) -> Result<i32> {
    let settings = opts.settings();
    let PerPatchRuns {
        ws,
        declared,
        subjects,
        runs,
    } = prefixes::collect(&settings)?;
    let reports: Vec<&RunReport> = runs.iter().collect();
    let matrix = Matrix::new(&declared, &subjects, &reports);
    let header = table::header(
        &ws.source,
        ws.series.patches.len(),
        &ws.series.hash(),
        reports[0],
    );
    let legend = matrix.legend();
    let rendered = matrix.table();
    print!("\n{header}{}\n{legend}", rendered.terminal());
    for report in &reports {
        table::print_problems(report);
    }

    let markdown = format!("{header}\n{}\n```\n{legend}```\n", rendered.markdown());
    let out = paths::results().join("per-patch.md");
    std::fs::write(&out, &markdown).with_context(|| format!("cannot write {}", out.display()))?;
    let json = paths::results().join("per-patch.json");
    let all = serde_json::json!({ "declared": declared, "runs": runs });
    std::fs::write(&json, serde_json::to_string_pretty(&all)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    println!(
        "\nmatrix (Markdown, for a cover letter): {}\nreports: {}",
        out.display(),
        json.display()
    );

    let problems: usize = reports.iter().map(|r| r.problems.len()).sum();
    let flagged = matrix.flagged();
    Ok(if flagged == 0 && problems == 0 {
        println!("every scenario changed once, in the patch it names, as declared");
        exit::AS_DECLARED
    } else {
        println!(
            "{flagged} scenario(s) flagged in the per-patch matrix; {problems} run problem(s)"
        );
        exit::NOT_AS_DECLARED
    })
}
