//! Out-of-tree kernel builds (O=), cached by a key over everything that
//! goes into them: source identity, series, config fragment, compiler.

use crate::host::paths;
use crate::host::process::{self, Cmd};
use crate::kernel::kconfig;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct BuildInputs<'a> {
    pub src: &'a Path,
    pub build: &'a Path,
    pub tree_id: &'a str,
    pub series_hash: &'a str,
    /// The config fragment merged onto tinyconfig.
    pub fragment: &'a Path,
    pub jobs: usize,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Kernel {
    pub bzimage: PathBuf,
    /// What QEMU boots: the uncompressed ELF through its PVH entry
    /// (CONFIG_PVH), which skips the BIOS boot path and the decompressor:
    /// about 1 s less per TCG boot than bzImage.
    pub vmlinux: PathBuf,
    /// What to boot: `vmlinux`, or `bzimage` for a KASAN kernel, whose PVH
    /// entry runs instrumented code before KASAN's early shadow exists (the
    /// guest dies silently at once).
    pub boot_image: PathBuf,
    pub build_dir: PathBuf,
    pub build_key: String,
    pub config_hash: String,
    pub cached: bool,
    pub build_seconds: f64,
}

/// The cache key of a build: if it is unchanged, nothing is rebuilt.
pub fn build_key(tree_id: &str, series_hash: &str, fragment: &[u8], compiler: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        tree_id.as_bytes(),
        series_hash.as_bytes(),
        fragment,
        compiler.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    format!("{:x}", h.finalize())
}

pub fn compiler_version() -> Result<String> {
    let out = Cmd::new("gcc").arg("--version").read()?;
    Ok(out.lines().next().unwrap_or_default().to_string())
}

/// The kernel's make for one target, through ccache. CCACHE_BASEDIR is the
/// source's folder, which holds vanilla/{src,build} and patched/{src,build}:
/// paths relative to it match, so the two variants share cached objects.
pub fn make(src: &Path, build: &Path, jobs: usize, target: &str) -> Cmd {
    let base = build.parent().and_then(Path::parent).unwrap_or(build);
    Cmd::new("make")
        .arg("-C")
        .arg(src)
        .arg(format!("O={}", build.display()))
        .arg(format!("-j{jobs}"))
        .arg("CC=ccache gcc")
        .arg(target)
        .env("CCACHE_DIR", paths::ccache())
        .env("CCACHE_BASEDIR", base)
        .env("CCACHE_NOHASHDIR", "1")
        .env("CCACHE_MAXSIZE", "5G")
}

/// The build key of `inputs` (reads the fragment, asks gcc its version).
pub fn key_of(inputs: &BuildInputs) -> Result<String> {
    let fragment = std::fs::read(inputs.fragment)
        .with_context(|| format!("cannot read {}", inputs.fragment.display()))?;
    let options = kconfig::canonical(&String::from_utf8_lossy(&fragment));
    Ok(build_key(
        inputs.tree_id,
        inputs.series_hash,
        options.as_bytes(),
        &compiler_version()?,
    ))
}

/// Builds (or finds cached) the kernel `inputs` describe.
pub fn build(inputs: &BuildInputs) -> Result<Kernel> {
    let started = Instant::now();
    let fragment_path = inputs.fragment;
    let key = key_of(inputs)?;
    let build = inputs.build;
    std::fs::create_dir_all(build)?;
    let stamp = build.join(".xtask-build-key");
    let bzimage = build.join("arch/x86/boot/bzImage");
    let vmlinux = build.join("vmlinux");
    let cached =
        std::fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str()) && bzimage.is_file();
    if !cached {
        let _ = std::fs::remove_file(&stamp);
        let log = build.join("build.log");
        process::create_log(&log)?;
        let make = |target: &str| make(inputs.src, build, inputs.jobs, target);
        kconfig::configure(inputs.src, build, fragment_path, &log, &make)?;
        make("bzImage")
            .logged(&log)
            .with_context(|| format!("building the kernel in {}", build.display()))?;
        std::fs::write(&stamp, &key)?;
    }
    let mut kernel = described(build, &bzimage, &vmlinux, key)?;
    kernel.cached = cached;
    kernel.build_seconds = started.elapsed().as_secs_f64();
    Ok(kernel)
}

/// The kernel whose images and `.config` are in `dir` (a build dir, or a
/// shelf `keep` filled).
fn described(dir: &Path, bzimage: &Path, vmlinux: &Path, key: String) -> Result<Kernel> {
    let config_path = dir.join(".config");
    let config = std::fs::read(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let config_hash = format!("{:x}", Sha256::digest(&config));
    let kasan = String::from_utf8_lossy(&config)
        .lines()
        .any(|l| l == "CONFIG_KASAN=y");
    let boot_image = if kasan { bzimage } else { vmlinux }.to_path_buf();
    Ok(Kernel {
        bzimage: bzimage.to_path_buf(),
        vmlinux: vmlinux.to_path_buf(),
        boot_image,
        build_dir: dir.to_path_buf(),
        build_key: key,
        config_hash,
        cached: true,
        build_seconds: 0.0,
    })
}

/// What `keep` copies: enough to boot the kernel and to say how it was configured.
const KEPT_FILES: [&str; 3] = [".config", "bzImage", "vmlinux"];

/// Copies a built kernel's images into `shelf/<build key>/`, so its build
/// dir can move on to other inputs (the next prefix of a series) and this
/// kernel stays bootable; returns the kernel as it lies on the shelf.
pub fn keep(kernel: &Kernel, shelf: &Path) -> Result<Kernel> {
    let dir = shelf.join(&kernel.build_key);
    let partial = shelf.join(format!("{}.partial", kernel.build_key));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let sources = [
        kernel.build_dir.join(".config"),
        kernel.bzimage.clone(),
        kernel.vmlinux.clone(),
    ];
    for (name, from) in KEPT_FILES.iter().zip(&sources) {
        std::fs::copy(from, partial.join(name))
            .with_context(|| format!("cannot copy {} to {}", from.display(), partial.display()))?;
    }
    // Whole or absent: a run stopped mid-copy leaves only a .partial dir.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&partial, &dir)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), dir.display()))?;
    let mut kept = kept(shelf, &kernel.build_key)?
        .with_context(|| format!("{} is incomplete right after copying", dir.display()))?;
    kept.cached = kernel.cached;
    kept.build_seconds = kernel.build_seconds;
    Ok(kept)
}

/// The kernel `keep` put on `shelf` under `key`, if it is there whole.
pub fn kept(shelf: &Path, key: &str) -> Result<Option<Kernel>> {
    let dir = shelf.join(key);
    if !KEPT_FILES.iter().all(|name| dir.join(name).is_file()) {
        return Ok(None);
    }
    described(
        &dir,
        &dir.join("bzImage"),
        &dir.join("vmlinux"),
        key.to_string(),
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_kernel_survives_its_build_dir_and_is_whole_or_absent() {
        let tmp = tempfile::tempdir().unwrap();
        let build = tmp.path().join("build");
        std::fs::create_dir_all(build.join("arch/x86/boot")).unwrap();
        std::fs::write(build.join(".config"), "CONFIG_KASAN=y\n").unwrap();
        std::fs::write(build.join("arch/x86/boot/bzImage"), "bz").unwrap();
        std::fs::write(build.join("vmlinux"), "elf").unwrap();
        let shelf = tmp.path().join("shelf");
        assert!(kept(&shelf, "k1").unwrap().is_none());
        let built = described(
            &build,
            &build.join("arch/x86/boot/bzImage"),
            &build.join("vmlinux"),
            "k1".into(),
        )
        .unwrap();
        let on_shelf = keep(&built, &shelf).unwrap();
        std::fs::remove_dir_all(&build).unwrap();
        let found = kept(&shelf, "k1").unwrap().expect("kept");
        assert_eq!(found.bzimage, shelf.join("k1/bzImage"));
        assert_eq!(
            found.boot_image, found.bzimage,
            "a KASAN kernel boots bzImage"
        );
        assert_eq!(found.config_hash, on_shelf.config_hash);
        assert_eq!(std::fs::read(&found.bzimage).unwrap(), b"bz");
        std::fs::remove_file(shelf.join("k1/vmlinux")).unwrap();
        assert!(
            kept(&shelf, "k1").unwrap().is_none(),
            "incomplete is absent"
        );
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = build_key("tree", "series", b"CONFIG_A=y\n", "gcc 12");
        assert_eq!(base, build_key("tree", "series", b"CONFIG_A=y\n", "gcc 12"));
        assert_ne!(
            base,
            build_key("tree2", "series", b"CONFIG_A=y\n", "gcc 12")
        );
        assert_ne!(
            base,
            build_key("tree", "series2", b"CONFIG_A=y\n", "gcc 12")
        );
        assert_ne!(base, build_key("tree", "series", b"CONFIG_A=n\n", "gcc 12"));
        assert_ne!(base, build_key("tree", "series", b"CONFIG_A=y\n", "gcc 13"));
        // Field boundaries matter: moving a byte between inputs is a new key.
        assert_ne!(build_key("ab", "c", b"", ""), build_key("a", "bc", b"", ""));
    }
}
