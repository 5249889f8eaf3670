//! Splat detection on recorded console logs (xtask/testdata/console/):
//! one file per kind of splat in the kernel's own format, and a real clean
//! run of the validator, whose scenario children segfault on purpose.

use super::*;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/console")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(String::from)
        .collect()
}

/// The kinds found in a fixture, in order, and where the first starts.
fn kinds(name: &str) -> (Vec<&'static str>, usize) {
    let found = splats(&fixture(name), &Allowlist::default());
    let first = found.first().map(|s| s.line).unwrap_or(0);
    (found.iter().map(|s| s.kind).collect(), first)
}

#[test]
fn every_kind_of_splat_is_caught_in_a_recorded_log() {
    // The fixtures share 6 lines of boot and KTAP before the splat.
    let cases: [(&str, &[&str], usize); 17] = [
        ("warning.log", &["WARNING"], 8),
        ("kasan.log", &["KASAN"], 8),
        ("kfence.log", &["KFENCE"], 8),
        ("ubsan.log", &["UBSAN"], 8),
        ("lockdep-circular.log", &["lockdep"], 8),
        ("lockdep-inconsistent.log", &["lockdep"], 8),
        ("rcu-suspicious.log", &["lockdep (RCU)"], 8),
        ("rcu-stall.log", &["RCU stall"], 7),
        ("rcu-self-stall.log", &["RCU stall"], 7),
        ("soft-lockup.log", &["soft lockup"], 7),
        ("hard-lockup.log", &["hard lockup"], 7),
        ("hung-task.log", &["hung task"], 7),
        ("kmemleak.log", &["kmemleak"], 7),
        ("oops.log", &["BUG", "oops", "panic"], 7),
        ("bug-at.log", &["BUG", "oops"], 8),
        ("pid1-segfault.log", &["segfault of PID 1"], 7),
        ("clean-vanilla.log", &[], 0),
    ];
    for (name, want, line) in cases {
        assert_eq!(kinds(name), (want.to_vec(), line), "{name}");
    }
}

#[test]
fn a_real_clean_run_with_crashing_scenario_children_has_no_splat() {
    let log = fixture("clean-vanilla.log");
    assert!(
        log.iter().any(|l| l.contains("]: segfault at ")),
        "the recording keeps the children's segfault lines"
    );
    assert_eq!(splats(&log, &Allowlist::default()), []);
}

#[test]
fn a_splat_shows_its_first_lines_and_where_the_log_is() {
    let found = splats(&fixture("warning.log"), &Allowlist::default());
    let text = found[0].describe(Path::new("/t/console.log"));
    assert_eq!(
        text,
        "kernel WARNING (line 8 of /t/console.log):\n      \
         | WARNING: CPU: 0 PID: 1 at arch/x86/kernel/process_64.c:912 do_arch_prctl_64+0x2a/0x310\n      \
         | Modules linked in:\n      \
         | CPU: 0 UID: 0 PID: 1 Comm: init Not tainted 6.12.117+ #2\n      \
         | Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014\n      \
         | RIP: 0010:do_arch_prctl_64+0x2a/0x310\n      \
         | ---[ end trace 0000000000000000 ]---\n      \
         | ok 2 get_compat_reads_native\n      \
         | ok 3 set_compat_returns_low_base"
    );
}

#[test]
fn the_allow_list_names_lines_with_their_reason() {
    let allow = Allowlist::parse(
        "# comment\n\nkmemleak: 2 new suspected  # a known leak in the test kernel, bug 42\n",
    )
    .unwrap();
    assert_eq!(splats(&fixture("kmemleak.log"), &allow), []);
    assert_eq!(kinds("warning.log").0, ["WARNING"], "only what it names");
    assert_eq!(
        allow.allows("kmemleak: 2 new suspected memory leaks"),
        Some("a known leak in the test kernel, bug 42")
    );
    let err = format!("{:#}", Allowlist::parse("WARNING: CPU\n").unwrap_err());
    assert!(err.contains("line 1") && err.contains("# reason"), "{err}");
    let err = format!("{:#}", Allowlist::parse("WARNING: CPU #  \n").unwrap_err());
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn the_repository_allow_list_parses_and_allows_no_generic_splat() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../qemu/splat-allowlist");
    let allow = Allowlist::load(&path).unwrap();
    for name in ["warning.log", "oops.log", "kasan.log", "pid1-segfault.log"] {
        assert!(
            !splats(&fixture(name), &allow).is_empty(),
            "{name} is allowed"
        );
    }
}

#[test]
fn recognises_kernel_problems() {
    assert_eq!(
        kernel_problem("[    2.001] Kernel panic - not syncing: Attempted to kill init!"),
        Some("panic")
    );
    assert_eq!(kernel_problem("Oops: 0000 [#1] PREEMPT SMP"), Some("oops"));
    assert_eq!(
        kernel_problem("[ 1.5] BUG: kernel NULL pointer dereference, address: 0"),
        Some("BUG")
    );
    assert_eq!(
        kernel_problem("WARNING: CPU: 0 PID: 1 at mm/mmap.c:100 foo+0x1/0x2"),
        Some("WARNING")
    );
    assert!(is_panic("Kernel panic - not syncing: Fatal exception"));
}

#[test]
fn ignores_validator_lines_that_mention_the_words() {
    for line in [
        "# sigsegv: child got SIGSEGV, not a BUG: fine",
        "ok 3 no_warning_here",
        "random: crng init done",
        "init[19]: segfault at f27f9579 ip 00000000f27f9579 sp 000000004116ff9c error 14",
        "init[11]: segfault at 0 ip 0 sp 0 error 4",
    ] {
        assert_eq!(kernel_problem(line), None, "{line}");
    }
}

#[test]
fn firmware_banners_are_not_the_guest_kernel() {
    for firmware in [
        "SeaBIOS (version 1.16.2-debian-1.16.2-1)",
        "iPXE (http://ipxe.org) 00:03.0 CA00 PCI2.10 PnP PMM+06FD3360+06F33360 CA00",
        "Booting from ROM..",
        "",
    ] {
        assert!(!is_guest_kernel_line(firmware), "{firmware}");
    }
    for kernel in [
        "Linux version 6.12.117+ (root@vm) (gcc (Debian 12.2.0-14+deb12u1) 12.2.0) #2",
        "[    0.000000] Linux version 6.12.117",
        "[    0.000000] Command line: console=ttyS0",
        "KTAP version 1",
    ] {
        assert!(is_guest_kernel_line(kernel), "{kernel}");
    }
}
