//! The guest's initramfs: the validator as a static /init, packed as a newc
//! cpio by the kernel's own usr/gen_init_cpio with a fixed timestamp, so
//! the same inputs give the same bytes.

use crate::{cmd, paths, ui};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET_TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Builds the validator as a static binary (crt-static: no musl target here).
pub fn build_validator() -> Result<PathBuf> {
    let step = ui::Step::start("Building the static validator");
    let log = paths::results().join("validator-build.log");
    std::fs::create_dir_all(paths::results())?;
    cmd::create_log(&log)?;
    cmd::logged(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "--package",
                "validator",
                "--target",
                TARGET_TRIPLE,
            ])
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .env("CARGO_TARGET_DIR", paths::target())
            .current_dir(paths::root()),
        &log,
    )
    .context("building the validator")?;
    let binary = paths::target()
        .join(TARGET_TRIPLE)
        .join("release")
        .join("validator");
    ensure_static(&binary)?;
    step.finish("done");
    Ok(binary)
}

/// A dynamically linked /init would fail to start with no message at all.
fn ensure_static(binary: &Path) -> Result<()> {
    let elf = std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    if has_interpreter(&elf) {
        bail!(
            "{} is dynamically linked (has PT_INTERP); it cannot be /init",
            binary.display()
        );
    }
    Ok(())
}

/// True if a 64-bit little-endian ELF has a PT_INTERP program header.
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..phnum).any(|i| {
        let off = phoff + i * phentsize;
        elf.get(off..off + 4) == Some(&3u32.to_le_bytes()[..])
    })
}

/// One entry of a gen_init_cpio spec.
pub enum Entry {
    Dir(&'static str),
    CharDev(&'static str, u32, u32),
    File {
        dest: String,
        source: PathBuf,
        mode: u32,
    },
    Symlink(String, String),
}

impl Entry {
    fn spec_line(&self) -> String {
        match self {
            Entry::Dir(path) => format!("dir {path} 0755 0 0"),
            Entry::CharDev(path, major, minor) => format!("nod {path} 0600 0 0 c {major} {minor}"),
            Entry::File { dest, source, mode } => {
                format!("file {dest} {} {mode:o} 0 0", source.display())
            }
            Entry::Symlink(path, target) => format!("slink {path} {target} 0777 0 0"),
        }
    }
}

/// The directories and device node every guest needs before /init runs.
pub fn base_entries() -> Vec<Entry> {
    vec![
        Entry::Dir("/dev"),
        Entry::CharDev("/dev/console", 5, 1),
        Entry::Dir("/proc"),
        Entry::Dir("/sys"),
        Entry::Dir("/tmp"),
        Entry::Dir("/bin"),
    ]
}

/// Packs `entries` into `out` with gen_init_cpio compiled from `kernel_src`.
pub fn pack(kernel_src: &Path, entries: &[Entry], out: &Path) -> Result<()> {
    let tool = gen_init_cpio(kernel_src)?;
    let spec: String = entries.iter().map(|e| e.spec_line() + "\n").collect();
    let spec_path = out.with_extension("spec");
    std::fs::write(&spec_path, &spec)?;
    let cpio = cmd_bytes(Command::new(&tool).args(["-t", "0"]).arg(&spec_path))
        .with_context(|| format!("packing {}", out.display()))?;
    std::fs::write(out, cpio).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

fn cmd_bytes(command: &mut Command) -> Result<Vec<u8>> {
    let out = command
        .output()
        .with_context(|| format!("cannot start {}", cmd::describe(command)))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            cmd::describe(command),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// usr/gen_init_cpio.c is a single host C file; compiling it takes a blink.
fn gen_init_cpio(kernel_src: &Path) -> Result<PathBuf> {
    let source = kernel_src.join("usr/gen_init_cpio.c");
    let tool = paths::target().join("gen_init_cpio");
    let fresh = |t: &Path| -> Option<bool> {
        Some(t.metadata().ok()?.modified().ok()? >= source.metadata().ok()?.modified().ok()?)
    };
    if fresh(&tool) != Some(true) {
        cmd::output(
            Command::new("gcc")
                .args(["-O2", "-o"])
                .arg(&tool)
                .arg(&source),
        )
        .context("compiling the kernel's usr/gen_init_cpio.c")?;
    }
    Ok(tool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_lines_follow_gen_init_cpio_syntax() {
        let file = Entry::File {
            dest: "/init".into(),
            source: "/x/v".into(),
            mode: 0o755,
        };
        assert_eq!(file.spec_line(), "file /init /x/v 755 0 0");
        assert_eq!(
            Entry::CharDev("/dev/console", 5, 1).spec_line(),
            "nod /dev/console 0600 0 0 c 5 1"
        );
        assert_eq!(
            Entry::Symlink("/bin/sh".into(), "busybox".into()).spec_line(),
            "slink /bin/sh busybox 0777 0 0"
        );
    }

    #[test]
    fn detects_dynamic_executables() {
        let ls = std::fs::read("/bin/ls").unwrap();
        assert!(has_interpreter(&ls), "/bin/ls is dynamically linked");
        assert!(!has_interpreter(b"\x7fELF short"));
    }
}
