//! End-to-end checks on real kernels: the compare itself, the cache, and
//! the failure paths a user will meet (a patch that does not apply, a hung
//! guest, a kernel panic), each asserted, none skipped. `compare`,
//! `check-series` and `run` are run as child xtasks, as a user runs them.

use crate::flags::RunOpts;
use crate::host::archive::{self, Item};
use crate::host::process::Cmd;
use crate::host::{deps, paths, ui};
use crate::kernel::git::{self, git};
use crate::kernel::series::{self, Series};
use crate::kernel::source::{Layout, Provider};
use crate::kernel::Variant;
use crate::pipeline::{self, Settings, Workspace};
use crate::results::ktap::Ktap;
use crate::results::{exit, report};
use crate::vm::boot::{Boot, Ending};
use crate::vm::console::Allowlist;
use crate::vm::initramfs::{self, Contents};
use crate::vm::qemu::{Guest, Qemu};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Check = fn(&RunOpts) -> Result<()>;

/// Every check, or those whose name contains `only`.
pub fn run(only: Option<&str>, opts: &RunOpts) -> Result<i32> {
    let checks: [(&str, Check); 16] = [
        (
            "compare: both kernels built and booted, every scenario as declared",
            check_compare,
        ),
        ("a second compare rebuilds nothing", check_cached),
        (
            "format-series: mails from the sender's identity with the compare table; no identity is refused",
            super::format_series::check,
        ),
        (
            "Ctrl-C during a --kernel-src build stops xtask, make and the compilers",
            check_interrupt_kernel_src,
        ),
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
            "bundle: two bundles and a repack give the same bytes; replays with bash, coreutils and QEMU only; a swapped kernel is caught",
            check_bundle_replays,
        ),
        (
            "check-series (checkpatch, selftests): the series meets its quality bar",
            check_series_quality,
        ),
        (
            "a broken KVM (fake QEMU: exits, aborts, firmware only, silent) falls back to TCG with its reason; a slow KVM does not",
            super::fake_kvm::check,
        ),
        (
            "bench --instructions: apt and gcc failures (fake apt-get) stop at the plugin step with apt's or gcc's words",
            super::fake_apt::check,
        ),
        (
            "a WARN_ON in the patched kernel fails run, compare and check-series with the WARNING's first lines",
            super::warn_on::check,
        ),
        (
            "stress: a kernel that leaves the old [vvar] on ARCH_SET_NATIVE is caught with a seed and a step",
            check_stress_catches_a_fault,
        ),
        (
            "compare --per-patch: each fix's scenario changes in its own patch; a second run rebuilds nothing",
            super::per_patch::check,
        ),
        (
            "debug flavour (reduced): the patched debug kernel announces KASAN, lockdep and kmemleak; suite and 20 s of stress with no splat, leak or broken invariant",
            super::debug_flavour::check,
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
pub(super) fn xtask(subcommand: &[&str], opts: &RunOpts) -> Result<Cmd> {
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
        code == exit::AS_DECLARED,
        "cargo xtask compare exited {code}: see the table above"
    );
    // Every declared scenario has its row, no more: the table is read back
    // from the Markdown file, the declarations from the validator itself.
    let programs = pipeline::programs()?;
    let declared = report::declared(&programs.validator, opts.filter.as_deref(), None, false)?;
    let md = std::fs::read_to_string(paths::results().join("compare.md"))?;
    let rows = table_rows(&md);
    ensure!(
        rows.len() == declared.len(),
        "compare.md has {} rows, `validator --list` declares {} scenarios",
        rows.len(),
        declared.len()
    );
    for d in &declared {
        ensure!(
            rows.iter().any(|r| r.starts_with(&format!("| {} |", d.id))),
            "no row for {} in compare.md",
            d.id
        );
    }
    ensure!(
        rows.iter().all(|r| r.ends_with("| as expected |")),
        "a row is not as expected although compare exited 0"
    );
    Ok(())
}

/// The body rows of the Markdown table (after the `|---|` line).
fn table_rows(md: &str) -> Vec<&str> {
    md.lines()
        .skip_while(|l| !l.starts_with("|---"))
        .skip(1)
        .take_while(|l| l.starts_with("| "))
        .collect()
}

/// The reduced form CI can afford: checkpatch and the selftests in both
/// kernels. Every prefix and config-matrix build (13 more kernel builds,
/// about 40 minutes on 2 cores) is `cargo xtask check-series` on its own;
/// its latest full result is in docs/benchmarks.md.
fn check_series_quality(opts: &RunOpts) -> Result<()> {
    let code = run_xtask(&["check-series", "--only", "checkpatch,selftests"], opts)?;
    ensure!(
        code == 0,
        "cargo xtask check-series exited {code}: see the table above"
    );
    Ok(())
}

/// A second `compare`, as a child like the first: both kernels come from
/// the cache (the reports say so) and no build output changed.
fn check_cached(opts: &RunOpts) -> Result<()> {
    let ws = Workspace::open(&opts.settings())?;
    let stamps: Vec<PathBuf> = Variant::BOTH
        .iter()
        .flat_map(|v| {
            let build = ws.layout.build(*v);
            [build.join(".xtask-build-key"), build.join("vmlinux")]
        })
        .collect();
    drop(ws);
    let before = mtimes(&stamps)?;
    let code = run_xtask(&["compare"], opts)?;
    ensure!(
        code == exit::AS_DECLARED,
        "the second compare exited {code}"
    );
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        paths::results().join("compare.json"),
    )?)?;
    for variant in Variant::BOTH {
        let kernel = &json[variant.name()]["kernel"];
        ensure!(
            kernel["cached"] == true,
            "the second compare rebuilt the {} kernel (report: {kernel})",
            variant.name()
        );
    }
    ensure!(
        mtimes(&stamps)? == before,
        "a build stamp or vmlinux changed during the second compare"
    );
    Ok(())
}

fn mtimes(files: &[PathBuf]) -> Result<Vec<std::time::SystemTime>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .and_then(|m| m.modified())
                .with_context(|| format!("reading {}", f.display()))
        })
        .collect()
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

/// `cargo xtask bundle`, unpacked in an empty folder and replayed by its
/// run.sh with PATH reduced to bash, coreutils and QEMU: the table the
/// bundle was made with, exit 0; then the vanilla vmlinux in the patched
/// slot: exit 1 naming the results that differ.
fn check_bundle_replays(opts: &RunOpts) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let archive = dir.path().join("bundle.tar.gz");
    let code = run_xtask(&["bundle", "-o", &archive.to_string_lossy()], opts)?;
    ensure!(code == 0, "cargo xtask bundle exited {code}: see above");
    // A second bundle of the same inputs reuses that run: the same bytes.
    let again = dir.path().join("again.tar.gz");
    let code = run_xtask(&["bundle", "-o", &again.to_string_lossy()], opts)?;
    ensure!(code == 0, "the second cargo xtask bundle exited {code}");
    ensure!(
        std::fs::read(&archive)? == std::fs::read(&again)?,
        "two `cargo xtask bundle` runs on the same inputs gave different archives"
    );
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked)?;
    Cmd::new("tar")
        .arg("xzf")
        .arg(&archive)
        .dir(&unpacked)
        .read()?;
    let top = std::fs::read_dir(&unpacked)?
        .next()
        .context("the bundle is empty")??
        .path();
    repack_gives_the_same_bytes(&archive, &top, dir.path())?;
    let path = system_tools_only(dir.path())?;
    let replay = |what: &str| -> Result<std::process::Output> {
        Cmd::new(top.join("run.sh"))
            .args(["--accel", &opts.accel.name()])
            .env("PATH", &path)
            .output()
            .with_context(|| format!("replaying the bundle {what}"))
    };
    let out = replay("as made")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let table = std::fs::read_to_string(top.join("table.txt"))?;
    ensure!(
        out.status.code() == Some(0) && stdout.contains(&table),
        "run.sh did not reproduce the table ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::copy(top.join("vanilla/vmlinux"), top.join("patched/vmlinux"))?;
    let out = replay("with the vanilla kernel in the patched slot")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.code() == Some(1)
            && stdout.contains("result(s) differ from the bundled run:")
            && stdout.contains("  patched  pass "),
        "a swapped kernel was not caught ({}):\n{stdout}",
        out.status
    );
    Ok(())
}

/// The unpacked files (other mtimes, the umask's modes) packed again must
/// give the archive `bundle` wrote, byte for byte: the same inputs, the
/// same bundle.
fn repack_gives_the_same_bytes(archive: &Path, top: &Path, scratch: &Path) -> Result<()> {
    let mut items = Vec::new();
    collect_files(top, top, &mut items)?;
    let again = scratch.join("again.tar.gz");
    let name = top
        .file_name()
        .context("no bundle folder")?
        .to_string_lossy();
    archive::write(&items, &scratch.join("stage"), &name, &again)?;
    ensure!(
        std::fs::read(archive)? == std::fs::read(&again)?,
        "{} packed again differs from the bundle {}",
        top.display(),
        archive.display()
    );
    Ok(())
}

fn collect_files(root: &Path, dir: &Path, items: &mut Vec<Item>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, items)?;
        } else {
            let dest = path.strip_prefix(root)?.to_string_lossy().into_owned();
            items.push(Item::copy(dest, path));
        }
    }
    Ok(())
}

/// A folder of links to bash, every coreutils program and QEMU: what a
/// machine with nothing else offers run.sh.
fn system_tools_only(dir: &Path) -> Result<PathBuf> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let files = Cmd::new("dpkg-query").args(["-L", "coreutils"]).read()?;
    let qemu = Qemu::find()?;
    let qemu_path = Cmd::new("bash")
        .args(["-c", "command -v \"$0\""])
        .arg(&qemu.path)
        .read()?;
    let tools = files
        .lines()
        .filter(|l| l.starts_with("/usr/bin/") || l.starts_with("/bin/"))
        .chain(["/bin/bash", qemu_path.trim()]);
    for tool in tools {
        let tool = Path::new(tool);
        let link = bin.join(tool.file_name().context("a tool without a name")?);
        if tool.is_file() && !link.exists() {
            std::os::unix::fs::symlink(tool, &link)?;
        }
    }
    ensure!(!bin.join("grep").exists(), "grep is not coreutils");
    Ok(bin)
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

/// The series plus the test-only patch of xtask/testdata/stress-fault/,
/// booted with a fixed seed: the stress run must name the broken
/// invariant, the seed and the step (docs/stress.md).
fn check_stress_catches_a_fault(opts: &RunOpts) -> Result<()> {
    let ws = Workspace::open(&opts.settings())?;
    let dir = tempfile::tempdir()?;
    let faulty = dir.path().join("series-dir");
    std::fs::create_dir(&faulty)?;
    let mut list = String::new();
    for p in &ws.series.patches {
        std::fs::write(faulty.join(&p.name), &p.contents)?;
        list.push_str(&format!("{}\n", p.name));
    }
    let testdata = paths::root().join("xtask/testdata/stress-fault");
    for entry in
        std::fs::read_dir(&testdata).with_context(|| format!("reading {}", testdata.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .to_string();
        std::fs::copy(&path, faulty.join(&name))?;
        list.push_str(&format!("{name}\n"));
    }
    std::fs::write(faulty.join("series"), list)?;
    drop(ws);
    let run_opts = RunOpts {
        series: None,
        filter: None,
        ..opts.clone()
    };
    let faulty_arg = faulty.display().to_string();
    let args = [
        "run",
        "--variant",
        "patched",
        "--series",
        &faulty_arg,
        "--filter",
        "stress_compat_mode",
        "--stress",
        "30s",
        "--seed",
        "1",
    ];
    let code = xtask(&args, &run_opts)?.run()?.code();
    ensure!(
        code == Some(1),
        "the run of the broken kernel exited {code:?}, not 1"
    );
    let report = std::fs::read_to_string(paths::results().join("patched/report.json"))?;
    let report: serde_json::Value = serde_json::from_str(&report)?;
    let diagnostics = report["ktap"]["results"]
        .as_array()
        .and_then(|r| r.iter().find(|t| t["id"] == "stress_compat_mode"))
        .map(|t| t["diagnostics"].to_string())
        .context("no stress_compat_mode result in the report")?;
    for wanted in ["INVARIANT BROKEN: vdso_image_whole", "--seed 0x1", "step "] {
        ensure!(
            diagnostics.contains(wanted),
            "the stress run did not print `{wanted}`: {diagnostics}"
        );
    }
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
    let log = hang.with_extension("console.log");
    ensure!(
        boot.ending == Ending::TimedOut,
        "hung guest ended as {:?}",
        boot.ending
    );
    ensure!(
        took < timeout + Duration::from_secs(10),
        "hang reported after {took:?}"
    );
    let problems =
        report::run_problems(&boot, &ktap, timeout.as_secs(), &Allowlist::default(), &log);
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
    let log = panic.with_extension("console.log");
    ensure!(took < timeout, "panic reported after {took:?}");
    let problems =
        report::run_problems(&boot, &ktap, timeout.as_secs(), &Allowlist::default(), &log);
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
        status.code() == Some(exit::INTERRUPTED),
        "xtask ended with {status} after SIGINT, not 130"
    );
    std::thread::sleep(Duration::from_millis(500));
    ensure!(!alive(qemu), "QEMU (pid {qemu}) survived the interrupt");
    Ok(())
}

/// `xtask build --kernel-src TREE` (the imported vanilla tree, copied as a
/// developer's tree) interrupted once make runs: exit 130, and no process
/// left that works in the tree's build folders.
fn check_interrupt_kernel_src(opts: &RunOpts) -> Result<()> {
    let ws = Workspace::open(&opts.settings())?;
    let tree = match &opts.source.kernel_src {
        Some(tree) => tree.clone(),
        None => ws.layout.src(Variant::Vanilla),
    };
    drop(ws);
    let layout = Layout::new(&Provider::new(Some(&tree), None)?);
    // A fresh build folder, so that make has work to do when interrupted.
    let _ = std::fs::remove_dir_all(layout.build(Variant::Vanilla));
    let exe = std::env::current_exe().context("finding this xtask's executable")?;
    let cmd = Cmd::new(exe)
        .args(["build", "--variant", "vanilla", "--kernel-src"])
        .arg(&tree);
    let child = cmd.spawn_silent().context("starting xtask build")?;
    let xtask = child.pid() as i32;
    let deadline = Instant::now() + Duration::from_secs(600);
    while children_named(xtask, "make").is_empty() {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            child.kill();
            bail!("xtask build --kernel-src never started make");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(xtask),
        nix::sys::signal::Signal::SIGINT,
    )?;
    let status = child.wait(&cmd)?;
    ensure!(
        status.code() == Some(exit::INTERRUPTED),
        "xtask build --kernel-src ended with {status} after SIGINT, not 130"
    );
    std::thread::sleep(Duration::from_millis(500));
    let needle = layout.dir.to_string_lossy().into_owned();
    let left = processes_mentioning(&needle)?;
    ensure!(
        left.is_empty(),
        "processes still work in {needle}: {left:?}"
    );
    Ok(())
}

/// Pids whose command line or working directory mentions `needle`.
fn processes_mentioning(needle: &str) -> Result<Vec<i32>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let path = entry?.path();
        let Some(pid) = path
            .file_name()
            .and_then(|n| n.to_str()?.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        let cwd = std::fs::read_link(path.join("cwd")).unwrap_or_default();
        if (String::from_utf8_lossy(&cmdline).contains(needle)
            || cwd.to_string_lossy().contains(needle))
            && alive(pid)
        {
            found.push(pid);
        }
    }
    Ok(found)
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
        extra_args: Vec::new(),
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
    fn table_rows_are_the_body_of_the_markdown_table() {
        let md = "Linux 6.12\n| scenario | v | verdict |\n|---|---|---|\n| a | pass | as expected |\n| b | (none) | UNEXPECTED |\n\ntext | x\n";
        assert_eq!(
            table_rows(md),
            ["| a | pass | as expected |", "| b | (none) | UNEXPECTED |"]
        );
        assert!(table_rows("no table").is_empty());
    }

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
