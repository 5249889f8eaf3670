//! The reproduction bundle (docs/bundle.md): what one run puts into the
//! archive that replays it with only bash, coreutils and QEMU. The archive
//! itself is `host::archive`; run.sh and the README template are data in
//! the top-level `bundle/` folder.

use crate::host::archive::{self, Item};
use crate::host::paths;
use crate::kernel::series::Series;
use crate::kernel::source::SourceInfo;
use crate::kernel::Variant;
use crate::results::report::{Declared, Expect, RunReport};
use crate::vm::qemu::{self, Accelerator, Qemu, KVM_FIRST_LINE_DEADLINE};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One run, as a bundle carries it: what the table was made from.
pub struct Run<'a> {
    pub source: &'a SourceInfo,
    pub series: &'a Series,
    pub declared: &'a [Declared],
    /// One report per kernel, vanilla first.
    pub reports: &'a [&'a RunReport],
    /// The compact table as printed, with its header lines.
    pub table: &'a str,
    /// The Markdown table (compare.md).
    pub markdown: &'a str,
    pub validator_initrd: &'a Path,
    pub shell_initrd: &'a Path,
    pub qemu: &'a Qemu,
    pub timeout_secs: u64,
    pub filter: Option<&'a str>,
}

/// Writes the bundle of `run` to `out` (default: target/bundle/<name>.tar.gz).
pub fn write(run: &Run, out: Option<&Path>) -> Result<PathBuf> {
    let name = name(run);
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| paths::bundles().join(format!("{name}.tar.gz")));
    let items = items(run, &name)?;
    archive::write(&items, &paths::bundles().join("stage"), &name, &out)?;
    Ok(out)
}

/// The bundle's name (its folder, and the archive's without `.tar.gz`).
pub fn name(run: &Run) -> String {
    let variants: Vec<Variant> = run.reports.iter().map(|r| r.variant).collect();
    name_of(run.source, run.series, &variants)
}

/// `compat-mode-<version>-<series hash>`, plus the kernel if only one.
pub fn name_of(source: &SourceInfo, series: &Series, variants: &[Variant]) -> String {
    let hash = series.hash();
    let mut name = format!(
        "compat-mode-{}-{}",
        source.version,
        hash.get(..12).unwrap_or("no-series")
    );
    if let [only] = variants {
        name.push('-');
        name.push_str(&only.name());
    }
    name
}

fn items(run: &Run, name: &str) -> Result<Vec<Item>> {
    let data = paths::bundle_files();
    let manifest_pairs = manifest_pairs(run, name)?;
    let values: BTreeMap<&str, String> = manifest_pairs
        .iter()
        .cloned()
        .chain([("table", run.table.to_string())])
        .collect();
    let template = std::fs::read_to_string(data.join("README.in"))
        .with_context(|| format!("cannot read {}", data.join("README.in").display()))?;
    let mut items = vec![
        Item::copy("run.sh", data.join("run.sh")),
        Item::text("README", fill(&template, &values)?),
        Item::text("manifest", manifest(&manifest_pairs)?),
        Item::text("scenarios.tsv", scenarios_tsv(run.declared)),
        Item::text(
            "validator-list.json",
            serde_json::to_string_pretty(run.declared)? + "\n",
        ),
        Item::text("compare.md", run.markdown),
        Item::text("table.txt", run.table),
        Item::copy("initramfs/validator.cpio", run.validator_initrd),
        Item::copy("initramfs/shell.cpio", run.shell_initrd),
    ];
    items.extend(qemu_items(run)?);
    items.push(Item::copy("series/series", run.series.dir.join("series")));
    for patch in &run.series.patches {
        items.push(Item::copy(format!("series/{}", patch.name), &patch.path));
    }
    for report in run.reports {
        items.extend(kernel_items(report)?);
    }
    Ok(items)
}

/// What was booted and what it printed, under `<variant>/`.
fn kernel_items(report: &RunReport) -> Result<Vec<Item>> {
    let dir = report.variant.name();
    let results = report
        .console_log
        .parent()
        .context("the console log has no folder")?;
    Ok(vec![
        Item::copy(format!("{dir}/vmlinux"), &report.kernel.vmlinux),
        Item::copy(format!("{dir}/bzImage"), &report.kernel.bzimage),
        Item::copy(
            format!("{dir}/config"),
            report.kernel.build_dir.join(".config"),
        ),
        Item::copy(format!("{dir}/console.log"), &report.console_log),
        Item::copy(format!("{dir}/report.json"), results.join("report.json")),
    ])
}

/// The QEMU arguments `vm::qemu` builds every guest with, recorded so that
/// run.sh does not derive them again.
fn qemu_items(run: &Run) -> Result<Vec<Item>> {
    let shell_append = qemu::kernel_cmdline("");
    Ok(vec![
        Item::text("qemu/args", arg_lines(&qemu::MACHINE_ARGS)?),
        Item::text(
            "qemu/accel-kvm",
            arg_lines(&qemu::accel_args(Accelerator::Kvm, false))?,
        ),
        Item::text(
            "qemu/accel-tcg",
            arg_lines(&qemu::accel_args(Accelerator::Tcg, false))?,
        ),
        Item::text(
            "qemu/accel-tcg-qemu-before-9",
            arg_lines(&qemu::accel_args(Accelerator::Tcg, true))?,
        ),
        Item::text("qemu/append-run", arg_lines(&[qemu::kernel_cmdline("")])?),
        Item::text("qemu/append-shell", arg_lines(&[shell_append])?),
        Item::text("qemu/timeout", format!("{}\n", run.timeout_secs)),
        Item::text(
            "qemu/kvm-deadline",
            format!("{}\n", KVM_FIRST_LINE_DEADLINE.as_secs()),
        ),
    ])
}

/// id, the expectation per kernel as run.sh compares results (pass, skip,
/// fail:<reason>) and as people read it, what the scenario checks.
fn scenarios_tsv(declared: &[Declared]) -> String {
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    let mut text =
        String::from("# id\tvanilla\tpatched\tvanilla (read)\tpatched (read)\twhat it checks\n");
    for d in declared {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            d.id,
            result_key(&d.vanilla),
            result_key(&d.patched),
            clean(&d.vanilla.to_string()),
            clean(&d.patched.to_string()),
            clean(&d.description)
        ));
    }
    text
}

/// An expectation as run.sh spells results: a failure with its reason.
fn result_key(expected: &Expect) -> String {
    match (expected.word(), expected.reason()) {
        ("fail", Some(reason)) => format!("fail:{reason}"),
        (word, _) => word.to_string(),
    }
}

/// What run.sh and the README read about the run.
fn manifest_pairs(run: &Run, name: &str) -> Result<Vec<(&'static str, String)>> {
    let first = run
        .reports
        .first()
        .context("a bundle needs at least one run")?;
    let origin = Path::new(&run.source.origin)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let variants: Vec<String> = run.reports.iter().map(|r| r.variant.name()).collect();
    let (major, minor, patch) = run.qemu.version;
    Ok(vec![
        ("bundle_name", name.to_string()),
        ("variants", variants.join(" ")),
        ("linux_version", run.source.version.clone()),
        ("source_provider", run.source.provider.clone()),
        ("source_origin", origin),
        ("tree_id", run.source.tree_id.clone()),
        ("patches", run.series.patches.len().to_string()),
        ("series_hash", run.series.hash()),
        ("config_hash", first.kernel.config_hash.clone()),
        ("scenario_count", run.declared.len().to_string()),
        ("filter_note", filter_note(run.filter)),
        ("machine", machine()),
        ("run_date", run_date(&first.console_log)?),
        ("qemu_version", format!("{major}.{minor}.{patch}")),
        ("accel", first.accelerator.name().to_uppercase()),
        ("cpu", first.cpu.clone()),
        ("timeout", run.timeout_secs.to_string()),
        (
            "kvm_deadline",
            KVM_FIRST_LINE_DEADLINE.as_secs().to_string(),
        ),
    ])
}

fn filter_note(filter: Option<&str>) -> String {
    match filter {
        Some(filter) => format!(", selected by --filter {filter:?}"),
        None => String::new(),
    }
}

/// The host: CPU model, kernel release, distribution (read, not run).
fn machine() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| {
            l.strip_prefix("PRETTY_NAME=")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown OS".into());
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    format!("{cpu}, Linux {kernel}, {os}")
}

/// The date of the run (its console log), not of the packing: the same run
/// gives the same bundle bytes.
fn run_date(console_log: &Path) -> Result<String> {
    let modified = std::fs::metadata(console_log)
        .and_then(|m| m.modified())
        .with_context(|| format!("cannot read the date of {}", console_log.display()))?;
    let secs = modified
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (year, month, day) = civil_date(secs / 86_400);
    let (hour, minute) = (secs % 86_400 / 3600, secs % 3600 / 60);
    Ok(format!(
        "{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC"
    ))
}

/// Days since 1970-01-01 to (year, month, day): H. Hinnant's civil_from_days.
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The template with every `{{key}}` replaced; a key the template uses and
/// `values` lacks is an error, so no placeholder reaches a reader.
pub fn fill(template: &str, values: &BTreeMap<&str, String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}").with_context(|| {
            format!("unclosed `{{{{` in the README template: {}", &rest[start..])
        })?;
        let key = &rest[start + 2..start + end];
        let value = values.get(key).with_context(|| {
            format!("the README template uses {{{{{key}}}}}, which has no value")
        })?;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `key=value` lines for run.sh, which reads them with `IFS='=' read`.
pub fn manifest(pairs: &[(&str, String)]) -> Result<String> {
    let mut text = String::from("# written by cargo xtask bundle; read by run.sh\n");
    for (key, value) in pairs {
        if value.contains('\n') || key.contains('=') {
            bail!("manifest entry {key} cannot hold a newline or `=` in its key: {value:?}");
        }
        text.push_str(&format!("{key}={value}\n"));
    }
    Ok(text)
}

/// Arguments one per line (run.sh reads them with mapfile: no quoting).
pub fn arg_lines<S: AsRef<str>>(args: &[S]) -> Result<String> {
    let mut text = String::new();
    for arg in args {
        let arg = arg.as_ref();
        if arg.contains('\n') {
            bail!("a QEMU argument holds a newline: {arg:?}");
        }
        text.push_str(arg);
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(19_723), (2024, 1, 1));
        assert_eq!(civil_date(20_423), (2025, 12, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
    }

    #[test]
    fn the_readme_template_is_filled_or_refused() {
        let values = BTreeMap::from([("a", "1".to_string()), ("b", "two".to_string())]);
        assert_eq!(fill("x {{a}} y {{b}}{{a}}", &values).unwrap(), "x 1 y two1");
        let err = fill("x {{c}}", &values).unwrap_err();
        assert!(err.to_string().contains("{{c}}"), "{err}");
        assert!(fill("x {{a", &values).is_err());
    }

    #[test]
    fn manifest_and_arguments_refuse_what_run_sh_cannot_read() {
        assert_eq!(
            manifest(&[("variants", "vanilla patched".into())]).unwrap(),
            "# written by cargo xtask bundle; read by run.sh\nvariants=vanilla patched\n"
        );
        assert!(manifest(&[("k", "a\nb".into())]).is_err());
        assert_eq!(arg_lines(&["-m", "256M"]).unwrap(), "-m\n256M\n");
        assert!(arg_lines(&["a\nb"]).is_err());
    }
}
