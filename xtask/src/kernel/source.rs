//! Kernel sources. Whatever the provider (Debian's linux-source-6.12, a
//! tarball, a developer's tree), its content is imported into a git
//! repository under target/: its commit is "vanilla", its tree hash the
//! source identity, and the patched tree is a worktree of the same repo.
//! The user's own tree or tarball is only ever read.

use crate::host::deps::{self, Need};
use crate::host::paths;
use crate::host::process::Cmd;
use crate::kernel::git::git;
use crate::kernel::{Flavour, Variant};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const DEBIAN_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
pub const DEBIAN_PACKAGE: &str = "linux-source-6.12";

#[derive(Debug, Clone)]
pub enum Provider {
    DebianPackage,
    Tarball(PathBuf),
    Tree(PathBuf),
}

impl Provider {
    /// A developer's tree, a release tarball, or (neither) Debian's package.
    pub fn new(kernel_src: Option<&Path>, kernel_tarball: Option<&Path>) -> Result<Provider> {
        let canonical = |p: &Path, what: &str| {
            p.canonicalize()
                .with_context(|| format!("{what} {} does not exist", p.display()))
        };
        Ok(match (kernel_src, kernel_tarball) {
            (Some(dir), _) => {
                let dir = canonical(dir, "--kernel-src")?;
                if !dir.join("Makefile").is_file() || !dir.join("arch/x86").is_dir() {
                    bail!(
                        "--kernel-src {} is not a Linux source tree (no Makefile or arch/x86)",
                        dir.display()
                    );
                }
                Provider::Tree(dir)
            }
            (None, Some(file)) => Provider::Tarball(canonical(file, "--kernel-tarball")?),
            (None, None) => Provider::DebianPackage,
        })
    }

    /// What the host must have for this source (beyond the build tools).
    pub fn needs(&self) -> Vec<Need> {
        match self {
            Provider::DebianPackage => vec![deps::file(DEBIAN_TARBALL, DEBIAN_PACKAGE)],
            Provider::Tarball(_) | Provider::Tree(_) => Vec::new(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Provider::DebianPackage => "debian-package",
            Provider::Tarball(_) => "tarball",
            Provider::Tree(_) => "tree",
        }
    }

    pub fn origin(&self) -> PathBuf {
        match self {
            Provider::DebianPackage => PathBuf::from(DEBIAN_TARBALL),
            Provider::Tarball(p) | Provider::Tree(p) => p.clone(),
        }
    }

    /// The folder under target/kernel/ for this source: stable per origin.
    pub fn slug(&self) -> String {
        let origin = self.origin();
        let stem = origin
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .replace(".tar", "")
                    .replace(['.', ' '], "-")
            })
            .unwrap_or_default();
        let tag = &format!(
            "{:x}",
            Sha256::digest(origin.as_os_str().as_encoded_bytes())
        )[..8];
        format!("{}-{stem}-{tag}", self.kind())
    }
}

/// What was built from: recorded in every report.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SourceInfo {
    pub provider: String,
    pub origin: String,
    /// VERSION.PATCHLEVEL.SUBLEVEL from the top Makefile (plus EXTRAVERSION).
    pub version: String,
    /// Git tree hash of the imported vanilla content.
    pub tree_id: String,
    /// The vanilla commit in the import repository.
    #[serde(skip)]
    pub commit: String,
    /// What the source was when imported: a tarball, or a `--kernel-src`
    /// tree with its git state (a tree with uncommitted changes says so).
    pub tree_state: String,
}

/// The kernel release the series is written against.
pub const SERIES_BASE: &str = "6.12";

/// The series applies to 6.12.y only: another release is refused before
/// anything is built.
pub fn check_series_base(version: &str) -> Result<()> {
    let mut parts = version.split(['.', '-']);
    let base = format!(
        "{}.{}",
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default()
    );
    if base != SERIES_BASE {
        bail!(
            "this series is against {SERIES_BASE}; the tree is {version} \
             (use Linux {SERIES_BASE}.y: Debian's linux-source-{SERIES_BASE}, a linux-{SERIES_BASE}.N tarball or a checkout of linux-{SERIES_BASE}.y)"
        );
    }
    Ok(())
}

/// The state of a `--kernel-src` tree: its git commit and whether it has
/// uncommitted changes (which are built all the same), or that it is not a
/// git checkout.
pub fn tree_state(dir: &Path) -> String {
    let git_here = |args: &[&str]| git(dir).args(args).read().ok();
    let Some(head) = git_here(&["rev-parse", "--short=12", "HEAD"]) else {
        return "not a git checkout (its state cannot be named)".into();
    };
    let head = head.trim();
    let changes: Vec<String> = git_here(&["status", "--porcelain"])
        .unwrap_or_default()
        .lines()
        .map(|l| l.get(3..).unwrap_or(l).to_string())
        .collect();
    match changes.len() {
        0 => format!("git {head}, clean"),
        n => format!(
            "git {head} with {n} uncommitted change(s), built as they are: {}{}",
            changes
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if n > 5 { ", ..." } else { "" }
        ),
    }
}

/// The commit a `--kernel-src` tree is at, if it is a git checkout with
/// nothing uncommitted (else no commit is what the series was tested on).
pub fn clean_head(dir: &Path) -> Option<String> {
    let git_here = |args: &[&str]| git(dir).args(args).read().ok();
    let head = git_here(&["rev-parse", "--verify", "HEAD^{commit}"])?;
    let status = git_here(&["status", "--porcelain"])?;
    status.trim().is_empty().then(|| head.trim().to_string())
}

/// The on-disk layout for one source. Vanilla and patched each have `src`
/// and `build` side by side, so relative paths from a build dir to its
/// sources are the same for both (ccache then shares objects between them).
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(provider: &Provider) -> Layout {
        Layout {
            dir: paths::kernels().join(provider.slug()),
        }
    }
    pub fn src(&self, variant: Variant) -> PathBuf {
        self.dir.join(variant.name()).join("src")
    }
    pub fn build(&self, variant: Variant) -> PathBuf {
        self.build_for(variant, Flavour::Default)
    }
    /// One build directory per flavour, so that a debug build never
    /// replaces the default one (they share ccache all the same).
    pub fn build_for(&self, variant: Variant, flavour: Flavour) -> PathBuf {
        self.dir
            .join(variant.name())
            .join(format!("build{}", flavour.suffix()))
    }
    /// A further tree (or build) beside vanilla and patched, e.g. "bisect".
    pub fn extra(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    /// Says which series the patched tree holds (written once it applied).
    pub fn applied_series_stamp(&self) -> PathBuf {
        self.dir.join("patched").join("applied-series")
    }
}

/// The vanilla tree after `import`, and whether this call unpacked or copied it.
pub struct Imported {
    pub info: SourceInfo,
    pub refreshed: bool,
}

/// Brings the vanilla tree up to date with the provider; cheap when nothing changed.
pub fn import(provider: &Provider, layout: &Layout) -> Result<Imported> {
    let src = layout.src(Variant::Vanilla);
    std::fs::create_dir_all(layout.logs())?;
    let log = layout.logs().join("import.log");
    let refreshed = match provider {
        Provider::DebianPackage | Provider::Tarball(_) => {
            import_tarball(&provider.origin(), &src, &log)?
        }
        Provider::Tree(dir) => {
            import_tree(dir, &src, &log)?;
            true
        }
    };
    let commit = git(&src)
        .args(["rev-parse", "HEAD"])
        .read()?
        .trim()
        .to_string();
    let tree_id = git(&src)
        .args(["rev-parse", "HEAD^{tree}"])
        .read()?
        .trim()
        .to_string();
    let info = SourceInfo {
        provider: provider.kind().to_string(),
        origin: provider.origin().display().to_string(),
        version: kernel_version(&src)?,
        tree_id,
        commit,
        tree_state: match provider {
            Provider::Tree(dir) => tree_state(dir),
            _ => format!("release tarball {}", provider.origin().display()),
        },
    };
    Ok(Imported { info, refreshed })
}

/// Unpacks a tarball once; its path, size and mtime say whether it changed.
/// True if it unpacked.
fn import_tarball(tarball: &Path, src: &Path, log: &Path) -> Result<bool> {
    let meta = std::fs::metadata(tarball)
        .with_context(|| format!("cannot read kernel tarball {}", tarball.display()))?;
    let mtime = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let stamp_value = format!("{} {} {mtime}\n", tarball.display(), meta.len());
    let stamp = src.join(".git").join("xtask-imported");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(stamp_value.as_str()) {
        return Ok(false);
    }
    if src.exists() {
        std::fs::remove_dir_all(src).with_context(|| format!("cannot remove {}", src.display()))?;
    }
    std::fs::create_dir_all(src)?;
    // Every kernel tarball has one top-level directory (linux-6.12.1/, linux-source-6.12/).
    Cmd::new("tar")
        .arg("-xf")
        .arg(tarball)
        .arg("--strip-components=1")
        .arg("-C")
        .arg(src)
        .logged(log)
        .with_context(|| format!("unpacking {}", tarball.display()))?;
    if !src.join("Makefile").is_file() {
        bail!(
            "{} did not unpack to a kernel tree (no top-level Makefile)",
            tarball.display()
        );
    }
    commit_import(src, log, &format!("vanilla: {}", tarball.display()))?;
    std::fs::write(&stamp, stamp_value)?;
    Ok(true)
}

/// Mirrors a developer's tree (working files, without .git) and commits
/// the result if it changed. rsync keeps mtimes, so builds stay incremental.
fn import_tree(dir: &Path, src: &Path, log: &Path) -> Result<()> {
    std::fs::create_dir_all(src)?;
    let mut from = dir.as_os_str().to_owned();
    from.push("/");
    Cmd::new("rsync")
        .args(["-a", "--delete", "--exclude=/.git"])
        .arg(from)
        .arg(src)
        .logged(log)
        .with_context(|| format!("copying kernel tree {}", dir.display()))?;
    commit_import(src, log, &format!("vanilla: {}", dir.display()))
}

fn commit_import(src: &Path, log: &Path, message: &str) -> Result<()> {
    if !src.join(".git").exists() {
        git(src).args(["init", "--quiet"]).logged(log)?;
    }
    // -f: Debian's tree ships a .gitignore that would hide sources; we want
    // exactly what is on disk.
    git(src)
        .args(["add", "--all", "--force", "."])
        .logged(log)?;
    let unchanged = git(src)
        .args(["diff", "--cached", "--quiet", "HEAD"])
        .succeeds();
    if !unchanged {
        git(src)
            .args(["commit", "--quiet", "--allow-empty", "-m", message])
            .logged(log)?;
    }
    Ok(())
}

/// "6.12.117" from the top-level Makefile.
pub fn kernel_version(src: &Path) -> Result<String> {
    let makefile = std::fs::read_to_string(src.join("Makefile"))
        .with_context(|| format!("cannot read {}/Makefile", src.display()))?;
    parse_version(&makefile).with_context(|| format!("no VERSION in {}/Makefile", src.display()))
}

fn parse_version(makefile: &str) -> Option<String> {
    let field = |name: &str| {
        makefile.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    Some(format!(
        "{}.{}.{}{}",
        field("VERSION")?,
        field("PATCHLEVEL")?,
        field("SUBLEVEL")?,
        field("EXTRAVERSION").unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_makefile() {
        let mk = "# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\nNAME = Baby Opossum Posse\n";
        assert_eq!(parse_version(mk).as_deref(), Some("6.12.117"));
        let mk = "VERSION = 6\nPATCHLEVEL = 13\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n";
        assert_eq!(parse_version(mk).as_deref(), Some("6.13.0-rc3"));
        assert_eq!(parse_version("nothing"), None);
    }

    #[test]
    fn only_6_12_y_is_accepted() {
        for ok in ["6.12.117", "6.12.0", "6.12.3-rc1", "6.12"] {
            assert!(check_series_base(ok).is_ok(), "{ok}");
        }
        let err = check_series_base("6.13.0").unwrap_err().to_string();
        assert!(
            err.starts_with("this series is against 6.12; the tree is 6.13.0"),
            "{err}"
        );
        for bad in ["6.1.120", "6.6.63", "5.12.0", "6.120.0"] {
            assert!(check_series_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tree_with_uncommitted_changes_says_so() {
        let dir = tempfile::tempdir().unwrap();
        assert!(tree_state(dir.path()).starts_with("not a git checkout"));
        let run = |args: &[&str]| git(dir.path()).args(args).read().unwrap();
        run(&["init", "--quiet"]);
        std::fs::write(dir.path().join("Makefile"), "VERSION = 6\n").unwrap();
        run(&["add", "Makefile"]);
        run(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "--quiet",
            "-m",
            "x",
        ]);
        assert!(
            tree_state(dir.path()).ends_with(", clean"),
            "{}",
            tree_state(dir.path())
        );
        std::fs::write(dir.path().join("Makefile"), "VERSION = 7\n").unwrap();
        std::fs::write(dir.path().join("new.c"), "").unwrap();
        let state = tree_state(dir.path());
        assert!(
            state.contains("with 2 uncommitted change(s), built as they are: Makefile, new.c"),
            "{state}"
        );
    }

    #[test]
    fn slugs_differ_per_origin_and_name_the_provider() {
        let a = Provider::Tarball("/x/linux-6.12.1.tar.xz".into()).slug();
        let b = Provider::Tarball("/y/linux-6.12.1.tar.xz".into()).slug();
        assert_ne!(a, b);
        assert!(a.starts_with("tarball-linux-6-12-1-xz-"), "{a}");
        assert!(Provider::DebianPackage
            .slug()
            .starts_with("debian-package-linux-source-6-12"));
        assert!(Provider::Tree("/src/linux".into())
            .slug()
            .starts_with("tree-linux-"));
    }
}
