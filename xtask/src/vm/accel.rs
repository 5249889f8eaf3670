//! Which accelerator runs a guest: KVM only where a KVM guest really runs
//! (nested KVM opens /dev/kvm and then runs guests that never print), TCG
//! otherwise; the verdict is remembered per host boot.

use crate::host::paths;
use crate::vm::boot::{self, Boot, Ending};
use crate::vm::qemu::{Accelerator, Guest, KVM_SILENCE_DEADLINE};
use anyhow::{bail, Result};
use clap::ValueEnum;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the user asks for (`--accel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    Auto,
    Kvm,
    Tcg,
}

impl Accel {
    /// The word `--accel` takes.
    pub fn name(self) -> String {
        self.to_possible_value()
            .expect("no value is skipped")
            .get_name()
            .to_string()
    }
}

/// /dev/kvm opens read-write: necessary, not sufficient (nested KVM here
/// opens fine and then runs guests that never print).
pub fn kvm_device_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Where we remember whether KVM guests run or stay silent on this host
/// boot, so the probe is paid once per host boot, not once per run.
fn kvm_verdict_file() -> PathBuf {
    paths::target().join("kvm-verdict")
}

fn host_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default()
}

/// The verdict recorded on this host boot: Some(true) if KVM guests run.
fn kvm_verdict() -> Option<bool> {
    read_verdict(&kvm_verdict_file())
}

fn read_verdict(file: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(file).ok()?;
    let (boot, verdict) = text.rsplit_once(' ')?;
    (boot == host_boot_id().trim()).then(|| verdict == "works")
}

pub fn kvm_known_silent() -> bool {
    kvm_verdict() == Some(false)
}

fn remember_kvm(works: bool) {
    write_verdict(&kvm_verdict_file(), works);
}

fn write_verdict(file: &Path, works: bool) {
    let verdict = if works { "works" } else { "silent" };
    let _ = std::fs::write(file, format!("{} {verdict}", host_boot_id().trim()));
}

pub fn remember_kvm_silent() {
    remember_kvm(false);
}

/// The accelerator to try first for `--accel`.
pub fn first_choice(accel: Accel) -> Accelerator {
    match accel {
        Accel::Kvm => Accelerator::Kvm,
        Accel::Tcg => Accelerator::Tcg,
        Accel::Auto if kvm_device_usable() && !kvm_known_silent() => Accelerator::Kvm,
        Accel::Auto => Accelerator::Tcg,
    }
}

/// A boot and what it really ran with.
pub struct Booted {
    pub boot: Boot,
    pub accel: Accelerator,
    /// The KVM guest stayed silent and the boot was redone under TCG.
    pub fell_back_to_tcg: bool,
}

/// Boots with the first-choice accelerator; a silent KVM guest is killed,
/// remembered, and the boot is redone under TCG.
pub fn run_with_fallback(
    guest: &Guest,
    accel: Accel,
    timeout: Duration,
    console_log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<Booted> {
    // Guests booting side by side must not each pay the KVM probe: while
    // the verdict is unknown, one probes and the others wait for it.
    static PROBE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _probing = (first_choice(accel) == Accelerator::Kvm && kvm_verdict().is_none())
        .then(|| PROBE.lock().unwrap_or_else(|e| e.into_inner()));
    let chosen = first_choice(accel);
    let boot = boot::run(guest, chosen, timeout, console_log, on_line)?;
    if boot.ending != Ending::SilentKvm {
        if chosen == Accelerator::Kvm {
            remember_kvm(true);
        }
        return Ok(Booted {
            boot,
            accel: chosen,
            fell_back_to_tcg: false,
        });
    }
    if accel == Accel::Kvm {
        bail!(
            "the KVM guest printed nothing in {}s (nested KVM?); use --accel tcg",
            KVM_SILENCE_DEADLINE.as_secs()
        );
    }
    remember_kvm_silent();
    let boot = boot::run(guest, Accelerator::Tcg, timeout, console_log, on_line)?;
    Ok(Booted {
        boot,
        accel: Accelerator::Tcg,
        fell_back_to_tcg: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kvm_verdict_belongs_to_this_host_boot() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kvm-verdict");
        assert_eq!(read_verdict(&file), None);
        write_verdict(&file, false);
        assert_eq!(read_verdict(&file), Some(false));
        write_verdict(&file, true);
        assert_eq!(read_verdict(&file), Some(true));
        std::fs::write(&file, "another-boot-id silent").unwrap();
        assert_eq!(
            read_verdict(&file),
            None,
            "a verdict from an earlier host boot is ignored"
        );
    }

    #[test]
    fn words_come_from_the_value_enums() {
        assert_eq!(Accel::Auto.name(), "auto");
        assert_eq!(Accelerator::Kvm.name(), "kvm");
        assert_eq!(Accelerator::Tcg.name(), "tcg");
    }
}
