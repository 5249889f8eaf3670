//! The exit codes main.rs returns, driven through the real binary
//! (README "Exit codes"): 2 for a harness error or a usage error, 130 for
//! an interrupt. 0 and 1 come from the end-to-end checks (`cargo xtask
//! test`: a clean compare, and a WARN_ON in the kernel).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

#[test]
fn a_usage_error_is_2() {
    let out = xtask().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_filter_that_selects_nothing_is_a_harness_error_listing_the_ids() {
    let out = xtask()
        .args([
            "compare",
            "--accel",
            "tcg",
            "--filter",
            "no-such-scenario-zzz",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no-such-scenario-zzz") && stderr.contains("gate_round_trip"),
        "{stderr}"
    );
}

/// Refused before anything is built or fetched: in an empty target
/// directory, with the words that say what to drop.
#[test]
fn option_combinations_that_cannot_work_are_refused_first() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["compare", "--per-patch", "--flavour", "debug"],
            "drop --flavour debug",
        ),
        (
            &[
                "bench",
                "--instructions",
                "--per-patch",
                "--flavour",
                "criu",
            ],
            "drop --flavour criu",
        ),
        (
            &["compare", "--cover-letter", "--stress", "10s"],
            "--cover-letter takes the table of the default kernels without --stress; drop --stress 10s\n",
        ),
        (
            &["compare", "--cover-letter", "--flavour", "debug"],
            "--cover-letter takes the table of the default kernels without --stress; drop --flavour debug\n",
        ),
    ];
    for (args, said) in cases {
        let target = tempfile::tempdir().unwrap();
        let out = xtask()
            .args(args)
            .args(["--accel", "tcg"])
            .env("CARGO_TARGET_DIR", target.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{args:?}: {stderr}");
        let left: Vec<_> = std::fs::read_dir(target.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{args:?} made {left:?} before refusing");
    }
}

#[test]
fn an_interrupt_is_130() {
    // A target directory of its own: the run starts from nothing (building
    // the validator, importing the source) and is interrupted in it.
    let target = tempfile::tempdir().unwrap();
    let mut child = xtask()
        .args(["compare", "--accel", "tcg"])
        .env("CARGO_TARGET_DIR", target.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "compare ended before the interrupt"
    );
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "xtask did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
}

#[test]
fn a_tree_of_another_release_is_refused_before_anything_is_built() {
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(
        tree.path().join("Makefile"),
        "VERSION = 6\nPATCHLEVEL = 13\nSUBLEVEL = 0\nEXTRAVERSION =\n",
    )
    .unwrap();
    std::fs::create_dir_all(tree.path().join("arch/x86")).unwrap();
    let target = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = xtask()
        .args(["build", "--kernel-src"])
        .arg(tree.path())
        .env("CARGO_TARGET_DIR", target.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("this series is against 6.12; the tree is 6.13.0"),
        "{stderr}"
    );
    assert!(
        !target.path().join("kernel").exists()
            || std::fs::read_dir(target.path().join("kernel"))
                .unwrap()
                .all(|e| { !e.unwrap().path().join("vanilla/src/Makefile").exists() }),
        "the tree was imported"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}
