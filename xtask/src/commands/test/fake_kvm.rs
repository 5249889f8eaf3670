//! End-to-end: a host whose KVM is broken, simulated by a fake
//! `qemu-system-x86_64` put first on PATH. Under `-accel kvm` it fails in
//! one way; under `-accel tcg` it execs the real QEMU, so the table that
//! comes out is a real one. Each mode runs `compare` as a user would and
//! checks the exit code, the reason printed and the accelerator recorded.

use crate::flags::RunOpts;
use crate::host::paths;
use crate::host::process::Cmd;
use anyhow::{bail, ensure, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The scenarios these compares run: one passing everywhere, one failing
/// on vanilla with its reason. Enough for a real table, cheap to boot.
const FILTER: &str = "gate_round_trip,get_compat_reads_native";

struct Mode {
    name: &'static str,
    /// Shell run instead of QEMU for `-accel kvm` (`$REAL`: the real QEMU).
    under_kvm: &'static str,
    /// What the one-line reason must contain; None: KVM must be used.
    reason: Option<&'static str>,
}

const MODES: [Mode; 5] = [
    Mode {
        name: "exits 1 with a message",
        under_kvm: "echo 'qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied' >&2; exit 1",
        reason: Some("QEMU ended (exit code 1) before the guest kernel printed a line; QEMU said: -accel kvm: failed to initialize kvm: Permission denied"),
    },
    Mode {
        name: "aborts (SIGABRT) as QEMU 7.2 -cpu host on AMD",
        under_kvm: "echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2; kill -ABRT $$",
        reason: Some("QEMU ended (killed by SIGABRT) before the guest kernel printed a line; QEMU said: error: failed to set MSR 0x10a to 0x69"),
    },
    Mode {
        name: "prints a firmware banner then hangs",
        under_kvm: "echo 'SeaBIOS (version 1.16.2-debian-1.16.2-1)'; exec sleep 600",
        reason: Some("kernel printed no line in 10s (only firmware output: `SeaBIOS (version 1.16.2-debian-1.16.2-1)`)"),
    },
    Mode {
        name: "stays silent",
        under_kvm: "exec sleep 600",
        reason: Some("the KVM guest printed nothing in 10s"),
    },
    Mode {
        // A working but slow KVM, played by the real QEMU under TCG after
        // a pause: the harness must wait for it, not fall back.
        name: "is slow to print its first line but fine",
        under_kvm: "echo 'SeaBIOS (version 1.16.2)'; sleep 4; \
                    for a in \"$@\"; do shift; case \"$a\" in kvm) a=tcg ;; host) a=max,-smap ;; esac; \
                    set -- \"$@\" \"$a\"; done; exec \"$REAL\" \"$@\"",
        reason: None,
    },
];

pub fn check(opts: &RunOpts) -> Result<()> {
    ensure!(
        std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok(),
        "/dev/kvm cannot be opened read-write here, so `--accel auto` never tries KVM: this check cannot run"
    );
    let real = which("qemu-system-x86_64")?;
    let verdict = paths::target().join("kvm-verdict");
    let saved = std::fs::read(&verdict).ok();
    let result = MODES
        .iter()
        .try_for_each(|mode| check_mode(mode, &real, opts));
    // The host's own verdict comes back whatever happened.
    match saved {
        Some(bytes) => std::fs::write(&verdict, bytes)?,
        None => {
            let _ = std::fs::remove_file(&verdict);
        }
    }
    result
}

fn check_mode(mode: &Mode, real: &Path, opts: &RunOpts) -> Result<()> {
    eprintln!("--- fake QEMU that {}", mode.name);
    let dir = tempfile::tempdir()?;
    let fake = dir.path().join("qemu-system-x86_64");
    let script = format!(
        "#!/bin/sh\nREAL='{}'\ncase \"$*\" in\n*'-accel kvm'*) {} ;;\n*) exec \"$REAL\" \"$@\" ;;\nesac\n",
        real.display(),
        mode.under_kvm
    );
    std::fs::write(&fake, script)?;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))?;
    let _ = std::fs::remove_file(paths::target().join("kvm-verdict"));

    let out = compare_with(&fake, dir.path(), opts)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.code() == Some(0),
        "compare exited {:?} with a fake QEMU that {}:\n{text}",
        out.status.code(),
        mode.name
    );
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        paths::results().join("compare.json"),
    )?)?;
    let accel = report["vanilla"]["accelerator"]
        .as_str()
        .unwrap_or_default();
    match mode.reason {
        Some(reason) => {
            let said = text
                .lines()
                .find(|l| l.contains("KVM not used:"))
                .with_context(|| format!("no `KVM not used:` line:\n{text}"))?;
            ensure!(
                said.contains(reason),
                "the reason is not `{reason}`: {said}"
            );
            ensure!(accel == "tcg", "the report says {accel}, not tcg");
            eprintln!("    {}", said.trim());
        }
        None => {
            ensure!(
                !text.contains("KVM not used"),
                "fell back although KVM worked:\n{text}"
            );
            ensure!(accel == "kvm", "the report says {accel}, not kvm");
        }
    }
    Ok(())
}

/// `xtask compare` with the fake QEMU first on PATH (and as $QEMU, which
/// the harness prefers), a small filter, everything else as given.
fn compare_with(fake: &Path, dir: &Path, opts: &RunOpts) -> Result<std::process::Output> {
    let exe = std::env::current_exe().context("finding this xtask's executable")?;
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Cmd::new(exe)
        .args(["compare", "--accel", "auto", "--filter", FILTER])
        .arg("--timeout")
        .arg(opts.timeout.to_string())
        .env("PATH", path)
        .env("QEMU", fake);
    if let Some(src) = &opts.source.kernel_src {
        cmd = cmd.arg("--kernel-src").arg(src);
    }
    if let Some(tarball) = &opts.source.kernel_tarball {
        cmd = cmd.arg("--kernel-tarball").arg(tarball);
    }
    cmd.output()
}

/// The first `name` on PATH.
fn which(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("{name} is not on PATH (install qemu-system-x86)")
}
