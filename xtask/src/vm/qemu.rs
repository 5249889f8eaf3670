//! QEMU itself: where it is, which version, and the command line of a guest.

use crate::host::process::Cmd;
use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a boot really ran with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ValueEnum)]
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

/// How long a KVM guest may stay silent before we call KVM unusable. A
/// working KVM guest prints its first line well under a second.
pub const KVM_SILENCE_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
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
}

impl Guest<'_> {
    /// The QEMU command line, without the serial console's wiring.
    pub fn command(&self, accel: Accelerator) -> Cmd {
        Cmd::new(&self.qemu.path)
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
            ])
            .args(["-machine", "pc", "-m", "256M", "-smp", "1"])
            .args(["-accel", &accel.name()])
            .args(["-cpu", self.cpu(accel)])
            .arg("-kernel")
            .arg(self.kernel)
            .arg("-initrd")
            .arg(self.initrd)
            .arg("-append")
            .arg(format!("console=ttyS0 panic=-1 oops=panic {}", self.append).trim())
    }

    /// The `-cpu` model for `accel` on this QEMU.
    pub fn cpu(&self, accel: Accelerator) -> &'static str {
        match accel {
            Accelerator::Kvm => "host",
            Accelerator::Tcg if self.qemu.needs_smap_workaround() => "max,-smap",
            Accelerator::Tcg => "max",
        }
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
    fn tcg_on_old_qemu_gets_minus_smap() {
        let qemu = Qemu {
            path: "q".into(),
            version: (7, 2, 0),
            version_text: String::new(),
        };
        let guest = Guest {
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
