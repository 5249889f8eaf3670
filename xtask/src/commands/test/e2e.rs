//! End-to-end checks on real kernels: the compare itself, the cache, and
//! the failure paths a user will meet (a patch that does not apply, a hung
//! guest, a kernel panic), each asserted, none skipped. `compare`,
//! `check-series` and `run` are run as child xtasks, as a user runs them.

use crate::flags::RunOpts;
use crate::host::process::Cmd;
use crate::host::{deps, paths, ui};
use crate::kernel::git::{self, git};
use crate::kernel::series::{self, Series};
use crate::kernel::Variant;
use crate::pipeline::{self, Settings, Workspace};
use crate::results::ktap::Ktap;
use crate::results::report;
use crate::vm::boot::{Boot, Ending};
use crate::vm::initramfs::{self, Contents};
use crate::vm::qemu::{Guest, Qemu};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Check = fn(&RunOpts) -> Result<()>;

/// Every check, or those whose name contains `only`.
pub fn run(only: Option<&str>, opts: &RunOpts) -> Result<i32> {
    let checks: [(&str, Check); 7] = [
        (
            "compare: both kernels built and booted, every scenario as declared",
            check_compare,
        ),
        ("a second compare rebuilds nothing", check_cached),
        (
            "initramfs: same inputs give the same bytes",
            check_initramfs_reproducible,
        ),
        (
            "a patch that no longer applies is named, nothing stays applied",
            check_broken_patch,
        ),
        (
            "a hung guest and a kernel panic are reported in time, no QEMU left",
            check_hang_and_panic,
        ),
        (
            "Ctrl-C during a boot stops xtask and its QEMU",
            check_interrupt,
        ),
        (
            "check-series: the series meets its quality bar",
            check_series_quality,
        ),
    ];
    let chosen: Vec<(&str, Check)> = checks
        .into_iter()
        .filter(|(name, _)| only.is_none_or(|text| name.contains(text)))
        .collect();
    if chosen.is_empty() {
        bail!(
            "no end-to-end check's name contains {:?}",
            only.unwrap_or_default()
        );
    }
    let mut failed = 0;
    for (name, check) in chosen {
        eprintln!("\n=== e2e: {name}");
        match check(opts) {
            Ok(()) => eprintln!("=== ok: {name}"),
            Err(e) => {
                failed += 1;
                ui::finish_all();
                eprintln!("=== FAILED: {name}\n{e:#}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} end-to-end check(s) failed");
    }
    eprintln!("\nall end-to-end checks passed");
    Ok(0)
}

/// This xtask with `subcommand` and the options this run was given.
fn xtask(subcommand: &[&str], opts: &RunOpts) -> Result<Cmd> {
    let exe = std::env::current_exe().context("finding this xtask's executable")?;
    let mut cmd = Cmd::new(exe)
        .args(subcommand)
        .args(["--accel", &opts.accel.name()])
        .arg("--timeout")
        .arg(opts.timeout.to_string());
    let paths = [
        ("--kernel-src", &opts.source.kernel_src),
        ("--kernel-tarball", &opts.source.kernel_tarball),
        ("--series", &opts.series),
    ];
    for (flag, value) in paths {
        if let Some(value) = value {
            cmd = cmd.arg(flag).arg(value);
        }
    }
    if let Some(filter) = &opts.filter {
        cmd = cmd.arg("--filter").arg(filter);
    }
    if let Some(jobs) = opts.jobs {
        cmd = cmd.arg("--jobs").arg(jobs.to_string());
    }
    Ok(cmd)
}

/// Runs this xtask's `subcommand` to its end and returns its exit code.
fn run_xtask(subcommand: &[&str], opts: &RunOpts) -> Result<i32> {
    let status = xtask(subcommand, opts)?.run()?;
    status
        .code()
        .with_context(|| format!("cargo xtask {} was killed ({status})", subcommand.join(" ")))
}

fn check_compare(opts: &RunOpts) -> Result<()> {
    let code = run_xtask(&["compare"], opts)?;
    ensure!(
        code == 0,
        "cargo xtask compare exited {code}: see the table above"
    );
    let md = std::fs::read_to_string(paths::results().join("compare.md"))?;
    ensure!(md.contains("| scenario |"), "compare.md has no table");
    Ok(())
}

fn check_series_quality(opts: &RunOpts) -> Result<()> {
    let code = run_xtask(&["check-series"], opts)?;
    ensure!(
        code == 0,
        "cargo xtask check-series exited {code}: see the table above"
    );
    Ok(())
}

fn check_cached(opts: &RunOpts) -> Result<()> {
    let ws = Workspace::open(&opts.settings())?;
    for variant in Variant::BOTH {
        let kernel = ws.kernel(variant)?;
        ensure!(
            kernel.cached,
            "{} kernel was rebuilt with nothing changed",
            variant.name()
        );
    }
    Ok(())
}

fn check_initramfs_reproducible(opts: &RunOpts) -> Result<()> {
    let ws = Workspace::open(&opts.settings())?;
    let programs = pipeline::programs()?;
    let first = std::fs::read(ws.validator_initramfs(&programs, None)?)?;
    std::thread::sleep(Duration::from_millis(1100));
    let second = std::fs::read(ws.validator_initramfs(&programs, None)?)?;
    ensure!(first == second, "two packs of the same inputs differ");
    ensure!(first.starts_with(b"070701"), "not a newc cpio archive");
    Ok(())
}

/// The real series with one context line of its first patch changed,
/// applied in a throwaway worktree (the cached patched tree is not touched).
fn check_broken_patch(opts: &RunOpts) -> Result<()> {
    let ws = Workspace::open(&opts.settings())?;
    let Some(first) = ws
        .series
        .patches
        .iter()
        .find(|p| first_context_line(&p.contents).is_some())
    else {
        bail!("the series has no patch with a context line to break");
    };
    let dir = tempfile::tempdir()?;
    let broken = dir.path().join("series-dir");
    std::fs::create_dir(&broken)?;
    std::fs::write(broken.join("series"), format!("{}\n", first.name))?;
    std::fs::write(broken.join(&first.name), break_patch(&first.contents))?;
    let series = Series::load(&broken)?;

    let vanilla = ws.layout.src(Variant::Vanilla);
    let tree = paths::target().join("e2e-worktree");
    let log = dir.path().join("log");
    git::remove_worktree(&vanilla, &tree);
    git::add_worktree(&vanilla, &tree, &ws.source.commit, &log)?;
    let result = series::apply(&tree, &ws.source.commit, &series, &log);
    let clean = git(&tree).args(["status", "--porcelain"]).read()?;
    let head = git(&tree).args(["rev-parse", "HEAD"]).read()?;
    git::remove_worktree(&vanilla, &tree);
    let err = match result {
        Ok(()) => bail!("the broken patch applied"),
        Err(e) => format!("{e:#}"),
    };
    eprintln!("{err}");
    ensure!(
        err.contains(&first.name),
        "the error does not name {}: {err}",
        first.name
    );
    ensure!(
        err.contains("patch failed:"),
        "the error does not name the file and hunk: {err}"
    );
    ensure!(
        clean.trim().is_empty() && head.trim() == ws.source.commit,
        "the tree was left half-applied"
    );
    Ok(())
}

fn first_context_line(patch: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(patch).ok()?;
    let mut in_hunk = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with("@@") {
            in_hunk = true;
        } else if in_hunk && line.starts_with(' ') && line.trim().len() > 3 {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

/// Rewrites the first context line of the first hunk, as a rebase gone stale would.
fn break_patch(patch: &[u8]) -> Vec<u8> {
    let at = first_context_line(patch).expect("checked by the caller");
    let mut out = patch[..at + 1].to_vec();
    out.extend_from_slice(b"XTASK-E2E-STALE ");
    out.extend_from_slice(&patch[at + 1..]);
    out
}

fn check_hang_and_panic(opts: &RunOpts) -> Result<()> {
    let settings = opts.settings();
    let ws = Workspace::open(&settings)?;
    let kernel = ws.kernel(Variant::Vanilla)?;
    let qemu = Qemu::find()?;
    let timeout = Duration::from_secs(30);

    let hang = fake_guest(&ws, "hang")?;
    let (boot, ktap, took) = boot_fake(&qemu, &kernel.vmlinux, &hang, &settings, timeout)?;
    ensure!(
        boot.ending == Ending::TimedOut,
        "hung guest ended as {:?}",
        boot.ending
    );
    ensure!(
        took < timeout + Duration::from_secs(10),
        "hang reported after {took:?}"
    );
    let problems = report::run_problems(&boot, &ktap, timeout.as_secs());
    ensure!(
        problems
            .iter()
            .any(|p| p.contains("while scenario e2e_hangs was running")),
        "hang not attributed: {problems:?}"
    );
    ensure_no_qemu_left(&hang)?;

    // PID 1 exiting is a real kernel panic ("Attempted to kill init").
    let panic = fake_guest(&ws, "panic")?;
    let (boot, ktap, took) = boot_fake(&qemu, &kernel.vmlinux, &panic, &settings, timeout)?;
    ensure!(took < timeout, "panic reported after {took:?}");
    let problems = report::run_problems(&boot, &ktap, timeout.as_secs());
    ensure!(
        problems.iter().any(|p| p.contains("Kernel panic")),
        "panic not reported: {problems:?}"
    );
    ensure!(
        problems
            .iter()
            .any(|p| p.contains("while scenario e2e_panics was running")),
        "panic not attributed: {problems:?}"
    );
    ensure!(!boot.console.is_empty(), "no console tail kept");
    ensure_no_qemu_left(&panic)?;
    Ok(())
}

/// Runs `xtask run` as a child, sends it SIGINT once its QEMU is up, and
/// checks that both are gone.
fn check_interrupt(opts: &RunOpts) -> Result<()> {
    let run = xtask(&["run", "--variant", "vanilla"], opts)?;
    let child = run.spawn_silent().context("starting xtask run")?;
    let xtask = child.pid() as i32;
    let deadline = Instant::now() + Duration::from_secs(120);
    let qemu = loop {
        if let Some(pid) = children_named(xtask, "qemu-system").into_iter().next() {
            break pid;
        }
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            child.kill();
            bail!("xtask run never started QEMU");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(xtask),
        nix::sys::signal::Signal::SIGINT,
    )?;
    let status = child.wait(&run)?;
    ensure!(
        status.code() == Some(130),
        "xtask ended with {status} after SIGINT, not 130"
    );
    std::thread::sleep(Duration::from_millis(500));
    ensure!(!alive(qemu), "QEMU (pid {qemu}) survived the interrupt");
    Ok(())
}

/// Processes whose parent is `parent` and whose command name starts with `name`.
fn children_named(parent: i32, name: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // "pid (comm) state ppid ...": comm may hold spaces, so split at the last ')'.
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                return false;
            };
            let comm = head.split_once(" (").map(|(_, c)| c).unwrap_or("");
            let ppid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i32>().ok());
            comm.starts_with(name) && ppid == Some(parent)
        })
        .collect()
}

/// Running, not a zombie waiting to be reaped.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// initramfs/e2e/fake.list with initramfs/e2e/<name>-init as /init: a
/// busybox script printing the start of a KTAP run, then hanging or exiting.
fn fake_guest(ws: &Workspace, name: &str) -> Result<PathBuf> {
    let init = paths::initramfs_lists().join(format!("e2e/{name}-init"));
    let out = paths::target().join("e2e").join(format!("{name}.cpio"));
    let contents = Contents {
        lists: &["e2e/fake.list"],
        vars: &[("BUSYBOX", Path::new(deps::BUSYBOX)), ("FAKE_INIT", &init)],
        extra: String::new(),
    };
    initramfs::pack(&ws.layout.src(Variant::Vanilla), &contents, &out)?;
    Ok(out)
}

fn boot_fake(
    qemu: &Qemu,
    kernel: &Path,
    initrd: &Path,
    settings: &Settings,
    timeout: Duration,
) -> Result<(Boot, Ktap, Duration)> {
    let guest = Guest {
        qemu,
        kernel,
        initrd,
        append: String::new(),
    };
    let log = initrd.with_extension("console.log");
    let started = Instant::now();
    let mut ktap = Ktap::default();
    let booted = pipeline::boot(&guest, settings.accel, timeout, &log, &mut |l| {
        ktap.push_line(l)
    })?;
    Ok((booted.boot, ktap, started.elapsed()))
}

/// No process still runs with this initramfs on its command line.
fn ensure_no_qemu_left(initrd: &Path) -> Result<()> {
    let needle = initrd.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let path = entry?.path();
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            bail!("a QEMU process survived: {}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaking_a_patch_changes_only_a_context_line() {
        let patch = b"From x\n---\n--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n context one\n-old\n+new\n";
        let broken = String::from_utf8(break_patch(patch)).unwrap();
        assert!(
            broken.contains("\n XTASK-E2E-STALE context one\n-old\n+new\n"),
            "{broken}"
        );
        assert_eq!(first_context_line(b"no hunks\n"), None);
    }
}
