//! Runs the built validator on the host kernel (IA32_EMULATION=y): every
//! scenario runs for real and must match its declared expectation for the
//! detected kernel (vanilla unless the host carries the series).

use serde_json::Value;
use std::process::Command;

fn validator(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_validator"))
        .args(args)
        .output()
        .expect("run validator");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn every_scenario_matches_its_declaration_on_this_kernel() {
    let (code, stdout) = validator(&["--json"]);
    let v: Value = serde_json::from_str(&stdout).expect("JSON results");
    let results = v["results"].as_array().expect("results array");
    let (_, list) = validator(&["--list", "--json"]);
    let declared: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(
        results.len(),
        declared.as_array().unwrap().len(),
        "every scenario ran"
    );
    let (absent, mismatched): (Vec<&Value>, Vec<&Value>) = results
        .iter()
        .filter(|r| r["matches"] != Value::Bool(true))
        .partition(|r| skipped_for_guest_programs(r));
    for r in &absent {
        eprintln!(
            "{}: {} (the VM run declares and checks it)",
            r["id"], r["reason"]
        );
    }
    let mismatches: Vec<String> = mismatched
        .iter()
        .map(|r| {
            format!(
                "{} observed {} expected {}: {}",
                r["id"], r["observed"], r["expected"], r["diagnostics"]
            )
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "kernel {}: {}",
        v["kernel"],
        mismatches.join("\n")
    );
    assert_eq!(code, if absent.is_empty() { 0 } else { 1 });
}

/// The real-program scenarios run the i386 busybox through compat-exec,
/// which only the validator initramfs carries: on a host without them they
/// skip, naming the absent file (the VM run, where a skip is unexpected,
/// is what checks them).
fn skipped_for_guest_programs(r: &Value) -> bool {
    let reason = r["reason"].as_str().unwrap_or_default();
    let absent_file = ["/bin/compat-exec", "/bin/busybox-i386"]
        .into_iter()
        .any(|p| {
            reason.starts_with(&format!("{p} is absent")) && !std::path::Path::new(p).exists()
        });
    r["observed"] == "skip" && absent_file
}

#[test]
fn ktap_output_follows_the_harness_contract() {
    let (code, stdout) = validator(&["--filter", "gate_round_trip,int80_from_64bit"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "KTAP version 1");
    assert_eq!(lines[1], "1..2");
    let start = lines
        .iter()
        .position(|l| *l == "# start gate_round_trip")
        .expect("start line");
    let ok = lines
        .iter()
        .position(|l| *l == "ok 1 gate_round_trip")
        .expect("result line");
    assert!(start < ok);
    assert!(lines[start + 1..ok]
        .iter()
        .all(|l| l.starts_with("# gate_round_trip: ")));
    assert!(lines.contains(&"ok 2 int80_from_64bit"));
    assert_eq!(
        *lines.last().unwrap(),
        "# Totals: pass:2 fail:0 xfail:0 xpass:0 skip:0 error:0"
    );
    assert_eq!(code, 0);
}

#[test]
fn list_json_is_in_run_order_with_contract_fields() {
    let (code, list) = validator(&["--list", "--json"]);
    assert_eq!(code, 0);
    let declared: Value = serde_json::from_str(&list).unwrap();
    let ids: Vec<&str> = declared
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[0], "gate_round_trip");
    let (_, ktap) = validator(&["--filter", "map_32bit_range"]);
    assert!(ktap.contains("ok 1 map_32bit_range"));
    for s in declared.as_array().unwrap() {
        for key in ["id", "description", "vanilla", "patched", "proves"] {
            assert!(s[key].is_string(), "{key} in {s}");
        }
    }
}

#[test]
fn a_filter_selecting_nothing_is_an_error_listing_the_ids() {
    for args in [
        &["--filter", "nothing-matches"][..],
        &["--list", "--json", "--filter", "nothing-matches"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_validator"))
            .args(args)
            .output()
            .expect("run validator");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            stderr.contains("`nothing-matches` selects no scenario"),
            "{stderr}"
        );
        assert!(
            stderr.contains("gate_round_trip, int80_from_32bit"),
            "{stderr}"
        );
    }
}

#[test]
fn every_declared_failure_is_observed_with_its_reason_in_ktap() {
    let (_, list) = validator(&["--list", "--json"]);
    let declared: Value = serde_json::from_str(&list).unwrap();
    let (_, json) = validator(&["--json"]);
    let run: Value = serde_json::from_str(&json).unwrap();
    let kernel = run["kernel"].as_str().unwrap().to_string();
    let (_, ktap) = validator(&[]);
    let absent: Vec<&Value> = run["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| skipped_for_guest_programs(r))
        .map(|r| &r["id"])
        .collect();
    for s in declared.as_array().unwrap() {
        if s[kernel.as_str()] != "fail" || absent.contains(&&s["id"]) {
            continue;
        }
        let reason = s[format!("{kernel}_reason")]
            .as_str()
            .expect("fail names a reason");
        let id = s["id"].as_str().unwrap();
        let suffix = format!(" {id} # reason={reason}");
        assert!(
            ktap.lines()
                .any(|l| l.starts_with("not ok ") && l.ends_with(&suffix)),
            "no `not ok N{suffix}` line on this {kernel} kernel"
        );
    }
}
