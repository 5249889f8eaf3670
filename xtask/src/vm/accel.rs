//! Which accelerator runs a guest. KVM counts as working only once a KVM
//! guest's kernel has printed its first line: opening /dev/kvm is not
//! enough (nested KVM runs guests that never print, some hosts show only
//! the firmware banner, QEMU 7.2 `-cpu host` aborts at once on AMD). A KVM
//! failure is named in one line and the boot is redone under TCG; the
//! verdict is remembered per host boot, and only from a guest that really
//! ran or really failed.

use crate::host::paths;
use crate::vm::boot::{self, Boot, Ending, Limits};
use crate::vm::qemu::{Accelerator, Guest, KVM_FIRST_LINE_DEADLINE};
use anyhow::{bail, Context, Result};
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

/// What is known about KVM on this host boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmVerdict {
    /// A KVM guest's kernel printed its first line.
    Works,
    /// Why KVM is not used: QEMU's message, or what the guest did not do.
    Fails(String),
}

/// Where and how KVM is tried: the real host's, or a test's.
#[derive(Debug, Clone)]
pub struct KvmProbe {
    /// Opened read-write to see whether KVM may be tried at all.
    pub device: PathBuf,
    /// The remembered verdict, per host boot.
    pub verdict_file: PathBuf,
    /// How long the guest kernel may take to print its first line.
    pub deadline: Duration,
}

impl KvmProbe {
    pub fn host() -> KvmProbe {
        KvmProbe {
            device: "/dev/kvm".into(),
            verdict_file: paths::target().join("kvm-verdict"),
            deadline: KVM_FIRST_LINE_DEADLINE,
        }
    }

    /// The device opens read-write: necessary, not sufficient.
    pub fn device_usable(&self) -> bool {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.device)
            .is_ok()
    }

    /// The verdict recorded on this host boot, if any.
    pub fn verdict(&self) -> Option<KvmVerdict> {
        let text = std::fs::read_to_string(&self.verdict_file).ok()?;
        parse_verdict(&text, host_boot_id().trim())
    }

    fn remember(&self, verdict: &KvmVerdict) {
        // Losing the verdict costs one more probe: not worth failing a run.
        let _ = std::fs::write(
            &self.verdict_file,
            format_verdict(verdict, host_boot_id().trim()),
        );
    }

    /// Why KVM will not be tried for `--accel auto`, if it will not.
    pub fn why_not(&self) -> Option<String> {
        if !self.device_usable() {
            return Some(format!(
                "{} cannot be opened read-write",
                self.device.display()
            ));
        }
        match self.verdict() {
            Some(KvmVerdict::Fails(reason)) => Some(reason),
            _ => None,
        }
    }

    /// The accelerator to try first for `--accel`.
    pub fn first_choice(&self, accel: Accel) -> Accelerator {
        match accel {
            Accel::Kvm => Accelerator::Kvm,
            Accel::Tcg => Accelerator::Tcg,
            Accel::Auto if self.why_not().is_none() => Accelerator::Kvm,
            Accel::Auto => Accelerator::Tcg,
        }
    }
}

fn host_boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default()
}

/// `<boot id> works` or `<boot id> fails <reason>`.
fn format_verdict(verdict: &KvmVerdict, boot_id: &str) -> String {
    match verdict {
        KvmVerdict::Works => format!("{boot_id} works\n"),
        KvmVerdict::Fails(reason) => format!("{boot_id} fails {reason}\n"),
    }
}

fn parse_verdict(text: &str, boot_id: &str) -> Option<KvmVerdict> {
    let (boot, rest) = text.trim_end().split_once(' ')?;
    if boot != boot_id {
        return None;
    }
    match rest.split_once(' ').unwrap_or((rest, "")) {
        ("works", "") => Some(KvmVerdict::Works),
        ("fails", reason) if !reason.is_empty() => Some(KvmVerdict::Fails(reason.into())),
        _ => None,
    }
}

/// The accelerator to try first for `--accel` on this host.
pub fn first_choice(accel: Accel) -> Accelerator {
    KvmProbe::host().first_choice(accel)
}

/// Why KVM was not what the guest ran with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoKvm {
    /// This boot tried KVM and it failed: the reason, then TCG.
    FailedNow(String),
    /// KVM was not tried: /dev/kvm, or a verdict remembered on this host boot.
    NotTried(String),
}

/// A boot and what it really ran with.
pub struct Booted {
    pub boot: Boot,
    pub accel: Accelerator,
    /// Set when the guest ran under TCG although `--accel auto` prefers KVM.
    pub no_kvm: Option<NoKvm>,
}

/// Boots with the first-choice accelerator; a KVM failure is remembered,
/// and the boot is redone under TCG.
pub fn run_with_fallback(
    guest: &Guest,
    accel: Accel,
    timeout: Duration,
    console_log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<Booted> {
    run_with_probe(
        &KvmProbe::host(),
        guest,
        accel,
        timeout,
        console_log,
        on_line,
    )
}

/// [`run_with_fallback`] with the given probe (tests use their own).
pub fn run_with_probe(
    probe: &KvmProbe,
    guest: &Guest,
    accel: Accel,
    timeout: Duration,
    console_log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<Booted> {
    // Guests booting side by side must not each pay the KVM probe: while
    // the verdict is unknown, one probes and the others wait for it.
    static PROBE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _probing = (probe.first_choice(accel) == Accelerator::Kvm && probe.verdict().is_none())
        .then(|| PROBE.lock().unwrap_or_else(|e| e.into_inner()));
    let limits = Limits {
        timeout,
        kvm_first_line: probe.deadline,
    };
    let chosen = probe.first_choice(accel);
    if chosen == Accelerator::Tcg {
        let boot = boot::run(guest, Accelerator::Tcg, limits, console_log, on_line)?;
        let no_kvm =
            (accel == Accel::Auto).then(|| NoKvm::NotTried(probe.why_not().unwrap_or_default()));
        return Ok(Booted {
            boot,
            accel: chosen,
            no_kvm,
        });
    }
    let boot = boot::run(guest, Accelerator::Kvm, limits, console_log, on_line)?;
    let reason = match &boot.ending {
        Ending::KvmFailed { reason } => reason.clone(),
        _ => {
            remember_what_ran(probe, &boot);
            return Ok(Booted {
                boot,
                accel: chosen,
                no_kvm: None,
            });
        }
    };
    probe.remember(&KvmVerdict::Fails(reason.clone()));
    if accel == Accel::Kvm {
        bail!("KVM does not run this guest: {reason}; use --accel tcg (or auto)");
    }
    let boot = boot::run(guest, Accelerator::Tcg, limits, console_log, on_line)?;
    Ok(Booted {
        boot,
        accel: Accelerator::Tcg,
        no_kvm: Some(NoKvm::FailedNow(reason)),
    })
}

/// A KVM boot that did not fail KVM's test: "works" only if the guest
/// kernel printed (the boot ends KvmFailed otherwise; this is a guard).
fn remember_what_ran(probe: &KvmProbe, boot: &Boot) {
    if boot.seconds_to_kernel.is_some() {
        probe.remember(&KvmVerdict::Works);
    }
}

/// `doctor`: one tiny KVM boot of `kernel` (an empty initramfs; the guest
/// only has to print its first line) and the verdict it gives, remembered.
pub fn probe_kvm(probe: &KvmProbe, guest: &Guest, console_log: &Path) -> Result<KvmVerdict> {
    if let Some(reason) = (!probe.device_usable())
        .then(|| format!("{} cannot be opened read-write", probe.device.display()))
    {
        return Ok(KvmVerdict::Fails(reason));
    }
    let limits = Limits {
        timeout: probe.deadline + Duration::from_secs(1),
        kvm_first_line: probe.deadline,
    };
    let boot = boot::run(guest, Accelerator::Kvm, limits, console_log, &mut |_| {})
        .context("the KVM probe boot")?;
    let verdict = match boot.ending {
        Ending::KvmFailed { reason } => KvmVerdict::Fails(reason),
        _ if boot.seconds_to_kernel.is_some() => KvmVerdict::Works,
        _ => bail!("the KVM probe ended without a verdict: {:?}", boot.ending),
    };
    probe.remember(&verdict);
    Ok(verdict)
}

/// An empty newc initramfs (only the trailer): the probe's guest needs none.
pub fn empty_initramfs(path: &Path) -> Result<()> {
    let name = "TRAILER!!!\0";
    let mut header = format!("070701{}", "00000000".repeat(11));
    header.push_str(&format!("{:08X}00000000", name.len()));
    let mut bytes = header.into_bytes();
    bytes.extend_from_slice(name.as_bytes());
    while bytes.len() % 4 != 0 {
        bytes.push(0);
    }
    bytes.resize(512, 0);
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::qemu::Qemu;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    /// What the fake QEMU does under `-accel tcg`: a guest kernel that
    /// boots, runs one scenario and powers off.
    const TCG_GUEST: &str = "echo 'Linux version 6.12.117+ (fake)'; echo 'KTAP version 1'; \
                             echo '1..1'; echo 'ok 1 fake_scenario'; exit 0";

    struct Fake {
        dir: tempfile::TempDir,
        qemu: Qemu,
        probe: KvmProbe,
    }

    /// A fake qemu-system-x86_64 running `under_kvm` for `-accel kvm`.
    fn fake(under_kvm: &str, deadline: Duration) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qemu-system-x86_64");
        let script = format!(
            "#!/bin/sh\ncase \"$*\" in\n*'-accel kvm'*) {under_kvm} ;;\n*) {TCG_GUEST} ;;\nesac\n"
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let device = dir.path().join("kvm");
        std::fs::write(&device, "").unwrap();
        let probe = KvmProbe {
            device,
            verdict_file: dir.path().join("kvm-verdict"),
            deadline,
        };
        let qemu = Qemu {
            path,
            version: (9, 0, 0),
            version_text: "QEMU emulator version 9.0.0 (fake)".into(),
        };
        Fake { dir, qemu, probe }
    }

    impl Fake {
        fn boot(&self, accel: Accel) -> Result<Booted> {
            let guest = Guest {
                extra_args: Vec::new(),
                qemu: &self.qemu,
                kernel: Path::new("vmlinux"),
                initrd: Path::new("initrd"),
                append: String::new(),
            };
            let log = self.dir.path().join("console.log");
            run_with_probe(
                &self.probe,
                &guest,
                accel,
                Duration::from_secs(60),
                &log,
                &mut |_| {},
            )
        }
    }

    /// Falls back to TCG, ends in the TCG guest's result, names the reason
    /// and remembers it; returns the reason.
    fn falls_back(under_kvm: &str, deadline: Duration) -> String {
        let fake = fake(under_kvm, deadline);
        let booted = fake.boot(Accel::Auto).unwrap();
        assert_eq!(booted.accel, Accelerator::Tcg);
        assert_eq!(booted.boot.ending, Ending::Exited { code: Some(0) });
        assert_eq!(
            booted.boot.console.last().map(String::as_str),
            Some("ok 1 fake_scenario")
        );
        let Some(NoKvm::FailedNow(reason)) = booted.no_kvm else {
            panic!("no KVM failure reported: {:?}", booted.no_kvm);
        };
        assert_eq!(
            fake.probe.verdict(),
            Some(KvmVerdict::Fails(reason.clone()))
        );
        // The next boot of this host boot does not try KVM again, and says why.
        let again = fake.boot(Accel::Auto).unwrap();
        assert_eq!(again.no_kvm, Some(NoKvm::NotTried(reason.clone())));
        reason
    }

    #[test]
    fn qemu_exiting_with_a_message_is_a_kvm_failure_with_that_message() {
        let reason = falls_back(
            "echo 'qemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied' >&2; exit 1",
            Duration::from_secs(5),
        );
        assert!(
            reason.contains("exit code 1")
                && reason
                    .contains("QEMU said: -accel kvm: failed to initialize kvm: Permission denied"),
            "{reason}"
        );
    }

    #[test]
    fn qemu_aborting_is_a_kvm_failure_naming_the_signal_and_the_msr() {
        let reason = falls_back(
            "echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2; \
             echo \"qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion \\`ret == cpu->kvm_msr_buf->nmsrs' failed.\" >&2; \
             kill -ABRT $$",
            Duration::from_secs(5),
        );
        assert!(
            reason.contains("SIGABRT") && reason.contains("error: failed to set MSR 0x10a to 0x69"),
            "{reason}"
        );
    }

    #[test]
    fn a_firmware_banner_then_nothing_is_a_kvm_failure() {
        let started = Instant::now();
        let reason = falls_back(
            "echo 'SeaBIOS (version 1.16.2-debian-1.16.2-1)'; exec sleep 600",
            Duration::from_secs(1),
        );
        assert!(
            reason.contains("kernel printed no line in 1s")
                && reason
                    .contains("only firmware output: `SeaBIOS (version 1.16.2-debian-1.16.2-1)`"),
            "{reason}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the deadline was not kept"
        );
    }

    #[test]
    fn a_silent_kvm_guest_is_a_kvm_failure() {
        let reason = falls_back("exec sleep 600", Duration::from_secs(1));
        assert_eq!(
            reason,
            "the KVM guest printed nothing in 1s (QEMU was killed)"
        );
    }

    #[test]
    fn an_error_on_stderr_stops_the_kvm_guest_before_the_deadline() {
        let started = Instant::now();
        let reason = falls_back(
            "echo 'KVM internal error. Suberror: 1' >&2; exec sleep 600",
            Duration::from_secs(30),
        );
        assert!(
            reason.contains("QEMU reported an error")
                && reason.contains("KVM internal error. Suberror: 1"),
            "{reason}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_slow_but_working_kvm_guest_is_not_abandoned() {
        let fake = fake(
            &format!("echo 'SeaBIOS (version 1.16.2)'; sleep 1.5; {TCG_GUEST}"),
            Duration::from_secs(4),
        );
        let booted = fake.boot(Accel::Auto).unwrap();
        assert_eq!(booted.accel, Accelerator::Kvm);
        assert_eq!(booted.no_kvm, None);
        assert_eq!(booted.boot.ending, Ending::Exited { code: Some(0) });
        assert!(booted.boot.seconds_to_kernel.unwrap() >= 1.4);
        assert_eq!(fake.probe.verdict(), Some(KvmVerdict::Works));
    }

    #[test]
    fn a_kvm_run_that_printed_nothing_is_never_remembered_as_working() {
        // A QEMU that exits 0 at once, before any line: not "works".
        let fake = fake("exit 0", Duration::from_secs(5));
        let booted = fake.boot(Accel::Auto).unwrap();
        assert_eq!(booted.accel, Accelerator::Tcg);
        assert!(
            matches!(fake.probe.verdict(), Some(KvmVerdict::Fails(r)) if r.contains("exit code 0"))
        );
    }

    #[test]
    fn asking_for_kvm_explicitly_fails_with_the_reason_instead_of_falling_back() {
        let fake = fake(
            "echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2; kill -ABRT $$",
            Duration::from_secs(5),
        );
        let err = format!(
            "{:#}",
            fake.boot(Accel::Kvm).err().expect("--accel kvm must fail")
        );
        assert!(
            err.contains("SIGABRT") && err.contains("MSR 0x10a") && err.contains("--accel tcg"),
            "{err}"
        );
    }

    #[test]
    fn no_device_means_tcg_without_trying_and_says_why() {
        let mut fake = fake("exit 99", Duration::from_secs(5));
        fake.probe.device = fake.dir.path().join("no-such-kvm");
        let booted = fake.boot(Accel::Auto).unwrap();
        assert_eq!(booted.accel, Accelerator::Tcg);
        assert!(
            matches!(&booted.no_kvm, Some(NoKvm::NotTried(r)) if r.contains("cannot be opened")),
            "{:?}",
            booted.no_kvm
        );
        assert_eq!(
            fake.probe.verdict(),
            None,
            "nothing ran under KVM: nothing to remember"
        );
    }

    #[test]
    fn the_probe_gives_the_same_verdict_as_a_boot() {
        let fake = fake(
            "echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2; kill -ABRT $$",
            Duration::from_secs(5),
        );
        let guest = Guest {
            extra_args: Vec::new(),
            qemu: &fake.qemu,
            kernel: Path::new("vmlinux"),
            initrd: Path::new("initrd"),
            append: String::new(),
        };
        let verdict = probe_kvm(&fake.probe, &guest, &fake.dir.path().join("probe.log")).unwrap();
        assert!(
            matches!(&verdict, KvmVerdict::Fails(r) if r.contains("SIGABRT") && r.contains("MSR 0x10a")),
            "{verdict:?}"
        );
        assert_eq!(fake.probe.verdict(), Some(verdict));
    }

    #[test]
    fn the_kvm_verdict_belongs_to_this_host_boot() {
        let works = format_verdict(&KvmVerdict::Works, "boot-a");
        assert_eq!(parse_verdict(&works, "boot-a"), Some(KvmVerdict::Works));
        assert_eq!(
            parse_verdict(&works, "boot-b"),
            None,
            "an earlier host boot's verdict is ignored"
        );
        let fails = format_verdict(
            &KvmVerdict::Fails("QEMU ended (killed by SIGABRT)".into()),
            "boot-a",
        );
        assert_eq!(
            parse_verdict(&fails, "boot-a"),
            Some(KvmVerdict::Fails("QEMU ended (killed by SIGABRT)".into()))
        );
        assert_eq!(
            parse_verdict("boot-a fails", "boot-a"),
            None,
            "a failure needs its reason"
        );
        assert_eq!(parse_verdict("boot-a silent", "boot-a"), None);
    }

    #[test]
    fn the_empty_initramfs_is_a_newc_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.cpio");
        empty_initramfs(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"070701") && bytes[110..120] == *b"TRAILER!!!");
    }

    #[test]
    fn words_come_from_the_value_enums() {
        assert_eq!(Accel::Auto.name(), "auto");
        assert_eq!(Accelerator::Kvm.name(), "kvm");
        assert_eq!(Accelerator::Tcg.name(), "tcg");
    }
}
