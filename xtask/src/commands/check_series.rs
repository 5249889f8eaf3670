//! `cargo xtask check-series`: what an upstream reviewer checks before
//! reading a series. It applies; checkpatch --strict is clean; every prefix
//! builds; it builds with IA32_EMULATION=n, CHECKPOINT_RESTORE=n and
//! X86_X32_ABI=y; touched files gain no W=1 warnings; and the kernel's x86
//! selftests give the same results on both kernels, with the series' own
//! test passing only patched.

use crate::flags::RunOpts;
use crate::host::process::{self, Cmd};
use crate::host::{deps, paths, ui};
use crate::kernel::build::{self, BuildInputs, Kernel};
use crate::kernel::series::Series;
use crate::kernel::Variant;
use crate::pipeline::prefixes::Prefixes;
use crate::pipeline::{self, Settings, Workspace};
use crate::results::exit;
use crate::results::table::Table;
use crate::vm::initramfs::{self, Contents};
use crate::vm::qemu::{Guest, Qemu};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One build each, on top of the test VM's fragment: options the series
/// must build without, and X32_ABI, whose in_x32_syscall() is also true in
/// the uprobes breakpoint trap (uprobes are in the fragment).
const CONFIG_MATRIX: [&str; 3] = [
    "CONFIG_IA32_EMULATION=n",
    "CONFIG_CHECKPOINT_RESTORE=n",
    "CONFIG_X86_X32_ABI=y",
];

/// The series' own selftest, and the upstream x86 selftests that must not
/// change behaviour (the 64-bit ones named in the series' quality bar).
const OWN_SELFTEST: &str = "compat_mode_64";
const UPSTREAM_SELFTESTS: [&str; 7] = [
    "test_vsyscall_64",
    "test_mremap_vdso_64",
    "sigreturn_64",
    "sysret_ss_attrs_64",
    "ldt_gdt_64",
    "ptrace_syscall_64",
    "fsgsbase_64",
];
/// kselftest's exit code for "skipped".
const KSFT_SKIP: i32 = 4;

/// checkpatch's type for a commit id it cannot find in the tree's history.
const UNKNOWN_COMMIT_ID: &str = "UNKNOWN_COMMIT_ID";

/// The runtime half of the X32_ABI=y build: in_x32_syscall() is true in
/// the uprobes breakpoint trap, so this kernel is where a placement check
/// keyed on it would move the XOL area of a 64-bit process below 4 GiB.
const X32_UPROBES: &str =
    "X86_X32_ABI=y kernel: compat_mode_64 passes, its uprobe fires and [uprobes] stays above 4 GiB";
/// What compat_mode_64 prints when its uprobe check passed (KTAP `ok N ...`).
const UPROBE_PASSED: &str = "uprobe on 64-bit code after ARCH_SET_COMPAT fires";

/// The start of every prefix build's check name.
const PREFIX_BUILDS: &str = "builds with patches";

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Every check, or with `only` (comma-separated) those whose name contains
/// one of its words (the series is always applied and built first: every
/// other check needs it).
pub fn run(only: Option<&str>, opts: &RunOpts) -> Result<i32> {
    deps::ensure(&deps::needed_for_selftests())?;
    let settings = opts.settings();
    let ws = Workspace::open(&settings)?;
    let wanted =
        |name: &str| only.is_none_or(|list| list.split(',').any(|text| name.contains(text.trim())));
    let mut checks = Vec::new();
    let mut record = |name: String, result: Result<String>| {
        let (ok, detail) = match result {
            Ok(detail) => (true, detail),
            Err(e) => (false, format!("{e:#}")),
        };
        if !ok {
            ui::note(&format!("FAILED: {name}: {detail}"));
        }
        checks.push(Check { name, ok, detail });
    };

    let applied = ws
        .kernel(Variant::Patched)
        .map(|k| format!("applies, builds: {}", k.bzimage.display()));
    let applies = applied.is_ok();
    record(
        format!(
            "{} patches apply to Linux {}",
            ws.series.patches.len(),
            ws.source.version
        ),
        applied,
    );
    if !applies {
        return finish(checks);
    }
    for patch in &ws.series.patches {
        let name = format!("checkpatch --strict {}", patch.name);
        if wanted(&name) {
            record(name, checkpatch(&ws, &patch.path));
        }
    }
    if wanted(PREFIX_BUILDS) {
        for (name, result) in prefix_builds(&ws)? {
            record(name, result);
        }
    }
    for setting in CONFIG_MATRIX {
        let name = format!("builds with {setting}");
        if wanted(&name) {
            record(name, matrix_build(&ws, setting));
        }
    }
    let name = "x86 selftests: same results on both kernels, compat_mode only patched";
    if wanted(name) {
        record(name.into(), selftests(&ws, &settings));
    }
    if wanted(X32_UPROBES) {
        record(X32_UPROBES.into(), x32_uprobes(&ws, &settings));
    }
    if checks.len() == 1 {
        bail!(
            "--only {:?} names no check (checkpatch, prefix, builds with, selftests, X32)",
            only.unwrap_or_default()
        );
    }
    finish(checks)
}

fn finish(checks: Vec<Check>) -> Result<i32> {
    let table = Table {
        header: vec!["check".into(), "result".into()],
        rows: checks
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    if c.ok { "ok".into() } else { "FAILED".into() },
                ]
            })
            .collect(),
    };
    println!();
    print!("{}", table.terminal());
    for c in checks
        .iter()
        .filter(|c| !c.ok || c.detail.contains("CHECK"))
    {
        println!("\n{}:\n  {}", c.name, c.detail.replace('\n', "\n  "));
    }
    let out = paths::results().join("check-series.json");
    std::fs::create_dir_all(paths::results())?;
    std::fs::write(&out, serde_json::to_string_pretty(&checks)?)?;
    println!("\nreport: {}", out.display());
    Ok(if checks.iter().all(|c| c.ok) {
        exit::AS_DECLARED
    } else {
        exit::NOT_AS_DECLARED
    })
}

/// The kernel's checkpatch.pl, from the patched tree, on one patch file.
fn checkpatch(ws: &Workspace, patch: &Path) -> Result<String> {
    let tree = ws.layout.src(Variant::Patched);
    // Debian's python3 first: another one on PATH (pyenv, a venv) may lack
    // the modules spdxcheck.py needs, and checkpatch then skips the check.
    let path = format!(
        "/usr/bin:/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    // The imported tree is a mirror of files with one commit of its own, so
    // checkpatch cannot look up the upstream ids of Fixes: tags and would
    // call each one unknown. Their format is still checked; their titles
    // are not (see the detail below and docs/pipeline.md).
    let out = Cmd::new("perl")
        .arg(tree.join("scripts/checkpatch.pl"))
        .args(["--strict", "--no-color", "--show-types"])
        .args(["--ignore", UNKNOWN_COMMIT_ID])
        .arg(patch)
        .dir(&tree)
        .env("PATH", path)
        .output()
        .context("running checkpatch.pl")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        !stderr.contains("Traceback") && !stderr.contains("Error"),
        "checkpatch could not run all its checks:\n{stderr}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = checkpatch_summary(&text)
        .with_context(|| format!("no summary from checkpatch:\n{text}"))?;
    let findings: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ERROR:") || l.starts_with("WARNING:") || l.starts_with("CHECK:"))
        .collect();
    let mut detail = format!("{summary}\n{}", findings.join("\n"))
        .trim()
        .to_string();
    anyhow::ensure!(summary.errors == 0 && summary.warnings == 0, "{detail}");
    if text.contains("Fixes:") || std::fs::read_to_string(patch)?.contains("\nFixes: ") {
        detail.push_str(&format!(
            "\n{UNKNOWN_COMMIT_ID} ignored: the imported tree has no upstream history to look up Fixes: ids in"
        ));
    }
    Ok(detail)
}

#[derive(Debug, PartialEq, Eq)]
struct CheckpatchSummary {
    errors: u32,
    warnings: u32,
    checks: u32,
}

impl std::fmt::Display for CheckpatchSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} errors, {} warnings, {} checks",
            self.errors, self.warnings, self.checks
        )
    }
}

/// "total: 0 errors, 1 warnings, 2 checks, 120 lines checked"
fn checkpatch_summary(output: &str) -> Option<CheckpatchSummary> {
    let line = output.lines().find(|l| l.starts_with("total: "))?;
    let count = |word: &str| -> Option<u32> {
        line.split(", ")
            .map(|part| part.trim_start_matches("total: "))
            .find(|part| part.ends_with(word))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(CheckpatchSummary {
        errors: count("errors")?,
        warnings: count("warnings")?,
        checks: count("checks").unwrap_or(0),
    })
}

/// Builds vanilla plus 1, 2, ... n patches in a separate "bisect" tree
/// (each kept for `compare --per-patch`), and compiles the touched C files
/// with W=1 at both ends to compare warnings.
fn prefix_builds(ws: &Workspace) -> Result<Vec<(String, Result<String>)>> {
    let prefixes = Prefixes::open(ws)?;
    let touched = touched_c_files(&ws.series);
    let mut results = Vec::new();
    let mut warnings_before = BTreeMap::new();
    let n = prefixes.len();
    for k in 0..=n {
        // Always through the tree, even when the shelf has this prefix:
        // the W=1 pass below compiles in it.
        let built = prefixes.build(k);
        if k == 0 {
            built?;
            warnings_before = w1_warnings(&prefixes.tree, &prefixes.build, &touched, ws.jobs)?;
            continue;
        }
        let name = format!("{PREFIX_BUILDS} 1..{k} ({})", ws.series.patches[k - 1].name);
        let failed = built.is_err();
        results.push((name, built.map(|_| "ok".to_string())));
        if failed {
            break;
        }
        if k == n {
            let after = w1_warnings(&prefixes.tree, &prefixes.build, &touched, ws.jobs)?;
            results.push((
                "no new W=1 warnings in touched files".into(),
                compare_warnings(&warnings_before, &after),
            ));
        }
    }
    Ok(results)
}

/// C files the series modifies (from the `+++ b/` lines of its patches).
fn touched_c_files(series: &Series) -> Vec<String> {
    let mut files: Vec<String> = series
        .patches
        .iter()
        .flat_map(|p| {
            String::from_utf8_lossy(&p.contents)
                .lines()
                .filter_map(|l| l.strip_prefix("+++ b/"))
                .filter(|f| f.ends_with(".c") && !f.starts_with("tools/"))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    files.sort();
    files.dedup();
    files
}

/// W=1 warning lines per touched file that this config builds.
fn w1_warnings(
    tree: &Path,
    build: &Path,
    files: &[String],
    jobs: usize,
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    for file in files {
        let object = file.trim_end_matches(".c").to_string() + ".o";
        if !build.join(&object).exists() {
            continue;
        }
        let output = build::make(tree, build, jobs, &object)
            .arg("W=1")
            .output()
            .with_context(|| format!("W=1 build of {object}"))?;
        let text = String::from_utf8_lossy(&output.stderr);
        anyhow::ensure!(
            output.status.success(),
            "the W=1 build of {object} failed ({}):\n{}",
            output.status,
            text.lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
        let warnings = text
            .lines()
            .filter(|l| l.contains("warning:"))
            .map(strip_line_numbers)
            .collect();
        out.insert(file.clone(), warnings);
    }
    Ok(out)
}

/// `a.c:12:5: warning: x` -> `a.c: warning: x`: patches move lines.
fn strip_line_numbers(line: &str) -> String {
    match line.split_once(": warning:") {
        Some((location, message)) => {
            let file = location.split(':').next().unwrap_or(location);
            format!("{file}: warning:{message}")
        }
        None => line.to_string(),
    }
}

fn compare_warnings(
    before: &BTreeMap<String, Vec<String>>,
    after: &BTreeMap<String, Vec<String>>,
) -> Result<String> {
    let mut new = Vec::new();
    for (file, warnings) in after {
        let old = before.get(file).cloned().unwrap_or_default();
        for w in warnings {
            if !old.contains(w) {
                new.push(w.clone());
            }
        }
    }
    anyhow::ensure!(new.is_empty(), "new W=1 warnings:\n{}", new.join("\n"));
    Ok(format!(
        "{} touched files compiled with W=1, no new warnings",
        after.len()
    ))
}

/// `CONFIG_X=n` or `CONFIG_X=y` split into the option and its value.
fn matrix_setting(setting: &str) -> (&str, &str) {
    setting
        .split_once('=')
        .expect("CONFIG_MATRIX entries are CONFIG_X=n or CONFIG_X=y")
}

/// The test VM's fragment with one option switched off (`=n`) or on.
fn matrix_fragment(base: &str, setting: &str) -> String {
    let (option, value) = matrix_setting(setting);
    let unset = format!("# {option} is not set");
    let mut text: String = base
        .lines()
        .filter(|l| !l.starts_with(&format!("{option}=")) && *l != unset)
        .map(|l| format!("{l}\n"))
        .collect();
    if value == "n" {
        text.push_str(&format!("# {option} is not set\n"));
    } else {
        text.push_str(&format!("{setting}\n"));
    }
    text
}

fn matrix_build(ws: &Workspace, setting: &str) -> Result<String> {
    let kernel = matrix_kernel(ws, setting)?;
    Ok(format!("built {}", kernel.bzimage.display()))
}

fn matrix_kernel(ws: &Workspace, setting: &str) -> Result<Kernel> {
    let (option, value) = matrix_setting(setting);
    let name = option.trim_start_matches("CONFIG_").to_lowercase();
    let state = if value == "n" { "off" } else { "on" };
    let dir = ws.layout.extra(&format!("matrix-{name}-{state}"));
    std::fs::create_dir_all(&dir)?;
    let base = std::fs::read_to_string(paths::config_fragment())?;
    let fragment = dir.join("fragment.config");
    std::fs::write(&fragment, matrix_fragment(&base, setting))?;
    let what = format!("Building patched kernel with {setting}");
    pipeline::build_kernel(
        &what,
        &BuildInputs {
            src: &ws.layout.src(Variant::Patched),
            build: &dir.join("build"),
            tree_id: &ws.source.tree_id,
            series_hash: &ws.series.hash(),
            fragment: &fragment,
            jobs: ws.jobs,
        },
    )
}

/// Boots the X32_ABI=y kernel with the selftests and requires the series'
/// own one to pass with its uprobe check run, not skipped.
fn x32_uprobes(ws: &Workspace, settings: &Settings) -> Result<String> {
    let kernel = matrix_kernel(ws, "CONFIG_X86_X32_ABI=y")?;
    let binaries = build_selftests(ws)?;
    let initrd = selftest_initramfs(ws, &binaries)?;
    let qemu = Qemu::find()?;
    let log = paths::results().join("selftests-x32.log");
    let console = boot_selftests(&kernel, "X32_ABI=y", &initrd, &qemu, settings, &log)?;
    judge_x32(&console, &log)
}

/// Boots `kernel` (called `label` in messages) into the selftests guest,
/// logging to `log`; its console, with no splat on it.
fn boot_selftests(
    kernel: &Kernel,
    label: &str,
    initrd: &Path,
    qemu: &Qemu,
    settings: &Settings,
    log: &Path,
) -> Result<Vec<String>> {
    let guest = Guest {
        qemu,
        kernel: &kernel.boot_image,
        initrd,
        append: String::new(),
        extra_args: Vec::new(),
    };
    let step = ui::Step::start(format!("Running x86 selftests on the {label} kernel"));
    let booted = pipeline::boot_without_splats(&guest, settings, log)
        .with_context(|| format!("x86 selftests on the {label} kernel"))?;
    step.finish("done");
    Ok(booted.boot.console)
}

fn judge_x32(console: &[String], log: &Path) -> Result<String> {
    let exits = parse_exits(console);
    let code = exits.get(OWN_SELFTEST).copied();
    let uprobe = console
        .iter()
        .find(|l| l.contains(UPROBE_PASSED))
        .map(|l| l.trim().to_string());
    anyhow::ensure!(
        code == Some(0),
        "{OWN_SELFTEST} exited {code:?} on the X32_ABI=y kernel; console: {}",
        log.display()
    );
    match uprobe {
        Some(line) if line.starts_with("ok ") => Ok(line),
        other => anyhow::bail!(
            "{OWN_SELFTEST} passed but its uprobe check did not (line: {other:?}; a skip means no \
             uprobe_events in the kernel); console: {}",
            log.display()
        ),
    }
}

/// Builds the selftests from the patched tree, runs them in both kernels
/// and compares exit codes.
fn selftests(ws: &Workspace, settings: &Settings) -> Result<String> {
    let binaries = build_selftests(ws)?;
    let initrd = selftest_initramfs(ws, &binaries)?;
    let qemu = Qemu::find()?;
    let mut codes = BTreeMap::new();
    for variant in Variant::BOTH {
        let kernel = ws.kernel(variant)?;
        let log = paths::results().join(format!("selftests-{}.log", variant.name()));
        let console = boot_selftests(&kernel, &variant.name(), &initrd, &qemu, settings, &log)?;
        let exits = parse_exits(&console);
        anyhow::ensure!(
            exits.len() == binaries.len(),
            "{} kernel reported {} of {} selftests; console: {}",
            variant.name(),
            exits.len(),
            binaries.len(),
            log.display()
        );
        codes.insert(variant.name(), exits);
    }
    judge_selftests(&codes["vanilla"], &codes["patched"])
}

fn judge_selftests(
    vanilla: &BTreeMap<String, i32>,
    patched: &BTreeMap<String, i32>,
) -> Result<String> {
    let mut problems = Vec::new();
    let mut lines = Vec::new();
    for (name, v) in vanilla {
        let p = patched.get(name).copied().unwrap_or(-1);
        lines.push(format!("{name}: vanilla {v}, patched {p}"));
        let ok = if name == OWN_SELFTEST {
            *v == KSFT_SKIP && p == 0
        } else {
            *v == p
        };
        if !ok {
            problems.push(format!("{name}: vanilla exit {v}, patched exit {p}"));
        }
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{}\n(all: {})",
        problems.join("\n"),
        lines.join("; ")
    );
    Ok(lines.join("\n"))
}

/// `selftest-exit <name> <code>` lines printed by the guest's init script.
fn parse_exits(console: &[String]) -> BTreeMap<String, i32> {
    console
        .iter()
        .filter_map(|l| {
            let mut words = l.strip_prefix("selftest-exit ")?.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.parse().ok()?))
        })
        .collect()
}

fn build_selftests(ws: &Workspace) -> Result<Vec<PathBuf>> {
    let step = ui::Step::start("Building x86 selftests (static) from the patched tree");
    let tree = ws.layout.src(Variant::Patched);
    let build = ws.layout.build(Variant::Patched);
    let log = ws.layout.logs().join("selftests.log");
    process::create_log(&log)?;
    build::make(&tree, &build, ws.jobs, "headers")
        .logged(&log)
        .context("make headers")?;
    let out = ws.layout.extra("selftests");
    std::fs::create_dir_all(&out)?;
    let names: Vec<&str> = std::iter::once(OWN_SELFTEST)
        .chain(UPSTREAM_SELFTESTS)
        .collect();
    Cmd::new("make")
        .arg("-C")
        .arg(tree.join("tools/testing/selftests/x86"))
        .arg(format!("OUTPUT={}", out.display()))
        .arg("CC=gcc -static")
        .arg(format!(
            "KHDR_INCLUDES=-isystem {}/usr/include",
            build.display()
        ))
        .args(&names)
        .logged(&log)
        .context("building the x86 selftests")?;
    step.finish("done");
    Ok(names.iter().map(|n| out.join(n)).collect())
}

/// initramfs/selftests.list plus one `file /selftests/NAME` line per binary;
/// initramfs/selftests-init runs them all.
fn selftest_initramfs(ws: &Workspace, binaries: &[PathBuf]) -> Result<PathBuf> {
    let out = paths::target().join("initramfs").join("selftests.cpio");
    let contents = Contents {
        lists: &["selftests.list"],
        vars: &[("BUSYBOX", Path::new(deps::BUSYBOX))],
        extra: selftest_lines(binaries),
    };
    initramfs::pack(&ws.layout.src(Variant::Vanilla), &contents, &out)?;
    Ok(out)
}

fn selftest_lines(binaries: &[PathBuf]) -> String {
    binaries
        .iter()
        .map(|bin| {
            let name = bin.file_name().unwrap_or_default().to_string_lossy();
            format!("file /selftests/{name} {} 0755 0 0\n", bin.display())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_checkpatch_totals() {
        let out = "WARNING: x\n\ntotal: 0 errors, 1 warnings, 2 checks, 120 lines checked\n";
        assert_eq!(
            checkpatch_summary(out),
            Some(CheckpatchSummary {
                errors: 0,
                warnings: 1,
                checks: 2
            })
        );
        let out = "total: 3 errors, 0 warnings, 40 lines checked\n";
        assert_eq!(
            checkpatch_summary(out),
            Some(CheckpatchSummary {
                errors: 3,
                warnings: 0,
                checks: 0
            })
        );
        assert_eq!(checkpatch_summary("nothing"), None);
    }

    #[test]
    fn matrix_fragment_switches_one_option_off() {
        let f = matrix_fragment(
            "CONFIG_A=y\nCONFIG_IA32_EMULATION=y\nCONFIG_IA32_EMULATION_DEFAULT_DISABLED=y\n",
            "CONFIG_IA32_EMULATION=n",
        );
        assert_eq!(f, "CONFIG_A=y\nCONFIG_IA32_EMULATION_DEFAULT_DISABLED=y\n# CONFIG_IA32_EMULATION is not set\n");
    }

    #[test]
    fn matrix_fragment_switches_one_option_on() {
        let f = matrix_fragment(
            "CONFIG_A=y\n# CONFIG_X86_X32_ABI is not set\n",
            "CONFIG_X86_X32_ABI=y",
        );
        assert_eq!(f, "CONFIG_A=y\nCONFIG_X86_X32_ABI=y\n");
        assert!(CONFIG_MATRIX
            .iter()
            .all(|s| matches!(matrix_setting(s).1, "n" | "y")));
    }

    #[test]
    fn warnings_are_compared_without_line_numbers() {
        assert_eq!(
            strip_line_numbers("arch/x86/a.c:12:5: warning: unused x"),
            "arch/x86/a.c: warning: unused x"
        );
        let before = BTreeMap::from([("a.c".to_string(), vec!["a.c: warning: old".to_string()])]);
        let same = BTreeMap::from([("a.c".to_string(), vec!["a.c: warning: old".to_string()])]);
        assert!(compare_warnings(&before, &same).is_ok());
        let worse = BTreeMap::from([(
            "a.c".to_string(),
            vec!["a.c: warning: old".into(), "a.c: warning: new".into()],
        )]);
        let err = compare_warnings(&before, &worse).unwrap_err().to_string();
        assert!(
            err.contains("a.c: warning: new") && !err.contains("old"),
            "{err}"
        );
    }

    #[test]
    fn selftest_verdicts() {
        let m = |pairs: &[(&str, i32)]| {
            pairs
                .iter()
                .map(|(n, c)| (n.to_string(), *c))
                .collect::<BTreeMap<_, _>>()
        };
        let vanilla = m(&[
            ("compat_mode_64", 4),
            ("sigreturn_64", 0),
            ("fsgsbase_64", 1),
        ]);
        let patched = m(&[
            ("compat_mode_64", 0),
            ("sigreturn_64", 0),
            ("fsgsbase_64", 1),
        ]);
        assert!(
            judge_selftests(&vanilla, &patched).is_ok(),
            "same codes elsewhere are fine, even non-zero"
        );
        let regressed = m(&[
            ("compat_mode_64", 0),
            ("sigreturn_64", 1),
            ("fsgsbase_64", 1),
        ]);
        assert!(judge_selftests(&vanilla, &regressed)
            .unwrap_err()
            .to_string()
            .contains("sigreturn_64"));
        let crashed_on_vanilla = m(&[
            ("compat_mode_64", 139),
            ("sigreturn_64", 0),
            ("fsgsbase_64", 1),
        ]);
        assert!(
            judge_selftests(&crashed_on_vanilla, &patched).is_err(),
            "vanilla must skip cleanly"
        );
    }

    #[test]
    fn the_x32_check_wants_the_uprobe_check_run_and_passed() {
        let lines = |uprobe: &str, code: i32| -> Vec<String> {
            vec![
                format!(
                    "{uprobe} 7 {UPROBE_PASSED}, the process survives, XOL high (child 0, hits 3)"
                ),
                format!("selftest-exit {OWN_SELFTEST} {code}"),
            ]
        };
        let log = Path::new("log");
        assert!(judge_x32(&lines("ok", 0), log).is_ok());
        assert!(judge_x32(&lines("not ok", 1), log).is_err());
        let skipped = vec![
            "ok 7 # SKIP uprobe after ARCH_SET_COMPAT: no /sys/kernel/tracing/uprobe_events"
                .to_string(),
            format!("selftest-exit {OWN_SELFTEST} 0"),
        ];
        let err = judge_x32(&skipped, log).unwrap_err().to_string();
        assert!(err.contains("did not"), "{err}");
        assert!(judge_x32(&[], log).is_err(), "no exit line");
    }

    #[test]
    fn parses_exit_lines_and_touched_files() {
        let console = vec![
            "noise".to_string(),
            "selftest-exit sigreturn_64 0".into(),
            "selftest-exit x 139".into(),
        ];
        let exits = parse_exits(&console);
        assert_eq!(exits.get("sigreturn_64"), Some(&0));
        assert_eq!(exits.get("x"), Some(&139));
        assert_eq!(
            selftest_lines(&[PathBuf::from("/b/sigreturn_64")]),
            "file /selftests/sigreturn_64 /b/sigreturn_64 0755 0 0\n"
        );
        let patch = crate::kernel::series::Patch {
            name: "p".into(),
            path: "p".into(),
            contents: b"+++ b/arch/x86/a.c\n+++ b/include/x.h\n+++ b/tools/testing/t.c\n".to_vec(),
        };
        let series = Series {
            dir: PathBuf::new(),
            patches: vec![patch],
        };
        assert_eq!(touched_c_files(&series), ["arch/x86/a.c"]);
    }
}
