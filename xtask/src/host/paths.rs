//! Every path the harness uses, anchored at the workspace root.

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the top-level Cargo.toml).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Cargo's target directory: everything the harness creates lives below it.
pub fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

pub fn default_series_dir() -> PathBuf {
    root().join("kernel-patches")
}

/// What goes into each guest: file lists and init scripts (initramfs/README.md).
pub fn initramfs_lists() -> PathBuf {
    root().join("initramfs")
}

/// What goes into every reproduction bundle as is: run.sh and the README
/// template (docs/bundle.md).
pub fn bundle_files() -> PathBuf {
    root().join("bundle")
}

/// Bundles written by `bundle` and `compare --bundle`, and their staging folder.
pub fn bundles() -> PathBuf {
    target().join("bundle")
}

/// Console lines allowed in a guest despite looking like a splat, with reasons.
pub fn splat_allowlist() -> PathBuf {
    root().join("qemu").join("splat-allowlist")
}

pub fn config_fragment() -> PathBuf {
    root().join("qemu").join("kernel.config")
}

/// The debug flavour's options, merged after `config_fragment()`.
pub fn debug_fragment() -> PathBuf {
    root().join("qemu").join("debug.config")
}

/// The criu flavour's options, merged after `config_fragment()`.
pub fn criu_fragment() -> PathBuf {
    root().join("qemu").join("criu.config")
}

/// Imported kernel sources and their build directories, one folder per source.
pub fn kernels() -> PathBuf {
    target().join("kernel")
}

/// Console logs, JSON reports and compare tables.
pub fn results() -> PathBuf {
    target().join("results")
}

pub fn ccache() -> PathBuf {
    target().join("ccache")
}
