//! QEMU itself: where it is, which version, and the command line of a guest.

use crate::host::process::Cmd;
use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a boot really ran with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    Kvm,
    Tcg,
}

impl Accelerator {
    /// QEMU's name for it (`-accel kvm`).
    pub fn name(self) -> String {
        self.to_possible_value()
            .expect("no value is skipped")
            .get_name()
            .to_string()
    }
}

/// How long a KVM guest's kernel may take to print its first line before
/// KVM is called unusable. A working KVM guest prints `Linux version` well
/// under a second; the margin is for a loaded, shared host (a false verdict
/// costs only speed: the boot is redone under TCG).
pub const KVM_FIRST_LINE_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Qemu {
    pub path: PathBuf,
    pub version: (u32, u32, u32),
    pub version_text: String,
}

impl Qemu {
    /// `$QEMU` if set, else qemu-system-x86_64 from PATH.
    pub fn find() -> Result<Qemu> {
        let path = std::env::var_os("QEMU")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"));
        let text = Cmd::new(&path).arg("--version").read().with_context(|| {
            format!(
                "cannot run {} (install qemu-system-x86, or set QEMU=/path/to/qemu-system-x86_64)",
                path.display()
            )
        })?;
        let first = text.lines().next().unwrap_or_default().to_string();
        let version = parse_version(&first)
            .with_context(|| format!("cannot read a version from `{first}`"))?;
        Ok(Qemu {
            path,
            version,
            version_text: first,
        })
    }

    /// QEMU before 9.0 performs the stack accesses of a far return that
    /// changes CS bitness with supervisor rights under TCG: with SMAP the
    /// guest oopses. See ../shared/notes and docs/pipeline.md.
    pub fn needs_smap_workaround(&self) -> bool {
        self.version.0 < 9
    }
}

fn parse_version(line: &str) -> Option<(u32, u32, u32)> {
    let rest = line.split("version ").nth(1)?;
    let word = rest.split_whitespace().next()?;
    let mut parts = word.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// What to boot; the accelerator is chosen per boot (see `accel::run_with_fallback`).
pub struct Guest<'a> {
    pub qemu: &'a Qemu,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub append: String,
    /// More QEMU arguments, after the kernel's (e.g. a TCG plugin).
    pub extra_args: Vec<String>,
}

/// The arguments of every guest before its accelerator: no default
/// devices or user config, no display, exit instead of rebooting.
pub const MACHINE_ARGS: [&str; 11] = [
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    "-machine",
    "pc",
    "-m",
    "256M",
    "-smp",
    "1",
];

/// `-accel` and `-cpu` for `accel`, on a QEMU that needs the SMAP
/// workaround (before 9.0) or not.
pub fn accel_args(accel: Accelerator, smap_workaround: bool) -> [String; 4] {
    let cpu = match accel {
        Accelerator::Kvm => "host",
        Accelerator::Tcg if smap_workaround => "max,-smap",
        Accelerator::Tcg => "max",
    };
    ["-accel".into(), accel.name(), "-cpu".into(), cpu.into()]
}

/// The kernel command line: the serial console, and a panic or oops ends
/// the guest (with -no-reboot, QEMU exits); then `extra`.
/// The guest kernel's command line. `loglevel=7` comes last, after the
/// caller's words, so that nothing (a `quiet`) hides the KERN_WARNING
/// lines of a splat from the console the harness reads.
pub fn kernel_cmdline(extra: &str) -> String {
    let words = format!("console=ttyS0 panic=-1 oops=panic {extra} loglevel=7");
    words.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Guest<'_> {
    /// The QEMU command line, without the serial console's wiring.
    pub fn command(&self, accel: Accelerator) -> Cmd {
        Cmd::new(&self.qemu.path)
            .args(MACHINE_ARGS)
            .args(accel_args(accel, self.qemu.needs_smap_workaround()))
            .arg("-kernel")
            .arg(self.kernel)
            .arg("-initrd")
            .arg(self.initrd)
            .arg("-append")
            .arg(kernel_cmdline(&self.append))
            .args(&self.extra_args)
    }

    /// The `-cpu` model for `accel` on this QEMU.
    pub fn cpu(&self, accel: Accelerator) -> String {
        accel_args(accel, self.qemu.needs_smap_workaround())[3].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_qemu_versions() {
        let v = parse_version("QEMU emulator version 7.2.18 (Debian 1:7.2+dfsg-7+deb12u18+b3)");
        assert_eq!(v, Some((7, 2, 18)));
        assert_eq!(
            parse_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)"),
            Some((10, 0, 2))
        );
        assert_eq!(parse_version("QEMU emulator version 9.1"), Some((9, 1, 0)));
        assert_eq!(parse_version("something else"), None);
    }

    #[test]
    fn smap_workaround_only_before_qemu_9() {
        let q = |v| Qemu {
            path: "q".into(),
            version: v,
            version_text: String::new(),
        };
        assert!(q((7, 2, 18)).needs_smap_workaround());
        assert!(q((8, 2, 0)).needs_smap_workaround());
        assert!(!q((9, 0, 0)).needs_smap_workaround());
        assert!(!q((10, 0, 2)).needs_smap_workaround());
    }

    #[test]
    fn the_console_shows_warnings_whatever_the_caller_appends() {
        assert_eq!(
            kernel_cmdline(""),
            "console=ttyS0 panic=-1 oops=panic loglevel=7"
        );
        // KERN_WARNING is 4: shown when the console loglevel is above 4.
        let line = kernel_cmdline("quiet validator.bench");
        assert!(line.ends_with("quiet validator.bench loglevel=7"), "{line}");
    }

    #[test]
    fn tcg_on_old_qemu_gets_minus_smap() {
        let qemu = Qemu {
            path: "q".into(),
            version: (7, 2, 0),
            version_text: String::new(),
        };
        let guest = Guest {
            extra_args: Vec::new(),
            qemu: &qemu,
            kernel: Path::new("bz"),
            initrd: Path::new("rd"),
            append: "x=1".into(),
        };
        assert_eq!(guest.cpu(Accelerator::Tcg), "max,-smap");
        let line = guest.command(Accelerator::Tcg).to_string();
        assert!(
            line.contains("-no-reboot")
                && line.contains("-accel tcg -cpu max,-smap")
                && line.contains("panic=-1 oops=panic x=1"),
            "{line}"
        );
        assert_eq!(guest.cpu(Accelerator::Kvm), "host");
        assert!(guest
            .command(Accelerator::Kvm)
            .to_string()
            .contains("-accel kvm -cpu host"));
    }
}
