//! `cargo xtask bench`: how long the edit -> result loop takes, and what
//! compat-mode transitions cost. A benchmark reports; it does not fail on
//! a number. It works in its own target directory (target/bench), so the
//! cold measurements never throw away the user's builds or cache.

use crate::flags::RunOpts;
use crate::host::process::Cmd;
use crate::host::{paths, ui};
use crate::kernel::source::Layout;
use crate::kernel::Variant;
use crate::pipeline::{self, Comparison, Settings, Workspace};
use crate::results::table::Table;
use crate::vm::accel;
use crate::vm::qemu::{Guest, Qemu};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: String,
    pub target: String,
    pub note: String,
}

fn figure(name: &str, value: String, target: &str, note: String) -> Figure {
    Figure {
        name: name.into(),
        value,
        target: target.into(),
        note,
    }
}

fn secs(s: f64) -> String {
    format!("{s:.1} s")
}

mod instructions;
mod instructions_per_patch;

pub fn run(opts: &RunOpts, instructions: bool, per_patch: bool) -> Result<i32> {
    if instructions {
        return instructions::run(opts, per_patch);
    }
    let settings = opts.settings();
    std::fs::create_dir_all(paths::results())?;
    // Everything below uses target/bench/ as its target directory.
    std::env::set_var("CARGO_TARGET_DIR", paths::target().join("bench"));
    let mut figures = Vec::new();
    let layout = measure_import(&settings, &mut figures)?;
    measure_cold(&settings, &layout, &mut figures)?;
    let warm = measure_warm(&settings, &mut figures)?;
    measure_edit(&settings, &warm.series_dir, &mut figures)?;
    push_kvm_figure(&mut figures, &warm.kernels[0], &warm.initrd)?;
    let micro = micro_benchmarks(&warm.validator, &warm.kernels, &warm.initrd, &settings)?;
    write_tables(&figures, &micro)?;
    Ok(0)
}

fn measure_import(settings: &Settings, figures: &mut Vec<Figure>) -> Result<Layout> {
    let started = Instant::now();
    let layout = Workspace::open(settings)?.layout.clone();
    figures.push(figure(
        "import source (unpack + git, once per tarball)",
        secs(started.elapsed().as_secs_f64()),
        "once",
        "skipped when the tarball's path, size and mtime are unchanged".into(),
    ));
    Ok(layout)
}

/// Cold: empty build dirs and an empty compiler cache.
fn measure_cold(settings: &Settings, layout: &Layout, figures: &mut Vec<Figure>) -> Result<()> {
    for dir in [
        layout.build(Variant::Vanilla),
        layout.build(Variant::Patched),
        paths::ccache(),
    ] {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
        }
    }
    let _ = std::fs::remove_file(layout.applied_series_stamp());
    let (cold, cold_s) = timed(|| pipeline::collect(settings))?;
    pipeline::ensure_clean(&cold.vanilla)?;
    pipeline::ensure_clean(&cold.patched)?;
    figures.push(figure(
        "cold compare (both kernels built, both booted)",
        secs(cold_s),
        "-",
        String::new(),
    ));
    figures.push(figure(
        "  vanilla kernel build, cold",
        secs(cold.vanilla.kernel.build_seconds),
        "-",
        String::new(),
    ));
    figures.push(figure(
        "  patched kernel after vanilla",
        secs(cold.patched.kernel.build_seconds),
        "<= 60 s",
        "ccache shares every object the series does not touch".into(),
    ));
    Ok(())
}

/// What the later measurements boot, from the warm run.
struct Warm {
    validator: PathBuf,
    initrd: PathBuf,
    kernels: [PathBuf; 2],
    series_dir: PathBuf,
}

fn measure_warm(settings: &Settings, figures: &mut Vec<Figure>) -> Result<Warm> {
    let (warm, warm_s) = timed(|| pipeline::collect(settings))?;
    pipeline::ensure_clean(&warm.vanilla)?;
    pipeline::ensure_clean(&warm.patched)?;
    let rebuilt = !(warm.vanilla.kernel.cached && warm.patched.kernel.cached);
    figures.push(figure(
        "warm compare, nothing changed",
        secs(warm_s),
        "<= 10 s",
        if rebuilt {
            "REBUILT something".into()
        } else {
            "nothing rebuilt; both guests boot in parallel".into()
        },
    ));
    push_boot_figures(figures, &warm);
    let programs = pipeline::programs()?;
    Ok(Warm {
        initrd: warm.ws.validator_initramfs(&programs, None)?,
        validator: programs.validator,
        kernels: [
            warm.vanilla.kernel.vmlinux.clone(),
            warm.patched.kernel.vmlinux.clone(),
        ],
        series_dir: warm.ws.series.dir.clone(),
    })
}

fn measure_edit(settings: &Settings, series_dir: &Path, figures: &mut Vec<Figure>) -> Result<()> {
    let edited = paths::target().join("series-edited");
    copy_series_with_edit(series_dir, &edited)?;
    let edit_settings = Settings {
        series: Some(edited),
        ..settings.clone()
    };
    let (edit, edit_s) = timed(|| pipeline::collect(&edit_settings))?;
    figures.push(figure(
        "edit loop: one patch edited (a comment in a .c file), new table",
        secs(edit_s),
        "<= 90 s",
        format!("patched rebuild {:.1} s", edit.patched.kernel.build_seconds),
    ));
    Ok(())
}

fn write_tables(figures: &[Figure], micro: &[Micro]) -> Result<()> {
    let results = paths::results();
    let table = figures_table(figures);
    let micro_table = micro_table(micro);
    let machine = machine_description();
    println!("\n{machine}\n");
    print!("{}\n{}", table.terminal(), micro_table.terminal());
    let md = format!(
        "{machine}\n\n{}\n{}",
        table.markdown(),
        micro_table.markdown()
    );
    std::fs::write(results.join("bench.md"), md)?;
    let json = serde_json::json!({ "machine": machine, "figures": figures, "micro": micro });
    std::fs::write(
        results.join("bench.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!(
        "\nwritten: {} and bench.json",
        results.join("bench.md").display()
    );
    Ok(())
}

fn figures_table(figures: &[Figure]) -> Table {
    Table {
        header: ["measure", "value", "target", "note"]
            .map(String::from)
            .to_vec(),
        rows: figures
            .iter()
            .map(|f| {
                vec![
                    f.name.clone(),
                    f.value.clone(),
                    f.target.clone(),
                    f.note.clone(),
                ]
            })
            .collect(),
    }
}

fn micro_table(micro: &[Micro]) -> Table {
    Table {
        header: [
            "micro-benchmark",
            "where",
            "median",
            "p10",
            "p90",
            "iterations",
        ]
        .map(String::from)
        .to_vec(),
        rows: micro
            .iter()
            .map(|m| {
                vec![
                    m.name.clone(),
                    m.place.clone(),
                    format!("{} ns", m.median_ns),
                    format!("{} ns", m.p10_ns),
                    format!("{} ns", m.p90_ns),
                    m.iters.to_string(),
                ]
            })
            .collect(),
    }
}

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let start = Instant::now();
    let value = f()?;
    Ok((value, start.elapsed().as_secs_f64()))
}

fn push_boot_figures(figures: &mut Vec<Figure>, c: &Comparison) {
    for r in [&c.vanilla, &c.patched] {
        let accel = r.accelerator.name().to_uppercase();
        figures.push(figure(
            &format!(
                "boot {} ({accel}): QEMU start to first KTAP line",
                r.variant.name()
            ),
            r.seconds_to_first_ktap
                .map(secs)
                .unwrap_or_else(|| "none".into()),
            "<= 1.5 s",
            format!("-cpu {}", r.cpu),
        ));
        figures.push(figure(
            &format!(
                "boot {} ({accel}): QEMU start to exit, whole suite",
                r.variant.name()
            ),
            secs(r.seconds_boot_total),
            "-",
            format!("{} scenarios", r.ktap.results.len()),
        ));
    }
}

/// A KVM boot when KVM really works; otherwise the figure says why not.
fn push_kvm_figure(figures: &mut Vec<Figure>, kernel: &Path, initrd: &Path) -> Result<()> {
    if let Some(reason) = accel::KvmProbe::host().why_not() {
        figures.push(figure("boot (KVM)", "n/a".into(), "-", reason));
        return Ok(());
    }
    let qemu = Qemu::find()?;
    let guest = Guest {
        extra_args: Vec::new(),
        qemu: &qemu,
        kernel,
        initrd,
        append: String::new(),
    };
    let log = paths::results().join("bench-kvm-console.log");
    let booted = accel::run_with_fallback(
        &guest,
        accel::Accel::Kvm,
        Duration::from_secs(120),
        &log,
        &mut |_| {},
    );
    match booted {
        Err(e) => figures.push(figure("boot (KVM)", "n/a".into(), "-", format!("{e:#}"))),
        Ok(booted) => figures.push(figure(
            "boot vanilla (KVM): QEMU start to first KTAP line",
            booted
                .boot
                .seconds_to_first_ktap
                .map(secs)
                .unwrap_or_else(|| "none".into()),
            "-",
            String::new(),
        )),
    }
    Ok(())
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Micro {
    pub name: String,
    pub place: String,
    pub median_ns: u64,
    pub p10_ns: u64,
    pub p90_ns: u64,
    pub iters: u64,
}

/// `# bench <name> median_ns=<n> p10_ns=<n> p90_ns=<n> iters=<n>`
fn parse_micro(line: &str, place: &str) -> Option<Micro> {
    let mut words = line.strip_prefix("# bench ")?.split_whitespace();
    let name = words.next()?.to_string();
    let mut field = |key: &str| -> Option<u64> { words.next()?.strip_prefix(key)?.parse().ok() };
    Some(Micro {
        name,
        place: place.into(),
        median_ns: field("median_ns=")?,
        p10_ns: field("p10_ns=")?,
        p90_ns: field("p90_ns=")?,
        iters: field("iters=")?,
    })
}

fn micro_benchmarks(
    validator: &Path,
    kernels: &[PathBuf; 2],
    initrd: &Path,
    settings: &Settings,
) -> Result<Vec<Micro>> {
    let step = ui::Step::start("Micro-benchmarks on the host");
    let host = Cmd::new(validator).arg("--bench").read()?;
    step.finish("done");
    let mut out: Vec<Micro> = host
        .lines()
        .filter_map(|l| parse_micro(l, "host"))
        .collect();
    let qemu = Qemu::find()?;
    for (kernel, variant) in kernels.iter().zip([Variant::Vanilla, Variant::Patched]) {
        let step = ui::Step::start(format!("Micro-benchmarks in the {} guest", variant.name()));
        let guest = Guest {
            extra_args: Vec::new(),
            qemu: &qemu,
            kernel,
            initrd,
            append: "validator.bench".into(),
        };
        let log = paths::results().join(format!("bench-{}-console.log", variant.name()));
        let booted = pipeline::boot_without_splats(&guest, settings, &log)
            .with_context(|| format!("micro-benchmarks in the {} guest", variant.name()))?;
        step.finish("done");
        let place = format!("{} guest ({})", variant.name(), booted.accel.name());
        out.extend(
            booted
                .boot
                .console
                .iter()
                .filter_map(|l| parse_micro(l, &place)),
        );
    }
    Ok(out)
}

/// Copies a series directory, adding a comment after a top-level `}` in
/// the first C hunk that has one (always valid C), with the hunk's line
/// count fixed up, as a developer's small edit would.
fn copy_series_with_edit(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir_all(to)?;
    let mut edited = false;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        let name = path.file_name().unwrap().to_owned();
        let mut bytes = std::fs::read(&path)?;
        if !edited && path.extension().is_some_and(|e| e == "patch") {
            if let Some(new) = edit_patch(&String::from_utf8_lossy(&bytes)) {
                bytes = new.into_bytes();
                edited = true;
            }
        }
        std::fs::write(to.join(name), bytes)?;
    }
    anyhow::ensure!(
        edited,
        "no patch in {} has a C hunk to edit",
        from.display()
    );
    Ok(())
}

fn edit_patch(patch: &str) -> Option<String> {
    let mut lines: Vec<String> = patch.lines().map(String::from).collect();
    let mut file_is_c = false;
    let mut hunk_header = None;
    for i in 0..lines.len() {
        let line = &lines[i];
        if let Some(file) = line.strip_prefix("+++ b/") {
            file_is_c = file.ends_with(".c");
        } else if line.starts_with("@@ ") {
            hunk_header = Some(i);
        } else if file_is_c && (line == "+}" || line == " }") {
            let header = hunk_header?;
            lines[header] = bump_new_count(&lines[header])?;
            lines.insert(i + 1, "+/* xtask bench: an edit */".into());
            return Some(lines.join("\n") + "\n");
        }
    }
    None
}

/// `@@ -10,7 +10,9 @@ fn` -> `@@ -10,7 +10,10 @@ fn`
fn bump_new_count(header: &str) -> Option<String> {
    let plus = header.find(" +")? + 2;
    let end = plus + header[plus..].find(' ')?;
    let range = &header[plus..end];
    let (start, count) = match range.split_once(',') {
        Some((s, c)) => (s, c.parse::<u32>().ok()?),
        None => (range, 1),
    };
    Some(format!(
        "{}{start},{}{}",
        &header[..plus],
        count + 1,
        &header[end..]
    ))
}

fn machine_description() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib / 1024 / 1024)
        .unwrap_or(0);
    let kernel = Cmd::new("uname").arg("-r").read().unwrap_or_default();
    format!(
        "Machine: {cpus} CPUs ({model}), {mem_gib} GiB, host kernel {}",
        kernel.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_validator_bench_lines() {
        let m = parse_micro(
            "# bench getpid_int80_32 median_ns=412 p10_ns=400 p90_ns=450 iters=200",
            "host",
        )
        .unwrap();
        assert_eq!(
            (m.name.as_str(), m.median_ns, m.p10_ns, m.p90_ns, m.iters),
            ("getpid_int80_32", 412, 400, 450, 200)
        );
        assert!(parse_micro("# bench x median_ns=1", "host").is_none());
        assert!(parse_micro("ok 1 x", "host").is_none());
    }

    #[test]
    fn the_edit_adds_one_line_after_a_top_level_brace() {
        let patch = "--- a/x.h\n+++ b/x.h\n@@ -1,2 +1,3 @@\n a\n+}\n b\n--- a/f.c\n+++ b/f.c\n@@ -5,3 +5,4 @@ int f(void)\n int x;\n+int y;\n }\n \n";
        let edited = edit_patch(patch).unwrap();
        assert!(
            edited.contains(
                "@@ -5,3 +5,5 @@ int f(void)\n int x;\n+int y;\n }\n+/* xtask bench: an edit */\n"
            ),
            "{edited}"
        );
        assert!(
            edited.contains("@@ -1,2 +1,3 @@\n a\n+}\n"),
            "the header hunk is left alone"
        );
        assert_eq!(
            bump_new_count("@@ -1 +1 @@").as_deref(),
            Some("@@ -1 +1,2 @@")
        );
    }
}
