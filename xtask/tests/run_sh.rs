//! bundle/run.sh against a fake QEMU whose "kernel" file is the console
//! text it prints: every verdict of the replay (reproduced, a swapped
//! kernel, a panic, a timeout, KVM aborting) without booting anything, and
//! with PATH reduced to bash, coreutils and QEMU.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundle/run.sh")
}

/// A console as the validator prints it, with `b`'s result line.
fn console(b: &str) -> String {
    format!(
        "[    0.000000] Linux version 6.12.117\r\nKTAP version 1\r\n1..3\r\n# start a\r\nok 1 a\r\n\
         # start b\r\n# b: arch_prctl(ARCH_SET_COMPAT) = -22 (EINVAL)\r\n{b}\r\n# start c\r\n\
         ok 3 c # SKIP not here\r\n# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0\r\n"
    )
}

/// `b` fails with EINVAL on vanilla and passes patched, as declared.
const B_VANILLA: &str = "not ok 2 b # reason=EINVAL";
const B_PATCHED: &str = "ok 2 b";

const FAKE_QEMU: &str = r#"#!/usr/bin/env bash
# Fake QEMU: the "kernel" file is the console text it prints.
[[ $1 == --version ]] && { echo "QEMU emulator version ${FAKE_VERSION:-7.2.22} (fake)"; exit 0; }
echo "$*" >>"${FAKE_ARGS_LOG:-/dev/null}"
while (($#)); do
    case $1 in -accel) accel=$2 ;; -kernel) kernel=$2 ;; esac
    shift
done
if [[ $accel == kvm ]]; then
    case ${FAKE_KVM:-abort} in
    abort) echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000ff" >&2; exit 1 ;;
    silent) echo "SeaBIOS (version fake)"; exec sleep 100 ;;
    esac
fi
while IFS= read -r line; do printf '%s\n' "$line"; done <"$kernel"
[[ -n ${FAKE_HANG:-} ]] && exec sleep 100
exit 0
"#;

/// A bundle directory with run.sh, recorded QEMU arguments and two kernels.
fn bundle(dir: &Path) {
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    std::fs::copy(run_sh(), dir.join("run.sh")).unwrap();
    write(
        "manifest",
        "variants=vanilla patched\nlinux_version=6.12.117\nsource_provider=debian\n\
         source_origin=linux-source-6.12.tar.xz\npatches=8\nseries_hash=0123456789abcdef\n\
         config_hash=fedcba9876543210\n",
    );
    write(
        "scenarios.tsv",
        "# id\tvanilla\tpatched\tvanilla (read)\tpatched (read)\na\tpass\tpass\tpass\tpass\n\
         b\tfail:EINVAL\tpass\tfail (EINVAL)\tpass\nc\tskip\tskip\tskip (not here)\tskip (not here)\n",
    );
    write("qemu/args", "-nodefaults\n-no-reboot\n-machine\npc\n");
    write("qemu/accel-kvm", "-accel\nkvm\n-cpu\nhost\n");
    write("qemu/accel-tcg", "-accel\ntcg\n-cpu\nmax\n");
    write(
        "qemu/accel-tcg-qemu-before-9",
        "-accel\ntcg\n-cpu\nmax,-smap\n",
    );
    write("qemu/append-run", "console=ttyS0 panic=-1 oops=panic\n");
    write("qemu/append-shell", "console=ttyS0 panic=-1 oops=panic\n");
    write("qemu/timeout", "600\n");
    write("qemu/kvm-deadline", "5\n");
    write("initramfs/validator.cpio", "cpio");
    for (variant, b) in [("vanilla", B_VANILLA), ("patched", B_PATCHED)] {
        write(&format!("{variant}/vmlinux"), &console(b));
        write(
            &format!("{variant}/console.log"),
            &format!("# qemu-system-x86_64 ...\n{}", console(b)),
        );
    }
    write("fake/qemu-system-x86_64", FAKE_QEMU);
    for script in ["run.sh", "fake/qemu-system-x86_64"] {
        Command::new("chmod")
            .arg("+x")
            .arg(dir.join(script))
            .status()
            .unwrap();
    }
}

/// PATH with bash, every coreutils program and the fake QEMU, nothing else:
/// run.sh must not need awk, sed, grep or python.
fn reduced_path(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let listing = Command::new("dpkg-query")
        .args(["-L", "coreutils"])
        .output()
        .expect("dpkg-query lists coreutils' files (a Debian host)");
    let files = String::from_utf8(listing.stdout).unwrap();
    let programs = files
        .lines()
        .filter(|l| l.starts_with("/usr/bin/") || l.starts_with("/bin/"));
    for program in programs.chain(["/bin/bash"]) {
        let link = bin.join(Path::new(program).file_name().unwrap());
        if Path::new(program).is_file() && !link.exists() {
            std::os::unix::fs::symlink(program, link).unwrap();
        }
    }
    std::os::unix::fs::symlink(
        dir.join("fake/qemu-system-x86_64"),
        bin.join("qemu-system-x86_64"),
    )
    .unwrap();
    assert!(!bin.join("grep").exists() && !bin.join("sed").exists());
    bin
}

fn replay(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let bin = dir.join("bin");
    let bin = if bin.exists() { bin } else { reduced_path(dir) };
    let mut command = Command::new(dir.join("run.sh"));
    command.args(args).env_clear().env("PATH", &bin);
    for (key, value) in env {
        command.env(key, value);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

const TABLE: &str = "\
Linux 6.12.117 (debian linux-source-6.12.tar.xz)
8 patches (series 0123456789ab), config fedcba987654
QEMU 7.2.22 TCG -cpu max,-smap
scenario  vanilla        patched  verdict
--------  -------------  -------  -----------
a         pass           pass     as expected
b         FAIL (EINVAL)  pass     as expected
c         skip           skip     as expected
";

#[test]
fn a_faithful_replay_prints_the_table_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path());
    let (code, out, err) = replay(dir.path(), &["--accel", "tcg"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(TABLE), "{out}");
    assert!(out.contains("the run reproduced"), "{out}");
    let log = std::fs::read_to_string(dir.path().join("replay/patched/console.log")).unwrap();
    assert!(
        log.starts_with("# qemu-system-x86_64 -nodefaults -no-reboot -machine pc -accel tcg -cpu max,-smap -kernel ")
            && log.contains("ok 2 b"),
        "{log}"
    );
}

#[test]
fn a_swapped_kernel_exits_1_naming_the_differing_row() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path());
    std::fs::copy(
        dir.path().join("vanilla/vmlinux"),
        dir.path().join("patched/vmlinux"),
    )
    .unwrap();
    let (code, out, _) = replay(dir.path(), &["--accel", "tcg"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "1 result(s) differ from the bundled run:\n\
             scenario  kernel   bundled  this run\n\
             --------  -------  -------  -------------\n\
             b         patched  pass     fail (EINVAL)\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "b on patched: fail (EINVAL) (expected pass)\n  # arch_prctl(ARCH_SET_COMPAT) = -22"
        ),
        "{out}"
    );
}

#[test]
fn a_panic_exits_1_with_the_problem_and_the_console_tail() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path());
    let panic = "[    0.0] Linux version 6.12.117\nKTAP version 1\n1..3\n# start a\n\
                 [    1.5] Kernel panic - not syncing: Attempted to kill init!\n";
    std::fs::write(dir.path().join("vanilla/vmlinux"), panic).unwrap();
    let (code, out, _) = replay(dir.path(), &["--accel", "tcg"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("  - kernel: [    1.5] Kernel panic - not syncing: Attempted to kill init!\n  - the guest stopped before the validator finished while scenario a was running (0 of 3 results)"),
        "{out}"
    );
    assert!(
        out.contains("a         vanilla  pass           (none)"),
        "{out}"
    );
}

#[test]
fn an_oops_fails_the_replay_even_when_every_result_matches() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path());
    let text = console(B_PATCHED).replace(
        "# start c",
        "[    2.0] WARNING: CPU: 0 PID: 1 at x.c:1\n# start c",
    );
    std::fs::write(dir.path().join("patched/vmlinux"), text).unwrap();
    let (code, out, _) = replay(dir.path(), &["--accel", "tcg"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("  - kernel: [    2.0] WARNING: CPU: 0 PID: 1 at x.c:1"),
        "{out}"
    );
    assert!(
        out.contains("0 result(s) differ from the bundled run; 1 run(s) with problems"),
        "{out}"
    );
}

#[test]
fn a_hung_guest_is_killed_at_the_timeout_naming_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path());
    std::fs::write(
        dir.path().join("patched/vmlinux"),
        "[    0.0] Linux version 6.12.117\nKTAP version 1\n1..3\n# start a\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (code, out, _) = replay(
        dir.path(),
        &["--accel", "tcg", "--timeout", "2"],
        &[("FAKE_HANG", "1")],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("  - timed out after 2s while scenario a was running; QEMU was killed"),
        "{out}"
    );
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
}

#[test]
fn kvm_aborting_falls_back_to_tcg_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path());
    if !(Path::new("/dev/kvm").exists()) {
        // run.sh says so before starting QEMU; the abort path needs /dev/kvm.
        let (code, _, err) = replay(dir.path(), &[], &[]);
        assert_eq!(code, 0);
        assert!(
            err.contains("/dev/kvm cannot be opened read-write"),
            "{err}"
        );
        return;
    }
    let (code, out, err) = replay(dir.path(), &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("KVM is not usable here: QEMU stopped (exit status 1) before the KVM guest kernel printed: qemu-system-x86_64: error: failed to set MSR 0x10a"),
        "{err}"
    );
    assert!(out.contains("QEMU 7.2.22 TCG -cpu max,-smap"), "{out}");

    let (code, _, err) = replay(dir.path(), &["--accel", "kvm"], &[]);
    assert_eq!(code, 2, "forced KVM that aborts is an error: {err}");
    assert!(err.contains("--accel kvm: QEMU stopped"), "{err}");

    let (code, out, err) = replay(
        dir.path(),
        &[],
        &[("FAKE_KVM", "silent"), ("FAKE_VERSION", "9.1.0")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("KVM is not usable here: the KVM guest kernel printed nothing in 5s"),
        "a firmware banner is not the guest kernel: {err}"
    );
    assert!(
        out.contains("QEMU 9.1.0 TCG -cpu max\n"),
        "QEMU >= 9 keeps SMAP: {out}"
    );
}

#[test]
fn a_bundle_without_its_files_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path());
    std::fs::remove_file(dir.path().join("patched/vmlinux")).unwrap();
    let (code, _, err) = replay(dir.path(), &[], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("the bundle has no patched/vmlinux"), "{err}");
    let (code, _, err) = replay(dir.path(), &["--shell", "both"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--shell takes vanilla or patched"), "{err}");
}

#[test]
fn a_failure_with_another_reason_is_unexpected_and_differs_from_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path());
    let eperm = console("not ok 2 b # reason=EPERM");
    std::fs::write(dir.path().join("vanilla/vmlinux"), eperm).unwrap();
    let (code, out, _) = replay(dir.path(), &["--accel", "tcg"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("b         FAIL (EPERM)  pass     UNEXPECTED"),
        "{out}"
    );
    assert!(
        out.contains("b on vanilla: fail (EPERM) (expected fail (EINVAL))"),
        "{out}"
    );
    assert!(
        out.contains("b         vanilla  fail (EINVAL)  fail (EPERM)"),
        "{out}"
    );

    let unnamed = console("not ok 2 b");
    std::fs::write(dir.path().join("vanilla/vmlinux"), unnamed).unwrap();
    let (code, out, _) = replay(dir.path(), &["--accel", "tcg"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("b         vanilla  fail (EINVAL)  fail (unnamed)"),
        "a failure naming no reason is not the declared one: {out}"
    );
}

#[test]
fn a_bundle_with_an_unreadable_expectation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    bundle(dir.path());
    std::fs::write(dir.path().join("scenarios.tsv"), "a\tfail\tpass\n").unwrap();
    let (code, _, err) = replay(dir.path(), &[], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("scenarios.tsv: a expects 'fail' (pass, skip or fail:<reason>)"),
        "{err}"
    );
}
