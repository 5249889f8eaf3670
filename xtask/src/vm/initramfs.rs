//! What a guest boots into. The contents are data in the top-level
//! `initramfs/` folder (file lists for the kernel's usr/gen_init_cpio and
//! init scripts; see initramfs/README.md). This module builds the static
//! validator, sets the `${VARS}` the lists use, and packs them with
//! gen_init_cpio and a fixed timestamp, so the same inputs give the same bytes.

use crate::host::paths;
use crate::host::process::{self, Cmd};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

pub const TARGET_TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// The workspace's programs that run inside a guest: each is a package of
/// the workspace with a binary of the same name.
pub const VALIDATOR: &str = "validator";
pub const COMPAT_EXEC: &str = "compat-exec";

/// Builds `packages` (one binary each, named after its package) as static
/// binaries in one cargo call (crt-static: no musl target here); returns
/// their paths in the same order.
pub fn build_static(packages: &[&str]) -> Result<Vec<PathBuf>> {
    let log = paths::results().join("static-build.log");
    std::fs::create_dir_all(paths::results())?;
    process::create_log(&log)?;
    let mut cmd = Cmd::cargo().args(["build", "--release", "--target", TARGET_TRIPLE]);
    for package in packages {
        cmd = cmd.args(["--package", package]);
    }
    cmd.env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_TARGET_DIR", paths::target())
        .dir(paths::root())
        .logged(&log)
        .with_context(|| format!("building {} statically", packages.join(", ")))?;
    let release = paths::target().join(TARGET_TRIPLE).join("release");
    packages
        .iter()
        .map(|package| {
            let binary = release.join(package);
            ensure_static(&binary)?;
            Ok(binary)
        })
        .collect()
}

/// A dynamically linked /init (or program in an initramfs without a
/// dynamic loader) would fail to start with no message at all.
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

/// One guest's contents: lists from `initramfs/` (after `base.list`), the
/// variables they use, and list lines computed at run time.
pub struct Contents<'a> {
    /// Paths relative to `initramfs/`, e.g. "validator.list".
    pub lists: &'a [&'a str],
    /// `${NAME}` values; `INITRAMFS` (the folder itself) is always set.
    pub vars: &'a [(&'a str, &'a Path)],
    /// More list lines, e.g. one `file` line per selftest binary.
    pub extra: String,
}

/// The lists of `contents`, `base.list` first, as one gen_init_cpio list.
/// A `${NAME}` that `contents` does not set is an error naming the list.
fn spec(dir: &Path, contents: &Contents) -> Result<String> {
    let mut spec = String::new();
    for name in std::iter::once(&"base.list").chain(contents.lists) {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the initramfs list {}", path.display()))?;
        if let Some(var) = unset_var(&text, contents.vars) {
            bail!(
                "{} uses ${{{var}}}, which xtask does not set for this guest (it sets {})",
                path.display(),
                set_vars(contents.vars).join(", ")
            );
        }
        spec.push_str(&text);
    }
    spec.push_str(&contents.extra);
    Ok(spec)
}

fn set_vars(vars: &[(&str, &Path)]) -> Vec<String> {
    std::iter::once("INITRAMFS")
        .chain(vars.iter().map(|(k, _)| *k))
        .map(String::from)
        .collect()
}

/// The first `${NAME}` in `text` that is neither INITRAMFS nor in `vars`.
fn unset_var(text: &str, vars: &[(&str, &Path)]) -> Option<String> {
    let set = set_vars(vars);
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        let name = &after[..end];
        if !set.iter().any(|s| s == name) {
            return Some(name.to_string());
        }
        rest = &after[end..];
    }
    None
}

/// Packs `contents` into `out` with gen_init_cpio compiled from `kernel_src`.
pub fn pack(kernel_src: &Path, contents: &Contents, out: &Path) -> Result<()> {
    let tool = gen_init_cpio(kernel_src)?;
    let dir = paths::initramfs_lists();
    let spec = spec(&dir, contents)?;
    let parent = out.parent().context("an initramfs path has a folder")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    // Kept beside the archive: what went in, before ${VARS} were expanded.
    std::fs::write(out.with_extension("list"), &spec)?;
    let mut cmd = Cmd::new(&tool)
        .args(["-t", "0", "-"])
        .env("INITRAMFS", &dir);
    for (name, value) in contents.vars {
        cmd = cmd.env(name, value);
    }
    let cpio = cmd
        .stdin(spec)
        .read_bytes()
        .with_context(|| format!("packing {}", out.display()))?;
    std::fs::write(out, cpio).with_context(|| format!("cannot write {}", out.display()))
}

/// usr/gen_init_cpio.c is a single host C file; compiling it takes a blink.
fn gen_init_cpio(kernel_src: &Path) -> Result<PathBuf> {
    let source = kernel_src.join("usr/gen_init_cpio.c");
    let tool = paths::target().join("gen_init_cpio");
    let fresh = |t: &Path| -> Option<bool> {
        Some(t.metadata().ok()?.modified().ok()? >= source.metadata().ok()?.modified().ok()?)
    };
    if fresh(&tool) != Some(true) {
        Cmd::new("gcc")
            .args(["-O2", "-o"])
            .arg(&tool)
            .arg(&source)
            .read()
            .context("compiling the kernel's usr/gen_init_cpio.c")?;
    }
    Ok(tool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_in_the_repo_uses_only_variables_xtask_sets() {
        let dir = paths::initramfs_lists();
        let p = Path::new("/x");
        let programs: &[(&str, &Path)] =
            &[("VALIDATOR", p), ("COMPAT_EXEC", p), ("BUSYBOX_I386", p)];
        let shell: &[(&str, &Path)] = &[
            ("VALIDATOR", p),
            ("COMPAT_EXEC", p),
            ("BUSYBOX_I386", p),
            ("BUSYBOX", p),
        ];
        let guests: [(&str, &[(&str, &Path)]); 5] = [
            ("validator.list", programs),
            ("criu.list", &[]),
            ("shell.list", shell),
            ("selftests.list", &[("BUSYBOX", p)]),
            ("e2e/fake.list", &[("BUSYBOX", p), ("FAKE_INIT", p)]),
        ];
        for (list, vars) in guests {
            let contents = Contents {
                lists: &[list],
                vars,
                extra: String::new(),
            };
            let spec = spec(&dir, &contents).unwrap();
            assert!(spec.starts_with("# Every guest"), "{list}: base.list first");
            let completes_a_guest = list == "criu.list";
            assert!(
                completes_a_guest || spec.contains("file /init "),
                "{list} has an /init"
            );
        }
    }

    #[test]
    fn an_unset_variable_is_named_with_its_list() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.list"), "dir /dev 0755 0 0\n").unwrap();
        std::fs::write(dir.path().join("g.list"), "file /init ${NOPE} 0755 0 0\n").unwrap();
        let contents = Contents {
            lists: &["g.list"],
            vars: &[("VALIDATOR", Path::new("/v"))],
            extra: String::new(),
        };
        let err = spec(dir.path(), &contents).unwrap_err().to_string();
        assert!(
            err.contains("g.list uses ${NOPE}") && err.contains("INITRAMFS, VALIDATOR"),
            "{err}"
        );
        assert_eq!(
            unset_var("a ${INITRAMFS}/b ${V}", &[("V", Path::new("/"))]),
            None
        );
    }

    #[test]
    fn a_missing_list_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let contents = Contents {
            lists: &[],
            vars: &[],
            extra: String::new(),
        };
        let err = format!("{:#}", spec(dir.path(), &contents).unwrap_err());
        assert!(err.contains("base.list"), "{err}");
    }

    #[test]
    fn detects_dynamic_executables() {
        let ls = std::fs::read("/bin/ls").unwrap();
        assert!(has_interpreter(&ls), "/bin/ls is dynamically linked");
        assert!(!has_interpreter(b"\x7fELF short"));
    }
}
