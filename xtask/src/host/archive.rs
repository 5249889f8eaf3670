//! A reproducible .tar.gz: the same items give the same bytes (fixed
//! order, mtimes, owners and modes; gzip without name or timestamp). Used
//! for the reproduction bundle (docs/bundle.md).

use crate::host::process::Cmd;
use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// One file of the bundle, by its path inside the bundle's folder.
pub enum Item {
    /// A copy of a file the run used or produced.
    Copy { dest: String, source: PathBuf },
    /// Text made for the bundle (manifest, README, recorded arguments).
    Text { dest: String, text: String },
}

impl Item {
    pub fn copy(dest: impl Into<String>, source: impl Into<PathBuf>) -> Item {
        Item::Copy {
            dest: dest.into(),
            source: source.into(),
        }
    }

    pub fn text(dest: impl Into<String>, text: impl Into<String>) -> Item {
        Item::Text {
            dest: dest.into(),
            text: text.into(),
        }
    }

    fn dest(&self) -> &str {
        match self {
            Item::Copy { dest, .. } | Item::Text { dest, .. } => dest,
        }
    }
}

/// The only file packed executable (the bundle's replay script).
pub const EXECUTABLE: &str = "run.sh";

/// Writes `items` under `stage/<top>` (emptied first) with normalised
/// modes, then packs that folder into `out`: same items, same bytes.
pub fn write(items: &[Item], stage: &Path, top: &str, out: &Path) -> Result<()> {
    let root = stage.join(top);
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot empty {}", root.display()))?;
    }
    for item in items {
        place(item, &root)?;
    }
    pack(stage, top, out)
}

fn place(item: &Item, root: &Path) -> Result<()> {
    let dest = item.dest();
    if dest.starts_with('/') || dest.split('/').any(|part| part == ".." || part.is_empty()) {
        bail!("bundle path `{dest}` must be relative, without `..` or empty parts");
    }
    let path = root.join(dest);
    let parent = path.parent().expect("a bundle path has a parent");
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    match item {
        Item::Copy { source, .. } => std::fs::copy(source, &path).map(drop).with_context(|| {
            format!("cannot copy {} into the bundle as {dest}", source.display())
        })?,
        Item::Text { text, .. } => std::fs::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
    }
    Ok(())
}

/// Folders 0755, files 0644, run.sh 0755: the archive must not carry the
/// modes of whatever was copied in, nor the umask of who made it.
fn normalise_modes(dir: &Path) -> Result<()> {
    set_mode(dir, 0o755)?;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            normalise_modes(&path)?;
        } else {
            let executable = path.file_name().is_some_and(|n| n == EXECUTABLE);
            set_mode(&path, if executable { 0o755 } else { 0o644 })?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

/// `tar` with fixed order, mtimes and owners, compressed by `gzip -n` (no
/// name, no timestamp in the gzip header).
fn pack(stage: &Path, top: &str, out: &Path) -> Result<()> {
    normalise_modes(&stage.join(top))?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let tar = Cmd::new("tar")
        .args([
            "--format=gnu",
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--use-compress-program=gzip -n -9",
            "-cf",
        ])
        .arg(out)
        .arg("-C")
        .arg(stage)
        .arg(top)
        .env("LC_ALL", "C");
    if let Err(err) = tar.read_bytes() {
        let _ = std::fs::remove_file(out);
        return Err(err.context(format!("packing {}", out.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(dir: &Path) -> Vec<Item> {
        let kernel = dir.join("vmlinux");
        std::fs::write(&kernel, b"\x7fELF kernel bytes").unwrap();
        vec![
            Item::text("run.sh", "#!/usr/bin/env bash\n"),
            Item::copy("patched/vmlinux", &kernel),
            Item::text("manifest", "variants=patched\n"),
            Item::text("qemu/args", "-nodefaults\n"),
        ]
    }

    #[test]
    fn the_same_items_give_the_same_bytes_whatever_the_mtimes_modes_and_umask() {
        let dir = tempfile::tempdir().unwrap();
        let out1 = dir.path().join("one.tar.gz");
        let out2 = dir.path().join("two.tar.gz");
        let list = items(dir.path());
        write(&list, &dir.path().join("stage1"), "b", &out1).unwrap();
        // Another stage, another source mtime and mode, one second later.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"\x7fELF kernel bytes").unwrap();
        set_mode(&kernel, 0o700).unwrap();
        write(&items(dir.path()), &dir.path().join("stage2"), "b", &out2).unwrap();
        let (a, b) = (std::fs::read(&out1).unwrap(), std::fs::read(&out2).unwrap());
        assert!(a == b, "two bundles of the same items differ");

        let listing = Cmd::new("tar").arg("-tvzf").arg(&out1).read().unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert!(
            lines[0].starts_with("drwxr-xr-x 0/0") && lines[0].ends_with(" b/"),
            "{listing}"
        );
        let names: Vec<&str> = lines
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "b/",
                "b/manifest",
                "b/patched/",
                "b/patched/vmlinux",
                "b/qemu/",
                "b/qemu/args",
                "b/run.sh"
            ],
            "sorted by name"
        );
        assert!(
            listing.contains("-rwxr-xr-x 0/0") && listing.contains("1970-01-01 00:00 b/run.sh"),
            "{listing}"
        );
        assert!(
            listing.contains("-rw-r--r-- 0/0") && listing.contains(" b/patched/vmlinux"),
            "{listing}"
        );
    }

    #[test]
    fn a_missing_input_is_named_and_leaves_no_archive() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b.tar.gz");
        let err = write(
            &[Item::copy("vanilla/vmlinux", dir.path().join("nope"))],
            &dir.path().join("stage"),
            "b",
            &out,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("nope into the bundle as vanilla/vmlinux"),
            "{err:#}"
        );
        assert!(!out.exists());
        let err = write(
            &[Item::text("../escape", "x")],
            &dir.path().join("stage"),
            "b",
            &out,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("must be relative"), "{err:#}");
    }
}
