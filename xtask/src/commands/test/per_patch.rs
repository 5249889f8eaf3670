//! End-to-end: `compare --per-patch` on the series' first two patches (two
//! fixes of existing upstream bugs, each with its own scenario), run twice:
//! each fix's scenario changes in its own patch, an unrelated scenario does
//! not change, and the second run rebuilds no prefix.

use super::warn_on::xtask;
use crate::flags::RunOpts;
use crate::host::paths;
use crate::kernel::series::Series;
use crate::results::exit;
use anyhow::{ensure, Context, Result};
use std::path::Path;

/// (scenario, what its row's check column must say) for the two-patch series.
const EXPECTED: [(&str, &str); 3] = [
    ("ptrace_map_vdso_rejected", "ok (0001)"),
    ("compat_sigaction_no_restorer", "ok (0002)"),
    ("gate_round_trip", "unchanged"),
];

pub fn check(opts: &RunOpts) -> Result<()> {
    let dir = paths::target().join("e2e-per-patch-series");
    first_two_patches(&dir)?;
    let filter = EXPECTED.map(|(id, _)| id).join(",");
    for round in ["first", "second"] {
        let args = ["compare", "--per-patch", "--filter", &filter];
        let code = xtask(&args, &dir, opts)?
            .run()?
            .code()
            .context("compare --per-patch was killed")?;
        ensure!(
            code == exit::AS_DECLARED,
            "{round} compare --per-patch exited {code}: see the matrix above"
        );
        let md = std::fs::read_to_string(paths::results().join("per-patch.md"))?;
        for (id, check) in EXPECTED {
            let row = md
                .lines()
                .find(|l| l.starts_with(&format!("| {id} |")))
                .with_context(|| format!("no row for {id} in per-patch.md:\n{md}"))?;
            ensure!(
                row.ends_with(&format!("| {check} |")),
                "{id}: expected `{check}`, the row is {row}"
            );
        }
        let json = std::fs::read_to_string(paths::results().join("per-patch.json"))?;
        let runs: serde_json::Value = serde_json::from_str(&json)?;
        let cached: Vec<bool> = runs["runs"]
            .as_array()
            .context("per-patch.json has no runs")?
            .iter()
            .map(|r| r["kernel"]["cached"].as_bool().unwrap_or(false))
            .collect();
        ensure!(cached.len() == 3, "{} runs, not 3", cached.len());
        if round == "second" {
            ensure!(
                cached.iter().all(|c| *c),
                "the second run rebuilt a prefix (cached: {cached:?})"
            );
        }
        eprintln!("    {round} run: matrix as declared, kernels cached: {cached:?}");
    }
    Ok(())
}

/// A series of kernel-patches/' first two patches.
fn first_two_patches(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let series = Series::load(&paths::default_series_dir())?;
    ensure!(
        series.patches.len() >= 2,
        "the series has fewer than 2 patches"
    );
    let mut list = String::new();
    for patch in &series.patches[..2] {
        std::fs::write(dir.join(&patch.name), &patch.contents)?;
        list.push_str(&format!("{}\n", patch.name));
    }
    std::fs::write(dir.join("series"), list)?;
    Ok(())
}
