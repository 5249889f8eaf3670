//! Booting a kernel in QEMU: finding QEMU and its version, choosing the
//! accelerator (KVM only where a guest really runs), and running a guest
//! with a timeout while its serial console is captured line by line.

use crate::{cmd, console, paths, reaper, ui, Accel};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a KVM guest may stay silent before we call KVM unusable. A
/// working KVM guest prints its first line well under a second.
const KVM_SILENCE_DEADLINE: Duration = Duration::from_secs(5);
/// After a panic, how long to wait for QEMU to exit on its own (panic=-1).
const PANIC_GRACE: Duration = Duration::from_secs(10);

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
        let text = cmd::output(Command::new(&path).arg("--version")).with_context(|| {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    Kvm,
    Tcg,
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

/// What to boot; the accelerator is chosen per boot (see `run_with_fallback`).
pub struct Guest<'a> {
    pub qemu: &'a Qemu,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub append: String,
}

impl Guest<'_> {
    pub fn command(&self, accel: Accelerator) -> Command {
        let mut c = Command::new(&self.qemu.path);
        let accel_name = match accel {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
        };
        c.args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-machine", "pc", "-m", "256M", "-smp", "1"])
        .args(["-accel", accel_name])
        .args(["-cpu", self.cpu(accel)])
        .arg("-kernel")
        .arg(self.kernel)
        .arg("-initrd")
        .arg(self.initrd)
        .arg("-append")
        .arg(format!("console=ttyS0 panic=-1 oops=panic {}", self.append).trim());
        c
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// QEMU exited by itself (guest reboot or panic with -no-reboot).
    Exited { code: Option<i32> },
    /// The whole-run timeout expired; QEMU was killed.
    TimedOut,
    /// KVM guest printed nothing before the deadline; QEMU was killed.
    SilentKvm,
}

#[derive(Debug, Clone, Serialize)]
pub struct Boot {
    pub ending: Ending,
    pub console: Vec<String>,
    pub seconds_to_first_output: Option<f64>,
    pub seconds_to_first_ktap: Option<f64>,
    pub seconds_total: f64,
    pub qemu_stderr: String,
}

/// Runs the guest to its end or the timeout, teeing the console to
/// `console_log` and reporting each line to `on_line`.
pub fn run(
    guest: &Guest,
    accel: Accelerator,
    timeout: Duration,
    console_log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<Boot> {
    let mut log = std::fs::File::create(console_log)
        .with_context(|| format!("cannot create {}", console_log.display()))?;
    let stderr_path = console_log.with_extension("qemu-stderr");
    let stderr_file = std::fs::File::create(&stderr_path)?;
    let mut command = guest.command(accel);
    command.arg("-serial").arg("stdio");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr_file);
    writeln!(log, "# {}", cmd::describe(&command))?;
    let started = Instant::now();
    let mut child = reaper::spawn(&mut command)?;
    let stdout = child.child.stdout.take().context("QEMU stdout")?;

    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            buf.clear();
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut boot = Boot {
        ending: Ending::TimedOut,
        console: Vec::new(),
        seconds_to_first_output: None,
        seconds_to_first_ktap: None,
        seconds_total: 0.0,
        qemu_stderr: String::new(),
    };
    let mut panic_seen: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let mut deadline = started + timeout;
        if accel == Accelerator::Kvm && boot.seconds_to_first_output.is_none() {
            deadline = deadline.min(started + KVM_SILENCE_DEADLINE);
        }
        if let Some(at) = panic_seen {
            deadline = deadline.min(at + PANIC_GRACE);
        }
        if now >= deadline {
            child.kill();
            boot.ending = if boot.seconds_to_first_output.is_none() && accel == Accelerator::Kvm {
                Ending::SilentKvm
            } else {
                Ending::TimedOut
            };
            break;
        }
        match rx.recv_timeout(deadline - now) {
            Ok(line) => {
                let at = started.elapsed().as_secs_f64();
                boot.seconds_to_first_output.get_or_insert(at);
                if line.starts_with("KTAP version") {
                    boot.seconds_to_first_ktap.get_or_insert(at);
                }
                if console::is_panic(&line) && panic_seen.is_none() {
                    panic_seen = Some(Instant::now());
                }
                writeln!(log, "{line}")?;
                on_line(&line);
                boot.console.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.child.wait().context("waiting for QEMU")?;
                boot.ending = Ending::Exited {
                    code: status.code(),
                };
                break;
            }
        }
    }
    drop(child);
    let _ = reader.join();
    boot.seconds_total = started.elapsed().as_secs_f64();
    boot.qemu_stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    Ok(boot)
}

/// Boots with the first-choice accelerator; a silent KVM guest is killed,
/// remembered, and the boot is redone under TCG.
pub fn run_with_fallback(
    guest: &Guest,
    accel: Accel,
    timeout: Duration,
    console_log: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<(Boot, Accelerator)> {
    // Guests booting side by side must not each pay the KVM probe: while
    // the verdict is unknown, one probes and the others wait for it.
    static PROBE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _probing = (first_choice(accel) == Accelerator::Kvm && kvm_verdict().is_none())
        .then(|| PROBE.lock().unwrap_or_else(|e| e.into_inner()));
    let chosen = first_choice(accel);
    if chosen == Accelerator::Tcg {
        note_smap_workaround(guest.qemu);
    }
    let boot = run(guest, chosen, timeout, console_log, on_line)?;
    if boot.ending != Ending::SilentKvm {
        if chosen == Accelerator::Kvm {
            remember_kvm(true);
        }
        return Ok((boot, chosen));
    }
    if accel == Accel::Kvm {
        bail!(
            "the KVM guest printed nothing in {}s (nested KVM?); use --accel tcg",
            KVM_SILENCE_DEADLINE.as_secs()
        );
    }
    remember_kvm_silent();
    ui::note(&format!(
        "KVM guest printed nothing in {}s: KVM is not usable here, falling back to TCG (remembered until the host reboots)",
        KVM_SILENCE_DEADLINE.as_secs()
    ));
    note_smap_workaround(guest.qemu);
    let boot = run(guest, Accelerator::Tcg, timeout, console_log, on_line)?;
    Ok((boot, Accelerator::Tcg))
}

/// Says once per run that TCG guests get -cpu max,-smap on this QEMU.
fn note_smap_workaround(qemu: &Qemu) {
    static NOTE: std::sync::Once = std::sync::Once::new();
    if qemu.needs_smap_workaround() {
        NOTE.call_once(|| {
            ui::note(&format!(
                "{} under TCG: using -cpu max,-smap (far-return bug of QEMU < 9 with SMAP)",
                qemu.version_text
            ))
        });
    }
}

/// Runs QEMU attached to the terminal (shell, gdb): the serial console and
/// QEMU's monitor share stdio (Ctrl-A X quits).
pub fn interactive(guest: &Guest, accel: Accelerator, extra: &[&str]) -> Result<i32> {
    let mut command = guest.command(accel);
    command.args(["-serial", "mon:stdio"]).args(extra);
    let mut child = reaper::spawn_in_foreground(&mut command)?;
    let status = child.child.wait().context("waiting for QEMU")?;
    Ok(status.code().unwrap_or(1))
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
        let line = cmd::describe(&guest.command(Accelerator::Tcg));
        assert!(
            line.contains("-no-reboot")
                && line.contains("-accel tcg -cpu max,-smap")
                && line.contains("panic=-1 oops=panic x=1"),
            "{line}"
        );
        assert_eq!(guest.cpu(Accelerator::Kvm), "host");
        assert!(cmd::describe(&guest.command(Accelerator::Kvm)).contains("-accel kvm -cpu host"));
    }
}
