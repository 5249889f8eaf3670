//! End-to-end: a WARN_ON injected into the patched kernel by a test-only
//! patch (xtask/testdata/warn-on/) fails `run`, `compare` and
//! `check-series` although every scenario still behaves as declared, and
//! each prints the WARNING's first lines. The three share one build of the
//! series plus the test patch (check-series runs its selftests check only:
//! the one that boots).

use crate::flags::RunOpts;
use crate::host::paths;
use crate::host::process::Cmd;
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};

/// The validator's first scenario that calls ARCH_GET_COMPAT.
const FILTER: &str = "get_compat_reads_native";

pub fn check(opts: &RunOpts) -> Result<()> {
    let dir = paths::target().join("e2e-warn-on-series");
    series_with_test_patch(&dir)?;
    let runs: [&[&str]; 3] = [
        &["run", "--variant", "patched", "--filter", FILTER],
        &["compare", "--filter", FILTER],
        // The selftests guest is where check-series boots a kernel; its
        // builds are the regular check's, 15 minutes not worth repeating.
        &["check-series", "--only", "selftests"],
    ];
    for args in runs {
        let out = xtask(args, &dir, opts)?.output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let what = format!("cargo xtask {}", args.join(" "));
        ensure!(
            out.status.code() == Some(1),
            "{what} with a WARN_ON in the kernel exited {:?}, not 1:\n{text}",
            out.status.code()
        );
        // The build is out of tree (the path reads ../src/arch/...) and
        // the test config has no KALLSYMS (no function names).
        for needle in [
            "kernel WARNING (line",
            "| WARNING: CPU: 0 PID: ",
            "arch/x86/kernel/process_64.c:",
        ] {
            ensure!(
                text.contains(needle),
                "{what} does not show `{needle}`:\n{text}"
            );
        }
        eprintln!("    {what}: exit 1 with the WARNING's first lines");
    }
    Ok(())
}

/// kernel-patches/ with the test patch appended to its `series`.
fn series_with_test_patch(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let source = paths::default_series_dir();
    for entry in std::fs::read_dir(&source)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap_or_default()))?;
        }
    }
    let test_patch = test_patch()?;
    let name = test_patch.file_name().unwrap_or_default();
    std::fs::copy(&test_patch, dir.join(name))?;
    let mut series = std::fs::read_to_string(dir.join("series"))?;
    series.push_str(&format!("{}\n", name.to_string_lossy()));
    std::fs::write(dir.join("series"), series)?;
    Ok(())
}

fn test_patch() -> Result<PathBuf> {
    let dir = paths::root().join("xtask/testdata/warn-on");
    let mut patches: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .collect();
    ensure!(
        patches.len() == 1,
        "expected one patch in {}",
        dir.display()
    );
    Ok(patches.remove(0))
}

/// This xtask with `args`, the test series, and the source and accelerator given.
pub(super) fn xtask(args: &[&str], series: &Path, opts: &RunOpts) -> Result<Cmd> {
    let exe = std::env::current_exe().context("finding this xtask's executable")?;
    let mut cmd = Cmd::new(exe)
        .args(args)
        .arg("--series")
        .arg(series)
        .args(["--accel", &opts.accel.name()])
        .arg("--timeout")
        .arg(opts.timeout.to_string());
    if let Some(src) = &opts.source.kernel_src {
        cmd = cmd.arg("--kernel-src").arg(src);
    }
    if let Some(tarball) = &opts.source.kernel_tarball {
        cmd = cmd.arg("--kernel-tarball").arg(tarball);
    }
    Ok(cmd)
}
