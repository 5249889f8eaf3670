//! End-to-end: the ways `bench --instructions` can fail to get its TCG
//! plugin built, each with a fake `apt-get` first on PATH and a target
//! directory of its own (so no header fetched earlier is found). The fake
//! plays apt's part, the rest is real: dpkg-query finds the installed
//! QEMU's source package, tar unpacks what the fake "downloaded" and gcc
//! compiles the plugin against its header. Each run must stop at the
//! plugin step (before any kernel is built) with exit 2 and an error that
//! names what failed, including apt's or gcc's own words.

use crate::flags::RunOpts;
use crate::host::process::Cmd;
use crate::results::exit;
use crate::vm::icount;
use crate::vm::qemu::Qemu;
use anyhow::{ensure, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

/// Shell that makes the private package lists apt-get update would store
/// (`$STATE`: the `Dir::State` apt was given).
const UPDATE_OK: &str = "mkdir -p \"$STATE/lists\" && \
                         : > \"$STATE/lists/mirror.invalid_debian_dists_bookworm_main_source_Sources\"";

/// Shell that "downloads" a source package into the current directory:
/// an orig tarball whose qemu-plugin.h is `$HEADER`, and a debian tarball
/// whose one patch is `$PATCH`.
const SOURCE_WITH: &str = "work=$(mktemp -d) && \
     mkdir -p \"$work/qemu-7.2/include/qemu\" \"$work/debian/patches\" && \
     printf '%s\\n' \"$HEADER\" > \"$work/qemu-7.2/include/qemu/qemu-plugin.h\" && \
     printf '%s\\n' \"$PATCH\" > \"$work/debian/patches/fake.patch\" && \
     tar -C \"$work\" -cJf qemu_7.2+dfsg.orig.tar.xz qemu-7.2 && \
     tar -C \"$work\" -cJf qemu_7.2+dfsg-7.debian.tar.xz debian && \
     rm -rf \"$work\"";

struct Mode {
    name: &'static str,
    /// Shell run for `apt-get update` and for `apt-get source`.
    update: &'static str,
    source: &'static str,
    /// What xtask's error must contain, all of them.
    said: &'static [&'static str],
}

const MODES: [Mode; 5] = [
    Mode {
        name: "apt-get update fails (no network)",
        update: "echo 'E: Failed to fetch http://mirror.invalid/debian/dists/bookworm/InRelease  \
                 Temporary failure resolving mirror.invalid' >&2; exit 100",
        source: "exit 99",
        said: &[
            "apt-get update of the private amd64 package lists failed",
            "Temporary failure resolving mirror.invalid",
        ],
    },
    Mode {
        name: "the source package is not in the mirror",
        update: UPDATE_OK,
        source: "echo \"E: Can not find version '$VERSION' of package 'qemu'\" >&2; exit 100",
        said: &[
            "cannot fetch the Debian package qemu=",
            "E: Can not find version",
        ],
    },
    Mode {
        name: "apt-get source exits 0 but downloads nothing",
        update: UPDATE_OK,
        source: "exit 0",
        said: &["want one *.debian.tar.* file in", "found []"],
    },
    Mode {
        name: "Debian's patches change qemu-plugin.h",
        update: UPDATE_OK,
        source: "HEADER='/* fake */'; PATCH='--- a/include/qemu/qemu-plugin.h'; SOURCE_WITH",
        said: &[
            "Debian's patches of qemu=",
            "change include/qemu/qemu-plugin.h",
        ],
    },
    Mode {
        name: "the plugin does not compile against the header",
        update: UPDATE_OK,
        source: "HEADER='#error this qemu-plugin.h is a fake'; PATCH='no change'; SOURCE_WITH",
        said: &[
            "building the TCG plugin qemu/plugins/icount.c failed",
            "this qemu-plugin.h is a fake",
        ],
    },
];

pub fn check(_opts: &RunOpts) -> Result<()> {
    // The fakes stand in for apt only: the installed QEMU must be Debian's
    // (the apt cases begin at its source package), or every case would
    // fail on that instead, saying nothing about apt.
    icount::qemu_source(&Qemu::find()?)
        .context("this check needs Debian's qemu-system-x86 installed")?;
    for mode in &MODES {
        check_mode(mode)?;
    }
    check_qemu_not_from_debian()
}

/// A QEMU of no Debian package (QEMU=..., e.g. one built from source) has
/// no source package to take the header from: refused, saying so, before
/// apt is asked anything (the fake apt-get would fail the run otherwise).
fn check_qemu_not_from_debian() -> Result<()> {
    eprintln!("--- QEMU=a QEMU of no Debian package");
    let dir = tempfile::tempdir()?;
    let qemu = dir.path().join("qemu-system-x86_64");
    // The loader's name in the file, as in a QEMU built with plugins.
    let script = "#!/bin/sh
# qemu_plugin_install
exec qemu-system-x86_64 \"$@\"\n";
    std::fs::write(&qemu, script)?;
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755))?;
    let update = "echo 'fake apt-get: must not run' >&2; exit 97";
    let out = bench_instructions(dir.path(), update, update, Some(&qemu))?;
    expect_error(
        &out,
        "QEMU is not Debian's",
        &[
            "belongs to no Debian package",
            "a QEMU that is not Debian's (QEMU=...) is not supported",
        ],
    )
}

fn check_mode(mode: &Mode) -> Result<()> {
    eprintln!("--- fake apt-get: {}", mode.name);
    let dir = tempfile::tempdir()?;
    let out = bench_instructions(dir.path(), mode.update, mode.source, None)?;
    expect_error(&out, mode.name, mode.said)
}

/// `xtask bench --instructions` with a fake apt-get running `update` and
/// `source` first on PATH, `dir/target` as its target directory and
/// `qemu` as $QEMU if given.
fn bench_instructions(
    dir: &std::path::Path,
    update: &str,
    source: &str,
    qemu: Option<&std::path::Path>,
) -> Result<Output> {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin)?;
    let fake = bin.join("apt-get");
    let script = format!(
        "#!/bin/sh\n\
         STATE=; VERSION=\n\
         for a in \"$@\"; do case \"$a\" in Dir::State=*) STATE=${{a#Dir::State=}} ;; qemu=*) VERSION=${{a#qemu=}} ;; esac; done\n\
         case \" $* \" in\n\
         *' update '*) {} ;;\n\
         *' source '*) {} ;;\n\
         *) echo \"fake apt-get: unexpected $*\" >&2; exit 98 ;;\n\
         esac\n",
        update,
        source.replace("SOURCE_WITH", SOURCE_WITH)
    );
    std::fs::write(&fake, script)?;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let exe = std::env::current_exe().context("finding this xtask's executable")?;
    let mut cmd = Cmd::new(exe)
        .args(["bench", "--instructions", "--accel", "tcg"])
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", dir.join("target"));
    if let Some(qemu) = qemu {
        cmd = cmd.env("QEMU", qemu);
    }
    cmd.output()
}

/// Exit 2, every one of `said` in the error, and no kernel source
/// imported: the run stopped at the plugin step.
fn expect_error(out: &Output, case: &str, said: &[&str]) -> Result<()> {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.code() == Some(exit::HARNESS_ERROR),
        "bench --instructions exited {:?} (want {}) when {case}:\n{text}",
        out.status.code(),
        exit::HARNESS_ERROR,
    );
    let error = text
        .lines()
        .skip_while(|l| !l.starts_with("error: "))
        .collect::<Vec<_>>()
        .join("\n");
    for words in said {
        ensure!(
            error.contains(words),
            "the error does not say `{words}` when {case}:\n{text}"
        );
    }
    ensure!(
        !text.contains("Importing kernel source"),
        "a kernel source was imported although the plugin step failed:\n{text}"
    );
    eprintln!("    {}", error.lines().next().unwrap_or_default());
    Ok(())
}
