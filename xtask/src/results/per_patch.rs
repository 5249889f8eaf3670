//! `compare --per-patch`: what each prefix of the series (vanilla, +0001,
//! +0002, ...) did with every scenario, where each result changes, and
//! whether that change is the one the scenario declares: a reviewer reads
//! a series patch by patch, and a result that changes twice, in a patch
//! whose subject does not explain it, or never, is what they ask about.

use crate::kernel::Variant;
use crate::results::ktap::Status;
use crate::results::report::{Declared, RunReport};
use crate::results::table::{self, Table};

/// One prefix of the series: `vanilla` or a patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// `vanilla`, or the patch's number (`0003`).
    pub label: String,
    /// The patch's subject (None for vanilla or a patch without a header).
    pub subject: Option<String>,
}

/// What is wrong with one scenario's row; none: it changed once, in the
/// patch it names, from its declared vanilla result to its declared
/// patched one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A prefix kernel gave no result (the guest crashed, hung or stopped).
    NoResult { columns: Vec<usize> },
    /// The result changed in more than one patch.
    ChangedMoreThanOnce { columns: Vec<usize> },
    /// It changed in a patch whose subject lacks the declared words (None:
    /// the scenario declares no change at all).
    Unexplained {
        column: usize,
        declared: Option<String>,
    },
    /// It declares a change (these words) and never changed.
    NeverChanged { declared: String },
    /// The ends do not meet the declarations (vanilla, or the whole series).
    NotAsDeclared { column: usize },
}

#[derive(Debug, Clone)]
pub struct MatrixRow {
    pub id: String,
    /// One per column; None: no result.
    pub cells: Vec<Option<Status>>,
    /// The columns whose result differs from the column before.
    pub changes: Vec<usize>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone)]
pub struct Matrix {
    pub columns: Vec<Column>,
    pub rows: Vec<MatrixRow>,
}

impl Matrix {
    /// `runs[k]` is the run of the kernel with the first `k` patches, whose
    /// subjects are `subjects[k - 1]`.
    pub fn new(declared: &[Declared], subjects: &[Option<String>], runs: &[&RunReport]) -> Matrix {
        assert_eq!(runs.len(), subjects.len() + 1, "one run per prefix");
        let mut columns = vec![Column {
            label: Variant::Vanilla.name(),
            subject: None,
        }];
        columns.extend(subjects.iter().enumerate().map(|(i, s)| Column {
            label: format!("{:04}", i + 1),
            subject: s.clone(),
        }));
        let rows = declared
            .iter()
            .map(|d| {
                let cells: Vec<Option<Status>> =
                    runs.iter().map(|r| r.status_of(&d.id).cloned()).collect();
                row(d, &columns, cells)
            })
            .collect();
        Matrix { columns, rows }
    }

    /// How many scenarios have a finding.
    pub fn flagged(&self) -> usize {
        self.rows.iter().filter(|r| !r.findings.is_empty()).count()
    }

    /// Per patch, the scenarios whose result it changes (the cover
    /// letter's "which patch changes what").
    pub fn changes_by_patch(&self) -> Vec<(&Column, Vec<&str>)> {
        self.columns
            .iter()
            .enumerate()
            .skip(1)
            .map(|(c, column)| {
                let ids = self
                    .rows
                    .iter()
                    .filter(|r| r.changes.contains(&c))
                    .map(|r| r.id.as_str())
                    .collect();
                (column, ids)
            })
            .collect()
    }

    /// Scenario, the vanilla result, then per patch `.` when unchanged or
    /// the new result, and what is wrong with the row.
    pub fn table(&self) -> Table {
        let mut header = vec!["scenario".to_string()];
        header.extend(self.columns.iter().map(|c| c.label.clone()));
        header.push("check".into());
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let mut cells = vec![row.id.clone()];
                for (c, status) in row.cells.iter().enumerate() {
                    let changed = c == 0 || row.changes.contains(&c) || status.is_none();
                    cells.push(if changed {
                        table::cell(status.as_ref())
                    } else {
                        ".".into()
                    });
                }
                cells.push(self.describe(row));
                cells
            })
            .collect();
        Table { header, rows }
    }

    /// `ok (0008)`, `unchanged`, or the findings in words.
    fn describe(&self, row: &MatrixRow) -> String {
        if row.findings.is_empty() {
            return match row.changes.first() {
                Some(&c) => format!("ok ({})", self.columns[c].label),
                None => "unchanged".into(),
            };
        }
        let labels = |cols: &[usize]| {
            cols.iter()
                .map(|&c| self.columns[c].label.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let words: Vec<String> = row
            .findings
            .iter()
            .map(|f| match f {
                Finding::NoResult { columns } => format!("NO RESULT in {}", labels(columns)),
                Finding::ChangedMoreThanOnce { columns } => {
                    format!("CHANGED {} TIMES ({})", columns.len(), labels(columns))
                }
                Finding::Unexplained {
                    column,
                    declared: Some(words),
                } => format!(
                    "CHANGED IN {}, declared \"{words}\"",
                    self.columns[*column].label
                ),
                Finding::Unexplained {
                    column,
                    declared: None,
                } => format!(
                    "CHANGED IN {}, declared no change",
                    self.columns[*column].label
                ),
                Finding::NeverChanged { declared } => {
                    format!("NEVER CHANGED, declared \"{declared}\"")
                }
                Finding::NotAsDeclared { column } => {
                    format!("NOT AS DECLARED at {}", self.columns[*column].label)
                }
            })
            .collect();
        words.join("; ")
    }

    /// The patches by number with their subjects, and what each changes.
    pub fn legend(&self) -> String {
        let mut out = String::new();
        for (column, ids) in self.changes_by_patch() {
            let subject = column.subject.as_deref().unwrap_or("(no subject)");
            let what = if ids.is_empty() {
                "changes no scenario".to_string()
            } else {
                format!("changes {}: {}", ids.len(), ids.join(", "))
            };
            out.push_str(&format!("{} {subject}\n     {what}\n", column.label));
        }
        out
    }
}

fn row(declared: &Declared, columns: &[Column], cells: Vec<Option<Status>>) -> MatrixRow {
    let changes: Vec<usize> = (1..cells.len())
        .filter(|&c| cells[c] != cells[c - 1])
        .collect();
    let mut findings = Vec::new();
    let missing: Vec<usize> = (0..cells.len()).filter(|&c| cells[c].is_none()).collect();
    if !missing.is_empty() {
        findings.push(Finding::NoResult { columns: missing });
    }
    let last = cells.len() - 1;
    for (column, expected) in [(0, &declared.vanilla), (last, &declared.patched)] {
        if !table::met(expected, cells[column].as_ref()) {
            findings.push(Finding::NotAsDeclared { column });
        }
    }
    match (changes.as_slice(), &declared.changed_by) {
        ([], Some(words)) => findings.push(Finding::NeverChanged {
            declared: words.clone(),
        }),
        ([], None) => {}
        ([column], words) => {
            let subject = columns[*column].subject.as_deref().unwrap_or_default();
            if !words.as_deref().is_some_and(|w| subject.contains(w)) {
                findings.push(Finding::Unexplained {
                    column: *column,
                    declared: words.clone(),
                });
            }
        }
        (several, _) => findings.push(Finding::ChangedMoreThanOnce {
            columns: several.to_vec(),
        }),
    }
    MatrixRow {
        id: declared.id.clone(),
        cells,
        changes,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::report::Expect;

    fn declared(id: &str, vanilla: Expect, changed_by: Option<&str>) -> Declared {
        Declared {
            id: id.into(),
            description: String::new(),
            patched: Expect::parse("pass", None).unwrap(),
            vanilla,
            proves: String::new(),
            changed_by: changed_by.map(String::from),
        }
    }

    fn columns() -> Vec<Column> {
        let c = |label: &str, subject: Option<&str>| Column {
            label: label.into(),
            subject: subject.map(String::from),
        };
        vec![
            c("vanilla", None),
            c(
                "0001",
                Some("x86/arch_prctl: Refuse ARCH_MAP_VDSO_* through PTRACE_ARCH_PRCTL"),
            ),
            c("0002", Some("x86/vdso: Split the installing part out")),
            c(
                "0003",
                Some("x86/arch_prctl: Add ARCH_SET_COMPAT, ARCH_SET_NATIVE"),
            ),
        ]
    }

    const ABI: &str = "Add ARCH_SET_COMPAT";
    fn fail(reason: &str) -> Option<Status> {
        Some(Status::Fail(reason.into()))
    }
    fn einval() -> Expect {
        Expect::parse("fail", Some("EINVAL".into())).unwrap()
    }
    fn pass() -> Expect {
        Expect::parse("pass", None).unwrap()
    }

    #[test]
    fn one_change_in_the_named_patch_is_clean() {
        let d = declared("a", einval(), Some(ABI));
        let r = row(
            &d,
            &columns(),
            vec![
                fail("EINVAL"),
                fail("EINVAL"),
                fail("EINVAL"),
                Some(Status::Pass),
            ],
        );
        assert_eq!(r.changes, [3]);
        assert!(r.findings.is_empty(), "{:?}", r.findings);
    }

    #[test]
    fn a_change_in_another_patch_is_unexplained() {
        let d = declared("a", einval(), Some(ABI));
        let r = row(
            &d,
            &columns(),
            vec![
                fail("EINVAL"),
                fail("EINVAL"),
                Some(Status::Pass),
                Some(Status::Pass),
            ],
        );
        assert_eq!(
            r.findings,
            [Finding::Unexplained {
                column: 2,
                declared: Some(ABI.into())
            }]
        );
    }

    #[test]
    fn a_change_where_none_is_declared_is_unexplained() {
        let d = declared("a", pass(), None);
        let r = row(
            &d,
            &columns(),
            vec![
                Some(Status::Pass),
                fail("EPERM"),
                Some(Status::Pass),
                Some(Status::Pass),
            ],
        );
        assert_eq!(
            r.findings,
            [Finding::ChangedMoreThanOnce {
                columns: vec![1, 2]
            }]
        );
        let r = row(
            &d,
            &columns(),
            vec![
                Some(Status::Pass),
                Some(Status::Pass),
                fail("EPERM"),
                fail("EPERM"),
            ],
        );
        assert!(r.findings.contains(&Finding::Unexplained {
            column: 2,
            declared: None
        }));
        assert!(r.findings.contains(&Finding::NotAsDeclared { column: 3 }));
    }

    #[test]
    fn another_errno_is_a_change_too_and_a_missing_result_is_named() {
        let d = declared("a", einval(), Some(ABI));
        let r = row(
            &d,
            &columns(),
            vec![
                fail("EINVAL"),
                fail("EPERM"),
                fail("EINVAL"),
                Some(Status::Pass),
            ],
        );
        assert_eq!(
            r.findings,
            [Finding::ChangedMoreThanOnce {
                columns: vec![1, 2, 3]
            }]
        );
        let r = row(
            &d,
            &columns(),
            vec![fail("EINVAL"), fail("EINVAL"), None, Some(Status::Pass)],
        );
        assert!(r.findings.contains(&Finding::NoResult { columns: vec![2] }));
    }

    #[test]
    fn a_declared_change_that_never_happens_is_flagged() {
        let d = declared("a", einval(), Some(ABI));
        let r = row(&d, &columns(), vec![fail("EINVAL"); 4]);
        assert!(r.findings.contains(&Finding::NeverChanged {
            declared: ABI.into()
        }));
        assert!(r.findings.contains(&Finding::NotAsDeclared { column: 3 }));
    }

    #[test]
    fn the_table_shows_results_where_they_change_and_the_legend_names_them() {
        let d = [
            declared("a", einval(), Some(ABI)),
            declared("b", pass(), None),
        ];
        let rows = vec![
            row(
                &d[0],
                &columns(),
                vec![
                    fail("EINVAL"),
                    fail("EINVAL"),
                    fail("EINVAL"),
                    Some(Status::Pass),
                ],
            ),
            row(&d[1], &columns(), vec![Some(Status::Pass); 4]),
        ];
        let m = Matrix {
            columns: columns(),
            rows,
        };
        let t = m.table();
        assert_eq!(
            t.header,
            ["scenario", "vanilla", "0001", "0002", "0003", "check"]
        );
        assert_eq!(
            t.rows[0],
            ["a", "FAIL (EINVAL)", ".", ".", "pass", "ok (0003)"]
        );
        assert_eq!(t.rows[1], ["b", "pass", ".", ".", ".", "unchanged"]);
        assert_eq!(m.flagged(), 0);
        let legend = m.legend();
        assert!(legend.contains("0001 x86/arch_prctl: Refuse"), "{legend}");
        assert!(legend.contains("     changes no scenario"), "{legend}");
        assert!(legend.contains("     changes 1: a"), "{legend}");
    }
}
