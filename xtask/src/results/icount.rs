//! Instruction counts (`bench --instructions`): the sample file the QEMU
//! plugin writes (qemu/plugins/icount.c), what the validator said on the
//! console, and the statistics over them. The wire format and the
//! operations are `contract::icount`'s.

use anyhow::{bail, Context, Result};
use contract::icount::{Op, DONE_LINE};
use serde::Serialize;
use std::collections::BTreeMap;

/// One closed window: instructions at user and at kernel addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub user: u64,
    pub kernel: u64,
}

/// The plugin's file of one boot.
#[derive(Debug, Default, PartialEq)]
pub struct PluginOutput {
    pub samples: BTreeMap<Op, Vec<Sample>>,
    /// `unopened`/`unclosed` lines: markers out of order.
    pub unpaired: Vec<String>,
    /// The plugin's `end` line was written (QEMU exited normally).
    pub ended: bool,
}

/// Reads the plugin's file; a line it does not know is an error naming it.
pub fn parse_plugin_output(text: &str) -> Result<PluginOutput> {
    let mut out = PluginOutput::default();
    for (n, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("line {} of the plugin's output: {line:?}", n + 1);
        match words[..] {
            ["sample", op, user, kernel] => {
                let op = op_of(op).with_context(bad)?;
                let sample = Sample {
                    user: user.parse().with_context(bad)?,
                    kernel: kernel.parse().with_context(bad)?,
                };
                out.samples.entry(op).or_default().push(sample);
            }
            ["unopened" | "unclosed", _] => out.unpaired.push(line.to_string()),
            ["end", _, _] => out.ended = true,
            _ => bail!("{}: not sample/unopened/unclosed/end", bad()),
        }
    }
    Ok(out)
}

fn op_of(id: &str) -> Result<Op> {
    let n: u16 = id.parse().with_context(|| format!("operation id {id:?}"))?;
    Op::from_id(n)
        .with_context(|| format!("unknown operation id {n} (validator and xtask differ?)"))
}

/// What the validator printed about the marked loops: the operations it
/// skipped and why, and whether it finished (`DONE_LINE`).
#[derive(Debug, Default, PartialEq)]
pub struct ConsoleReport {
    pub skipped: BTreeMap<Op, String>,
    pub done: bool,
}

pub fn console_report(console: &[String]) -> Result<ConsoleReport> {
    let mut report = ConsoleReport::default();
    for line in console {
        let line = line.trim_end();
        if line == DONE_LINE {
            report.done = true;
        } else if let Some(rest) = line.strip_prefix("# icount skipped ") {
            let (id, why) = rest.split_once(' ').unwrap_or((rest, ""));
            report.skipped.insert(op_of(id)?, why.to_string());
        }
    }
    Ok(report)
}

/// Median and the 10th and 90th percentiles (nearest rank) of some counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub n: usize,
    pub median: u64,
    pub p10: u64,
    pub p90: u64,
}

impl Stats {
    pub fn of(values: impl IntoIterator<Item = u64>) -> Option<Stats> {
        let mut v: Vec<u64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let pick = |q: usize| v[(v.len() - 1) * q / 100];
        Some(Stats {
            n: v.len(),
            median: pick(50),
            p10: pick(10),
            p90: pick(90),
        })
    }

    /// (p90 - p10) / median.
    pub fn spread(&self) -> f64 {
        (self.p90 - self.p10) as f64 / self.median.max(1) as f64
    }
}

/// One operation on one kernel, over every boot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Counts {
    /// user + kernel, every sample of every boot.
    pub total: Stats,
    pub user_median: u64,
    pub kernel_median: u64,
    /// The median of user + kernel of each boot.
    pub run_medians: Vec<u64>,
}

impl Counts {
    /// (largest - smallest) / smallest of the boots' medians.
    pub fn run_to_run(&self) -> f64 {
        let max = self.run_medians.iter().max().copied().unwrap_or(0);
        let min = self.run_medians.iter().min().copied().unwrap_or(0);
        (max - min) as f64 / min.max(1) as f64
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Measured {
    Counts(Counts),
    /// Allowed only for the series' operation on a kernel without it.
    NotRun(String),
}

/// One kernel's boots (each: the plugin's file and the validator's
/// console) into a result per operation. `has_series` says whether the
/// series' operation must run. Missing samples, a skip that is not
/// allowed, unpaired markers, an unfinished run: an error naming them.
pub fn summarize(
    boots: &[(PluginOutput, ConsoleReport)],
    has_series: bool,
) -> Result<BTreeMap<Op, Measured>> {
    for (i, (plugin, console)) in boots.iter().enumerate() {
        let boot = i + 1;
        anyhow::ensure!(
            console.done,
            "boot {boot}: the validator did not finish the marked loops ({DONE_LINE:?} missing)"
        );
        anyhow::ensure!(
            plugin.ended,
            "boot {boot}: the plugin wrote no end line (QEMU did not exit normally)"
        );
        anyhow::ensure!(
            plugin.unpaired.is_empty(),
            "boot {boot}: markers out of order: {}",
            plugin.unpaired.join(", ")
        );
    }
    let mut out = BTreeMap::new();
    for op in Op::ALL {
        let skip = boots.iter().find_map(|(_, c)| c.skipped.get(&op));
        let measured = match skip {
            Some(why) if op.needs_series() && !has_series => Measured::NotRun(why.clone()),
            Some(why) => bail!("{} was not measured: {why}", op.name()),
            None => Measured::Counts(counts(op, boots)?),
        };
        out.insert(op, measured);
    }
    Ok(out)
}

fn counts(op: Op, boots: &[(PluginOutput, ConsoleReport)]) -> Result<Counts> {
    let mut run_medians = Vec::new();
    let mut all = Vec::new();
    for (i, (plugin, _)) in boots.iter().enumerate() {
        let samples = plugin.samples.get(&op).map(Vec::as_slice).unwrap_or(&[]);
        let stats = Stats::of(samples.iter().map(|s| s.user + s.kernel)).with_context(|| {
            format!(
                "boot {}: no sample of {} (its marker was never executed)",
                i + 1,
                op.name()
            )
        })?;
        run_medians.push(stats.median);
        all.extend_from_slice(samples);
    }
    let median = |f: fn(&Sample) -> u64| Stats::of(all.iter().map(f)).map_or(0, |s| s.median);
    Ok(Counts {
        total: Stats::of(all.iter().map(|s| s.user + s.kernel)).context("no samples")?,
        user_median: median(|s| s.user),
        kernel_median: median(|s| s.kernel),
        run_medians,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDED: &str = include_str!("../../testdata/icount/plugin-output.txt");

    /// The first 5 samples of each operation of a real boot: vanilla
    /// 6.12.117 under QEMU 7.2 TCG (the series' operation was skipped).
    #[test]
    fn reads_a_recorded_plugin_file() {
        let out = parse_plugin_output(RECORDED).unwrap();
        assert!(out.ended && out.unpaired.is_empty());
        let getpid = &out.samples[&Op::GetpidSyscall64];
        assert_eq!(getpid.len(), 5);
        assert!(
            getpid.iter().all(|s| *s
                == Sample {
                    user: 15,
                    kernel: 207
                }),
            "{getpid:?}"
        );
        let measured: Vec<Op> = out.samples.keys().copied().collect();
        let want: Vec<Op> = Op::ALL.into_iter().filter(|o| !o.needs_series()).collect();
        assert_eq!(measured, want);
        let console = ConsoleReport {
            skipped: [(Op::SetCompatNativePair, "no series".to_string())].into(),
            done: true,
        };
        let vanilla = summarize(&[(out, console)], false).unwrap();
        let Measured::Counts(c) = &vanilla[&Op::GetpidSyscall64] else {
            panic!()
        };
        assert_eq!(
            (c.total.median, c.user_median, c.kernel_median),
            (222, 15, 207)
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let err = parse_plugin_output("sample 1 2 3\nsample 99 1 1\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("line 2") && format!("{err:#}").contains("99"),
            "{err:#}"
        );
        let err = parse_plugin_output("sample 1 x 3\n").unwrap_err();
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
        assert!(parse_plugin_output("garbage\n").is_err());
    }

    #[test]
    fn percentiles_and_spread() {
        let s = Stats::of((1..=11).map(|i| i * 10)).unwrap();
        assert_eq!((s.n, s.p10, s.median, s.p90), (11, 20, 60, 100));
        assert!((s.spread() - 80.0 / 60.0).abs() < 1e-9);
        assert_eq!(Stats::of([]), None);
    }

    fn boot(samples: &[(Op, u64, u64)], skipped: &[(Op, &str)]) -> (PluginOutput, ConsoleReport) {
        let mut plugin = PluginOutput {
            ended: true,
            ..Default::default()
        };
        for &(op, user, kernel) in samples {
            plugin
                .samples
                .entry(op)
                .or_default()
                .push(Sample { user, kernel });
        }
        let console = ConsoleReport {
            skipped: skipped.iter().map(|(o, w)| (*o, w.to_string())).collect(),
            done: true,
        };
        (plugin, console)
    }

    fn every_op(except: Op) -> Vec<(Op, u64, u64)> {
        Op::ALL
            .into_iter()
            .filter(|o| *o != except)
            .map(|o| (o, 100, 900))
            .collect()
    }

    #[test]
    fn a_missing_operation_is_an_error_naming_it_not_a_zero() {
        let boots = [boot(&every_op(Op::MremapGrow), &[])];
        let err = summarize(&boots, true).unwrap_err().to_string();
        assert!(
            err.contains(Op::MremapGrow.name()) && err.contains("never executed"),
            "{err}"
        );
    }

    #[test]
    fn only_the_series_operation_may_be_skipped_and_only_without_the_series() {
        let pair = Op::SetCompatNativePair;
        let boots = [boot(&every_op(pair), &[(pair, "kernel lacks the series")])];
        let vanilla = summarize(&boots, false).unwrap();
        assert_eq!(
            vanilla[&pair],
            Measured::NotRun("kernel lacks the series".into())
        );
        let err = summarize(&boots, true).unwrap_err().to_string();
        assert!(err.contains("kernel lacks the series"), "{err}");
        let fork = Op::ForkExitWait;
        let boots = [boot(
            &every_op(Op::SetCompatNativePair),
            &[(fork, "no fork"), (pair, "x")],
        )];
        assert!(summarize(&boots, false)
            .unwrap_err()
            .to_string()
            .contains("no fork"));
    }

    #[test]
    fn unfinished_or_unpaired_runs_are_errors() {
        let mut b = boot(&every_op(Op::SetCompatNativePair), &[]);
        b.1.done = false;
        assert!(summarize(&[b], false)
            .unwrap_err()
            .to_string()
            .contains("did not finish"));
        let mut b = boot(&every_op(Op::SetCompatNativePair), &[]);
        b.0.ended = false;
        assert!(summarize(&[b], false)
            .unwrap_err()
            .to_string()
            .contains("no end line"));
        let mut b = boot(&every_op(Op::SetCompatNativePair), &[]);
        b.0.unpaired.push("unopened 3".into());
        assert!(summarize(&[b], false)
            .unwrap_err()
            .to_string()
            .contains("unopened 3"));
    }

    #[test]
    fn run_to_run_spread_compares_the_boots_medians() {
        let all: Vec<(Op, u64, u64)> = Op::ALL.into_iter().map(|o| (o, 100, 900)).collect();
        let a = boot(&all, &[]);
        let mut samples = all.clone();
        samples[0].2 = 1000; // getpid: 1100 instead of 1000
        let b = boot(&samples, &[]);
        let out = summarize(&[a, b], true).unwrap();
        let Measured::Counts(c) = &out[&Op::GetpidSyscall64] else {
            panic!()
        };
        assert_eq!(c.run_medians, vec![1000, 1100]);
        assert!((c.run_to_run() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn console_lines_are_read() {
        let console = [
            "# icount skipped 11 kernel lacks the series (ARCH_GET_COMPAT: EINVAL)".to_string(),
            DONE_LINE.to_string(),
        ];
        let r = console_report(&console).unwrap();
        assert!(r.done);
        assert_eq!(
            r.skipped[&Op::SetCompatNativePair],
            "kernel lacks the series (ARCH_GET_COMPAT: EINVAL)"
        );
    }
}
