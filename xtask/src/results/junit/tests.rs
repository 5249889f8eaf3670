//! The JUnit file is read back by a real JUnit parser (Debian's
//! python3-junitparser), not only by eye.

use super::*;
use crate::host::process::Cmd;
use crate::kernel::build::Kernel;
use crate::kernel::source::SourceInfo;
use crate::kernel::Variant;
use crate::results::ktap::Ktap;
use crate::results::report::{parse_declared, RunReport};
use crate::vm::boot::Ending;
use crate::vm::qemu::{Accelerator, Qemu};

fn report(variant: Variant, ktap: &str, problems: &[&str]) -> RunReport {
    RunReport {
        variant,
        source: SourceInfo {
            provider: "test".into(),
            origin: "none".into(),
            version: "6.12.117".into(),
            tree_id: "t".into(),
            commit: "c".into(),
            tree_state: "release tarball".into(),
        },
        series_hash: String::new(),
        kernel: Kernel {
            bzimage: "bz".into(),
            vmlinux: "vmlinux".into(),
            boot_image: "vmlinux".into(),
            build_dir: "b".into(),
            build_key: "k".into(),
            config_hash: "h".into(),
            cached: true,
            build_seconds: 0.0,
        },
        accelerator: Accelerator::Tcg,
        qemu: Qemu {
            path: "q".into(),
            version: (7, 2, 0),
            version_text: String::new(),
        },
        cpu: "max".into(),
        ending: Ending::Exited { code: Some(0) },
        problems: problems.iter().map(|s| s.to_string()).collect(),
        ktap: Ktap::parse(ktap),
        seconds_to_first_ktap: None,
        seconds_boot_total: 0.0,
        console_log: format!("/results/{}/console.log", variant.name()).into(),
        console_tail: Vec::new(),
        guest_inputs: String::new(),
    }
}

fn declared() -> Vec<Declared> {
    parse_declared(
        r#"[{"id":"as_declared","description":"d","vanilla":"fail","vanilla_reason":"EINVAL","patched":"pass"},
            {"id":"other_reason","description":"d","vanilla":"fail","vanilla_reason":"EINVAL","patched":"pass"},
            {"id":"skipped","description":"d","vanilla":"skip","vanilla_reason":"no ia32","patched":"pass"},
            {"id":"never_ran","description":"d","vanilla":"pass","patched":"pass"}]"#,
    )
    .unwrap()
}

/// Runs Debian's python3 with junitparser on `xml`: `suite tests failures
/// errors skipped` per suite, then `case result` per testcase.
fn parse_with_junitparser(xml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, xml).unwrap();
    let script = r#"
import sys
from junitparser import JUnitXml, Failure, Error, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
for suite in xml:
    print(suite.name, suite.tests, suite.failures, suite.errors, suite.skipped)
    for case in suite:
        kinds = [type(r).__name__ + ":" + (r.message or "") for r in case.result]
        print("-", case.classname, case.name, "|".join(kinds) or "passed")
"#;
    let out = Cmd::new("/usr/bin/python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "junitparser rejected the file (install it with `apt-get install python3-junitparser`):\n{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_junit_parser_reads_one_testcase_per_scenario_and_kernel_with_failures_and_errors_apart() {
    let vanilla = report(
        Variant::Vanilla,
        "KTAP version 1\n1..4\nnot ok 1 as_declared # reason=EINVAL\n\
         # other_reason: ARCH_GET_COMPAT <failed> & said \"ENOSYS\"\nnot ok 2 other_reason # reason=ENOSYS\n\
         ok 3 skipped # SKIP no ia32\n",
        &["timed out after 30s while scenario never_ran was running; QEMU was killed"],
    );
    let patched = report(
        Variant::Patched,
        "KTAP version 1\n1..4\nok 1 as_declared\nok 2 other_reason\nok 3 skipped\nok 4 never_ran\n# Totals: pass:4\n",
        &[],
    );
    let parsed = parse_with_junitparser(&render(&declared(), &[&vanilla, &patched]));
    let expected = "vanilla 5 1 2 1\n\
          - compat.vanilla as_declared passed\n\
          - compat.vanilla other_reason Failure:observed fail (ENOSYS), declared fail (EINVAL)\n\
          - compat.vanilla skipped Skipped:skip (no ia32)\n\
          - compat.vanilla never_ran Error:no result (declared pass): timed out after 30s while scenario never_ran was running; QEMU was killed\n\
          - compat.vanilla (run) Error:the run had problems\n\
        patched 4 0 0 0\n\
          - compat.patched as_declared passed\n\
          - compat.patched other_reason passed\n\
          - compat.patched skipped passed\n\
          - compat.patched never_ran passed\n";
    assert_eq!(parsed, expected);
}

#[test]
fn diagnostics_and_console_bytes_are_escaped() {
    assert_eq!(
        escape("a<b>&\"c'\x1b[0m\n"),
        "a&lt;b&gt;&amp;&quot;c&apos;[0m\n"
    );
}
