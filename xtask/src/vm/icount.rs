//! The instruction-counting TCG plugin (`qemu/plugins/icount.c`): built
//! with gcc against the `qemu-plugin.h` of the installed QEMU, taken from
//! the Debian source package that built that QEMU (the header is in no
//! binary package, and QEMU loads only a plugin of its own API version),
//! and the QEMU arguments that load it.

use crate::host::debian::{self, Source};
use crate::host::paths;
use crate::host::process::Cmd;
use crate::vm::qemu::Qemu;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Where the header is inside QEMU's source.
const HEADER: &str = "include/qemu/qemu-plugin.h";

/// The built plugin and the QEMU source its header came from.
pub struct Plugin {
    pub so: PathBuf,
    pub qemu_source: Source,
}

/// The plugin's C source in the repository.
pub fn plugin_source() -> PathBuf {
    paths::root().join("qemu/plugins/icount.c")
}

/// Builds the plugin for `qemu` into target/icount/ (gcc takes well under
/// a second, so it is built every time; the header is fetched once).
pub fn build(qemu: &Qemu) -> Result<Plugin> {
    let binary = resolve(&qemu.path)?;
    ensure_plugin_support(&binary)?;
    let qemu_source = source_package(&binary)?;
    let header = debian::orig_member(&qemu_source, HEADER).with_context(|| {
        format!(
            "cannot get {HEADER} of {} {}",
            qemu_source.name, qemu_source.version
        )
    })?;
    let include = header.parent().context("the header has a folder")?;
    let out = paths::target().join("icount");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let so = out.join("icount.so");
    Cmd::new("gcc")
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-I",
        ])
        .arg(include)
        .arg("-o")
        .arg(&so)
        .arg(plugin_source())
        .read()
        .context(
            "building the TCG plugin qemu/plugins/icount.c failed (it needs gcc and libc6-dev)",
        )?;
    Ok(Plugin { so, qemu_source })
}

/// The Debian source package that built `qemu`, whose qemu-plugin.h the
/// plugin is built against.
pub fn qemu_source(qemu: &Qemu) -> Result<Source> {
    source_package(&resolve(&qemu.path)?)
}

fn source_package(binary: &Path) -> Result<Source> {
    debian::source_of_file(binary).with_context(|| {
        format!(
            "the plugin is built against the qemu-plugin.h of the Debian source package of {}; \
             a QEMU that is not Debian's (QEMU=...) is not supported",
            binary.display()
        )
    })
}

/// `-plugin <so>,out=<samples>`: QEMU splits its options at commas, so
/// neither path may hold one.
pub fn qemu_args(plugin: &Plugin, samples: &Path) -> Result<Vec<String>> {
    let (so, out) = (
        plugin.so.display().to_string(),
        samples.display().to_string(),
    );
    if so.contains(',') || out.contains(',') {
        bail!("QEMU cannot take a path with a comma in -plugin: {so} / {out}; use a target directory without commas");
    }
    Ok(vec!["-plugin".into(), format!("{so},out={out}")])
}

/// `qemu` as a file: itself if it has a folder, else found on PATH.
fn resolve(qemu: &Path) -> Result<PathBuf> {
    if qemu.components().count() > 1 {
        return Ok(qemu.to_path_buf());
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|dir| dir.join(qemu))
        .find(|p| p.is_file())
        .with_context(|| format!("{} is not on PATH", qemu.display()))
}

/// A QEMU built with `--enable-plugins` carries the name of the function
/// it looks up in a plugin; one built without cannot load any.
fn ensure_plugin_support(binary: &Path) -> Result<()> {
    let bytes =
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    if !has_plugin_loader(&bytes) {
        bail!(
            "{} was built without TCG plugin support (no qemu_plugin_install in it): \
             instruction counts need a QEMU configured with --enable-plugins (Debian's is)",
            binary.display()
        );
    }
    Ok(())
}

fn has_plugin_loader(bytes: &[u8]) -> bool {
    let needle = b"qemu_plugin_install";
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qemu_without_the_plugin_loader_is_named() {
        assert!(has_plugin_loader(b"..\0qemu_plugin_install\0.."));
        assert!(!has_plugin_loader(b"qemu_plugin_instal"));
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("qemu-system-x86_64");
        std::fs::write(&fake, "no plugins here").unwrap();
        let err = ensure_plugin_support(&fake).unwrap_err().to_string();
        assert!(
            err.contains("without TCG plugin support") && err.contains("qemu-system-x86_64"),
            "{err}"
        );
    }

    #[test]
    fn plugin_paths_with_commas_are_refused() {
        let plugin = Plugin {
            so: "/t/icount.so".into(),
            qemu_source: Source {
                name: "qemu".into(),
                version: "1".into(),
            },
        };
        assert_eq!(
            qemu_args(&plugin, Path::new("/t/s.txt")).unwrap(),
            ["-plugin", "/t/icount.so,out=/t/s.txt"]
        );
        assert!(qemu_args(&plugin, Path::new("/t/a,b.txt")).is_err());
    }

    /// The C plugin spells the markers of contract::icount by hand.
    #[test]
    fn the_plugin_knows_the_contract_markers() {
        let c = std::fs::read_to_string(plugin_source()).unwrap();
        let magic = format!("#define MARKER_MAGIC {:#010x}u", contract::icount::MAGIC);
        let stop = format!("#define MARKER_STOP {:#x}u", contract::icount::STOP);
        assert!(c.contains(&magic), "want {magic}");
        assert!(c.contains(&stop), "want {stop}");
        assert!(c.contains("#define MARKER_OP_MASK 0x7fffu"));
    }
}
