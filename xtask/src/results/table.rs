//! What people read: typed rows (scenario, what each kernel did, what was
//! declared, the verdict) turned into text last, for a terminal or as
//! Markdown. Exit codes come from the rows, never from the rendered text.

use crate::kernel::source::SourceInfo;
use crate::kernel::Variant;
use crate::results::ktap::Status;
use crate::results::report::{Declared, Expect, RunReport};

/// One kernel's column in a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub status: Option<Status>,
    pub expected: Expect,
}

/// One scenario across the kernels that ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub description: String,
    /// In the order of `Verdicts::variants`.
    pub kernels: Vec<Observed>,
}

impl Row {
    /// Every kernel did what the scenario declares.
    pub fn as_expected(&self) -> bool {
        self.kernels
            .iter()
            .all(|k| met(&k.expected, k.status.as_ref()))
    }
}

/// Every declared scenario against one or more runs.
#[derive(Debug, Clone)]
pub struct Verdicts {
    pub variants: Vec<Variant>,
    pub rows: Vec<Row>,
}

impl Verdicts {
    pub fn new(declared: &[Declared], runs: &[&RunReport]) -> Verdicts {
        let rows = declared
            .iter()
            .map(|d| Row {
                id: d.id.clone(),
                description: d.description.clone(),
                kernels: runs
                    .iter()
                    .map(|r| Observed {
                        status: r.status_of(&d.id).cloned(),
                        expected: d.expected(r.variant).clone(),
                    })
                    .collect(),
            })
            .collect();
        Verdicts {
            variants: runs.iter().map(|r| r.variant).collect(),
            rows,
        }
    }

    /// How many scenarios did not do what they declare on some kernel.
    pub fn unexpected(&self) -> usize {
        self.rows.iter().filter(|r| !r.as_expected()).count()
    }

    /// The table: scenario, one column per kernel with what it observed
    /// (a failure with its reason: `FAIL (EINVAL)`) and the verdict. The
    /// full form adds what each scenario checks and the declarations; the
    /// compact one (terminal, cover letter: 80 columns) leaves them to the
    /// Markdown, since "as expected" already means observed = declared.
    pub fn table(&self, full: bool) -> Table {
        let mut header = vec!["scenario".to_string()];
        if full {
            header.push("what it checks".into());
        }
        header.extend(self.variants.iter().map(|v| v.name()));
        if full {
            header.push(self.expected_header());
        }
        header.push("verdict".into());
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let mut cells = vec![row.id.clone()];
                if full {
                    cells.push(row.description.clone());
                }
                cells.extend(row.kernels.iter().map(|k| cell(k.status.as_ref())));
                if full {
                    let expected: Vec<String> =
                        row.kernels.iter().map(|k| k.expected.to_string()).collect();
                    cells.push(expected.join(" / "));
                }
                cells.push(verdict(row.as_expected()).into());
                cells
            })
            .collect();
        Table { header, rows }
    }

    /// "expected" for one kernel, "expected v/p" for both.
    fn expected_header(&self) -> String {
        if self.variants.len() == 1 {
            return "expected".into();
        }
        let initials: Vec<String> = self
            .variants
            .iter()
            .map(|v| v.name()[..1].to_string())
            .collect();
        format!("expected {}", initials.join("/"))
    }
}

/// The verdict of one scenario on one kernel: no result meets nothing, and
/// a declared failure is met only by a failure with the same reason.
pub fn met(expected: &Expect, observed: Option<&Status>) -> bool {
    observed.is_some_and(|s| expected.is_met_by(&s.observation()))
}

/// What a kernel did, as a table cell: `pass`, `FAIL (EINVAL)`, `skip`, `(none)`.
pub fn cell(observed: Option<&Status>) -> String {
    match observed {
        Some(Status::Pass) => "pass".into(),
        Some(Status::Fail(reason)) => format!("FAIL ({reason})"),
        Some(Status::Skip(_)) => "skip".into(),
        None => "(none)".into(),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "as expected"
    } else {
        "UNEXPECTED"
    }
}

/// What was compared: a reader of the table must be able to rebuild it.
/// `first` is the first kernel's run (its config and QEMU are named).
pub fn header(source: &SourceInfo, patches: usize, series_hash: &str, first: &RunReport) -> String {
    // No local paths: this line goes into cover letters (reports keep them).
    let origin = std::path::Path::new(&source.origin)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    format!(
        "Linux {} ({} {})\n{} patches (series {}), config {}\nQEMU {}.{}.{} {} -cpu {}\n",
        source.version,
        source.provider,
        origin.unwrap_or_default(),
        patches,
        series_hash.get(..12).unwrap_or("empty"),
        &first.kernel.config_hash[..12],
        first.qemu.version.0,
        first.qemu.version.1,
        first.qemu.version.2,
        first.accelerator.name().to_uppercase(),
        first.cpu,
    )
}

/// Prints a run's problems with the console tail, so no log needs opening.
pub fn print_problems(report: &RunReport) {
    if report.problems.is_empty() {
        return;
    }
    println!("\n{} kernel: the run had problems:", report.variant.name());
    for p in &report.problems {
        println!("  - {p}");
    }
    println!("  console tail ({}):", report.console_log.display());
    for line in &report.console_tail {
        println!("    | {line}");
    }
}

/// The diagnostics of every scenario that did not do what it declares.
pub fn print_diagnostics(report: &RunReport, declared: &[Declared]) {
    let variant = report.variant;
    for d in declared {
        let Some(result) = report.ktap.get(&d.id) else {
            continue;
        };
        if met(d.expected(variant), Some(&result.status)) {
            continue;
        }
        println!(
            "\n{} on {}: {} (expected {})",
            d.id,
            variant.name(),
            result.status.observation(),
            d.expected(variant)
        );
        for line in &result.diagnostics {
            println!("  # {line}");
        }
    }
}

/// A table with a header row, rendered aligned for a terminal or as Markdown.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn terminal(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |row: &Vec<String>| {
            row.iter()
                .zip(&widths)
                .map(|(text, w)| format!("{text:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let rule = widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ");
        let mut out = vec![line(&self.header), rule];
        out.extend(self.rows.iter().map(line));
        out.join("\n") + "\n"
    }

    pub fn markdown(&self) -> String {
        let esc = |s: &String| s.replace('|', "\\|");
        let row =
            |r: &Vec<String>| format!("| {} |", r.iter().map(esc).collect::<Vec<_>>().join(" | "));
        let mut out = vec![
            row(&self.header),
            format!("|{}", "---|".repeat(self.header.len())),
        ];
        out.extend(self.rows.iter().map(row));
        out.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_for_terminal_and_markdown() {
        let t = Table {
            header: vec!["scenario".into(), "vanilla".into()],
            rows: vec![vec!["a|b".into(), "pass".into()]],
        };
        assert_eq!(
            t.terminal(),
            "scenario  vanilla\n--------  -------\na|b       pass\n"
        );
        assert_eq!(
            t.markdown(),
            "| scenario | vanilla |\n|---|---|\n| a\\|b | pass |\n"
        );
    }

    fn declared(id: &str, vanilla: Expect, patched: Expect) -> Declared {
        Declared {
            id: id.into(),
            description: format!("checks {id}"),
            vanilla,
            patched,
            proves: String::new(),
            changed_by: None,
        }
    }

    type Line<'a> = (&'a str, [Option<Status>; 2], [Expect; 2]);

    fn verdicts(rows: Vec<Line>) -> Verdicts {
        Verdicts {
            variants: Variant::BOTH.to_vec(),
            rows: rows
                .into_iter()
                .map(|(id, observed, expected)| Row {
                    id: id.into(),
                    description: format!("checks {id}"),
                    kernels: observed
                        .into_iter()
                        .zip(expected)
                        .map(|(status, expected)| Observed { status, expected })
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn the_compare_table_has_the_columns_of_before() {
        let v = verdicts(vec![
            (
                "a",
                [Some(fail("EINVAL")), Some(Status::Pass)],
                [Expect::fail("EINVAL".into()), Expect::PASS],
            ),
            (
                "b",
                [Some(Status::Pass), None],
                [Expect::PASS, Expect::PASS],
            ),
        ]);
        assert_eq!(v.unexpected(), 1);
        assert_eq!(
            v.table(true).markdown(),
            "| scenario | what it checks | vanilla | patched | expected v/p | verdict |\n|---|---|---|---|---|---|\n\
             | a | checks a | FAIL (EINVAL) | pass | fail (EINVAL) / pass | as expected |\n\
             | b | checks b | pass | (none) | pass / pass | UNEXPECTED |\n"
        );
        assert_eq!(
            v.table(false).terminal(),
            "scenario  vanilla        patched  verdict\n\
             --------  -------------  -------  -----------\n\
             a         FAIL (EINVAL)  pass     as expected\n\
             b         pass           (none)   UNEXPECTED\n"
        );
    }

    fn fail(reason: &str) -> Status {
        Status::Fail(reason.into())
    }

    #[test]
    fn a_failure_for_another_reason_or_a_crash_is_unexpected() {
        let declared = Expect::fail("EINVAL".into());
        assert!(met(&declared, Some(&fail("EINVAL"))));
        for other in ["ENOMEM", "SIGSEGV", "timeout", "unnamed"] {
            assert!(!met(&declared, Some(&fail(other))), "{other}");
        }
        assert!(!met(&declared, Some(&Status::Pass)));
        assert!(!met(&declared, None), "no result meets nothing");
    }

    #[test]
    fn one_kernel_gets_its_own_header_and_a_skip_meets_skip() {
        let d = [declared(
            "s",
            Expect::skip("no 32-bit".into()),
            Expect::PASS,
        )];
        let v = Verdicts {
            variants: vec![Variant::Vanilla],
            rows: vec![Row {
                id: d[0].id.clone(),
                description: d[0].description.clone(),
                kernels: vec![Observed {
                    status: Some(Status::Skip("no 32-bit".into())),
                    expected: d[0].vanilla.clone(),
                }],
            }],
        };
        assert_eq!(v.unexpected(), 0);
        let t = v.table(true);
        assert_eq!(
            t.header,
            [
                "scenario",
                "what it checks",
                "vanilla",
                "expected",
                "verdict"
            ]
        );
        assert_eq!(
            t.rows[0],
            ["s", "checks s", "skip", "skip (no 32-bit)", "as expected"]
        );
    }
}
