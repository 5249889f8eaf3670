//! `cargo xtask bench --instructions --per-patch`: the instruction counts
//! on the kernel after each prefix of the series (vanilla, +0001, ...), to
//! say which patch changes which operation's cost. The prefix kernels are
//! check-series' (kept on the bisect shelf), built here if missing.

use super::instructions::{count_kernel, named, PerOp, RUNS};
use super::machine_description;
use crate::host::paths;
use crate::kernel::build::Kernel;
use crate::pipeline::prefixes::Prefixes;
use crate::pipeline::{self, Settings, Workspace};
use crate::results::icount::Measured;
use crate::results::table::Table;
use crate::vm::icount::Plugin;
use crate::vm::qemu::Qemu;
use anyhow::{Context, Result};
use contract::icount::Op;

pub fn run(ws: &Workspace, qemu: &Qemu, plugin: &Plugin, settings: &Settings) -> Result<i32> {
    let prefixes = Prefixes::open(ws)?;
    let n = prefixes.len();
    // Every kernel first: a build error stops the run before any boot.
    let kernels = (0..=n)
        .map(|k| prefixes.kernel(k))
        .collect::<Result<Vec<Kernel>>>()?;
    let programs = pipeline::programs()?;
    let initrd = ws.validator_initramfs(&programs, None)?;
    let mut counts = Vec::new();
    for (k, kernel) in kernels.iter().enumerate() {
        // The series' operation exists from the patch that adds it on; the
        // whole series must have it.
        let label = Prefixes::label(k);
        counts.push(count_kernel(
            qemu,
            plugin,
            &kernel.vmlinux,
            &initrd,
            settings,
            &label,
            k == n,
        )?);
    }
    let subjects: Vec<String> = ws
        .series
        .patches
        .iter()
        .map(|p| p.subject().unwrap_or_else(|| p.name.clone()))
        .collect();
    report(qemu, &counts, &subjects)
}

fn report(qemu: &Qemu, counts: &[PerOp], subjects: &[String]) -> Result<i32> {
    let changes = Changes::of(counts);
    let table = changes.table();
    let header = format!(
        "{}\n{} under TCG (-smp 1), {RUNS} boots per kernel; instructions per operation (median \
         of user + kernel) on vanilla, then `.` where a patch leaves the count unchanged or the \
         new count (and the difference) where it changes it; `~` where it moves it by no more than \
         twice the largest boot-to-boot spread seen for that operation on any of these kernels \
         (the noise column), which is not counted as a change.",
        machine_description(),
        qemu.version_text
    );
    let legend: String = subjects
        .iter()
        .enumerate()
        .filter(|(i, _)| changes.by_patch(i + 1))
        .map(|(i, s)| format!("{:04}: {s}\n", i + 1))
        .collect();
    println!("\n{header}\n\n{}\n{legend}", table.terminal());
    let md = format!("{header}\n\n{}\n```\n{legend}```\n", table.markdown());
    let out = paths::results().join("bench-instructions-per-patch.md");
    std::fs::write(&out, md).with_context(|| format!("cannot write {}", out.display()))?;
    let json = serde_json::json!({
        "qemu": qemu.version_text,
        "kernels": counts
            .iter()
            .enumerate()
            .map(|(k, per_op)| (Prefixes::label(k), named(per_op)))
            .collect::<std::collections::BTreeMap<_, _>>(),
    });
    let json_path = paths::results().join("bench-instructions-per-patch.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    println!("written: {} and {}", out.display(), json_path.display());
    Ok(0)
}

/// What one patch did to one operation's count.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// The same count (or not run before and after).
    Same,
    /// Moved, by no more than the operation's boot-to-boot spread.
    WithinNoise,
    /// The cell to show: the new count and the difference.
    Changed(String),
}

/// One operation: its vanilla count, the noise threshold used (a
/// fraction) and what each patch did to it.
struct Row {
    op: Op,
    vanilla: String,
    noise: f64,
    steps: Vec<Step>,
}

/// Per operation: its count on vanilla and, per patch, what the patch did
/// to it.
struct Changes {
    rows: Vec<Row>,
}

impl Changes {
    fn of(counts: &[PerOp]) -> Changes {
        let rows = Op::ALL
            .iter()
            .map(|op| {
                let per_kernel: Vec<&Measured> = counts.iter().map(|c| &c[op]).collect();
                let noise = per_kernel
                    .iter()
                    .filter_map(|m| match m {
                        Measured::Counts(c) => Some(c.run_to_run()),
                        Measured::NotRun(_) => None,
                    })
                    .fold(0.0, f64::max);
                let steps = per_kernel
                    .windows(2)
                    .map(|w| change(w[0], w[1], noise))
                    .collect();
                Row {
                    op: *op,
                    vanilla: cell(per_kernel[0]),
                    noise,
                    steps,
                }
            })
            .collect();
        Changes { rows }
    }

    /// True if patch `k` (1-based) changes some operation's count.
    fn by_patch(&self, k: usize) -> bool {
        self.rows
            .iter()
            .any(|row| matches!(row.steps[k - 1], Step::Changed(_)))
    }

    fn table(&self) -> Table {
        let patches = self.rows.first().map_or(0, |row| row.steps.len());
        let mut header = vec!["operation".to_string(), "vanilla".to_string()];
        header.extend((1..=patches).map(|k| format!("{k:04}")));
        header.extend(["changed by".to_string(), "noise".to_string()]);
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let mut row = vec![r.op.name().to_string(), r.vanilla.clone()];
                row.extend(r.steps.iter().map(|s| match s {
                    Step::Same => ".".to_string(),
                    Step::WithinNoise => "~".to_string(),
                    Step::Changed(cell) => cell.clone(),
                }));
                let by: Vec<String> = r
                    .steps
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| matches!(s, Step::Changed(_)))
                    .map(|(i, _)| format!("{:04}", i + 1))
                    .collect();
                row.push(if by.is_empty() {
                    "none".into()
                } else {
                    by.join(", ")
                });
                row.push(format!("{:.2}%", r.noise * 100.0));
                row
            })
            .collect();
        Table { header, rows }
    }
}

fn cell(m: &Measured) -> String {
    match m {
        Measured::Counts(c) => c.total.median.to_string(),
        Measured::NotRun(_) => "n/a".into(),
    }
}

/// What a patch that took an operation from `before` to `after` did: a
/// difference of at most twice `noise` (a fraction: the largest
/// boot-to-boot spread) of the smaller count is within the noise. Twice:
/// fork's boots fall into groups some 7 % apart, so two kernels whose two
/// boots each landed in one group differ by about the spread itself.
fn change(before: &Measured, after: &Measured, noise: f64) -> Step {
    match (before, after) {
        (Measured::NotRun(_), Measured::NotRun(_)) => Step::Same,
        (Measured::NotRun(_), Measured::Counts(a)) => {
            Step::Changed(format!("{} (new)", a.total.median))
        }
        (Measured::Counts(_), Measured::NotRun(_)) => Step::Changed("n/a (gone)".into()),
        (Measured::Counts(b), Measured::Counts(a)) => {
            let (b, a) = (b.total.median, a.total.median);
            let delta = a as i64 - b as i64;
            if delta == 0 {
                Step::Same
            } else if delta.unsigned_abs() as f64 <= 2.0 * noise * b.min(a) as f64 {
                Step::WithinNoise
            } else {
                Step::Changed(format!("{a} ({delta:+})"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::icount::{Counts, Stats};

    fn counts(run_medians: &[u64]) -> Measured {
        let total = Stats::of(run_medians.iter().copied()).unwrap();
        Measured::Counts(Counts {
            total,
            user_median: 0,
            kernel_median: total.median,
            run_medians: run_medians.to_vec(),
        })
    }

    #[test]
    fn a_deterministic_count_changes_by_one_instruction() {
        assert_eq!(
            change(&counts(&[222, 222]), &counts(&[222, 222]), 0.0),
            Step::Same
        );
        assert_eq!(
            change(&counts(&[9068, 9068]), &counts(&[9076, 9076]), 0.0),
            Step::Changed("9076 (+8)".into())
        );
        assert_eq!(
            change(&counts(&[9076, 9076]), &counts(&[9070, 9070]), 0.0),
            Step::Changed("9070 (-6)".into())
        );
    }

    #[test]
    fn a_difference_within_the_boot_to_boot_spread_is_no_change() {
        // fork: two boots of one kernel 4% apart; the next kernel 3% higher.
        assert_eq!(
            change(&counts(&[100_000]), &counts(&[103_000]), 0.04),
            Step::WithinNoise
        );
        assert_eq!(
            change(&counts(&[100_000]), &counts(&[100_000]), 0.04),
            Step::Same
        );
        assert_eq!(
            change(&counts(&[100_000]), &counts(&[107_000]), 0.04),
            Step::WithinNoise
        );
        assert_eq!(
            change(&counts(&[100_000]), &counts(&[109_000]), 0.04),
            Step::Changed("109000 (+9000)".into())
        );
    }

    #[test]
    fn the_series_operation_appears_in_the_patch_that_adds_it() {
        let not_run = || Measured::NotRun("ARCH_SET_COMPAT: EINVAL".into());
        assert_eq!(change(&not_run(), &not_run(), 0.0), Step::Same);
        assert_eq!(
            change(&not_run(), &counts(&[36_300]), 0.0),
            Step::Changed("36300 (new)".into())
        );
        assert_eq!(
            change(&counts(&[36_300]), &not_run(), 0.0),
            Step::Changed("n/a (gone)".into())
        );
    }

    #[test]
    fn the_table_names_the_changing_patches_and_uses_the_largest_spread() {
        let kernel = |mmap: u64, fork: &[u64]| -> PerOp {
            Op::ALL
                .iter()
                .map(|op| {
                    let m = match op {
                        Op::MmapMunmap => counts(&[mmap, mmap]),
                        Op::ForkExitWait => counts(fork),
                        Op::SetCompatNativePair => Measured::NotRun("EINVAL".into()),
                        _ => counts(&[500, 500]),
                    };
                    (*op, m)
                })
                .collect()
        };
        // fork: 4% between the boots of vanilla, then a 3% step at +0002.
        let counts = [
            kernel(9068, &[100_000, 104_000]),
            kernel(9068, &[100_000, 100_000]),
            kernel(9072, &[103_000, 103_000]),
        ];
        let changes = Changes::of(&counts);
        let table = changes.table();
        assert_eq!(
            table.header,
            [
                "operation",
                "vanilla",
                "0001",
                "0002",
                "changed by",
                "noise"
            ]
        );
        let row = |op: Op| {
            table
                .rows
                .iter()
                .find(|r| r[0] == op.name())
                .unwrap()
                .clone()
        };
        assert_eq!(
            row(Op::MmapMunmap)[1..],
            ["9068", ".", "9072 (+4)", "0002", "0.00%"]
        );
        assert_eq!(row(Op::ForkExitWait)[2..], [".", "~", "none", "4.00%"]);
        assert_eq!(
            row(Op::SetCompatNativePair)[1..],
            ["n/a", ".", ".", "none", "0.00%"]
        );
        assert!(!changes.by_patch(1) && changes.by_patch(2));
    }
}
