//! Host dependencies: each tool and file we need, and the Debian package
//! that provides it. Missing ones are installed with apt-get when we are
//! root (or have password-less sudo); otherwise the exact command is printed.

use crate::host::process::Cmd;
use anyhow::{bail, Result};
use std::path::Path;

pub const BUSYBOX: &str = "/bin/busybox";
/// Debian's criu, packed into the guest by the criu flavour only (so it is
/// not a need of every run: the flavour checks for it).
pub const CRIU: &str = "/usr/sbin/criu";

/// Something we need on the host, and the package that provides it.
#[derive(Debug, Clone)]
pub struct Need {
    pub what: &'static str,
    pub present: fn(&'static str) -> bool,
    pub package: &'static str,
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn file_exists(path: &str) -> bool {
    Path::new(path).exists()
}

fn qemu_present(_: &str) -> bool {
    std::env::var_os("QEMU").is_some() || on_path("qemu-system-x86_64")
}

const fn tool(what: &'static str, package: &'static str) -> Need {
    Need {
        what,
        present: on_path,
        package,
    }
}

pub const fn file(what: &'static str, package: &'static str) -> Need {
    Need {
        what,
        present: file_exists,
        package,
    }
}

/// Everything the pipeline needs, plus what the kernel source needs
/// (`kernel::source::Provider::needs`).
pub fn needed_for(source_needs: Vec<Need>) -> Vec<Need> {
    let mut needs = vec![
        tool("make", "make"),
        tool("gcc", "gcc"),
        tool("git", "git"),
        tool("flex", "flex"),
        tool("bison", "bison"),
        tool("bc", "bc"),
        tool("perl", "perl"),
        tool("xz", "xz-utils"),
        tool("rsync", "rsync"),
        tool("ccache", "ccache"),
        file("/usr/include/libelf.h", "libelf-dev"),
        file("/usr/include/openssl/ssl.h", "libssl-dev"),
        file("/usr/include/stdio.h", "libc6-dev"),
        file(BUSYBOX, "busybox-static"),
        Need {
            what: "qemu-system-x86_64",
            present: qemu_present,
            package: "qemu-system-x86",
        },
    ];
    needs.extend(source_needs);
    needs
}

/// Debian's criu, which the criu flavour packs into its guest.
pub fn needed_for_criu() -> Vec<Need> {
    vec![file(CRIU, "criu")]
}

/// check-series: the x86 selftests also build 32-bit thunks (ldt_gdt,
/// ptrace_syscall), and
/// checkpatch's SPDX check runs scripts/spdxcheck.py with Debian's python3,
/// which needs ply and GitPython.
pub fn needed_for_selftests() -> Vec<Need> {
    vec![
        file("/usr/lib32/crt1.o", "gcc-multilib"),
        file("/usr/bin/python3", "python3"),
        file("/usr/lib/python3/dist-packages/ply", "python3-ply"),
        file("/usr/lib/python3/dist-packages/git", "python3-git"),
    ]
}

pub fn missing(needs: &[Need]) -> Vec<&Need> {
    needs.iter().filter(|n| !(n.present)(n.what)).collect()
}

/// Installs what is missing, or explains how to.
pub fn ensure(needs: &[Need]) -> Result<()> {
    let missing = missing(needs);
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|n| n.package).collect();
    packages.sort();
    packages.dedup();
    let what: Vec<&str> = missing.iter().map(|n| n.what).collect();
    let command = format!(
        "apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    let root = nix::unistd::geteuid().is_root();
    let sudo = !root && Cmd::new("sudo").args(["-n", "true"]).succeeds();
    if !root && !sudo {
        bail!(
            "missing on this host: {}.\nInstall them with:\n  sudo apt-get update && sudo {command}",
            what.join(", ")
        );
    }
    eprintln!(
        "installing missing host packages ({}) for: {}",
        packages.join(" "),
        what.join(", ")
    );
    let apt = |args: &[&str]| {
        let apt_get = match sudo {
            true => Cmd::new("sudo").arg("apt-get"),
            false => Cmd::new("apt-get"),
        };
        let apt_get = apt_get.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        apt_get.run().is_ok_and(|s| s.success())
    };
    let mut install: Vec<&str> = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&packages);
    // A fresh machine may have empty package lists: update once and retry.
    let installed = apt(&install) || (apt(&["update"]) && apt(&install));
    if !installed {
        bail!(
            "apt-get could not install {}; run `{command}` by hand and retry",
            packages.join(" ")
        );
    }
    let still: Vec<&str> = self::missing(needs).iter().map(|n| n.what).collect();
    if !still.is_empty() {
        bail!(
            "still missing after installing packages: {}",
            still.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_needs_are_added() {
        let extra = file("/usr/src/x.tar.xz", "x-source");
        let needs = needed_for(vec![extra]);
        assert!(needs.iter().any(|n| n.package == "x-source"));
        assert!(needs.iter().any(|n| n.package == "busybox-static"));
    }

    #[test]
    fn presence_checks_look_at_the_host() {
        assert!(on_path("sh"));
        assert!(!on_path("surely-no-such-program-here"));
        let fake = Need {
            what: "/no/such/file",
            present: file_exists,
            package: "p",
        };
        let real = Need {
            what: "/bin/sh",
            present: file_exists,
            package: "q",
        };
        let needs = [fake.clone(), real];
        let names: Vec<&str> = missing(&needs).iter().map(|n| n.what).collect();
        assert_eq!(names, [fake.what]);
    }
}
