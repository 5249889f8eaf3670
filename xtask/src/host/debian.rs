//! Debian packages of another architecture (the guest's i386 busybox),
//! fetched without changing the host's dpkg configuration: apt runs with a
//! private state, cache and copy of the host's sources under
//! `target/debian-ARCH/`, with ARCH as its only architecture, and the
//! package is unpacked with `dpkg-deb -x`, never installed.
//!
//! The private package lists are refreshed (`apt-get update`) only when
//! there are none yet or when a download fails with the lists there are;
//! an unpacked package is stamped with the file it came from, and a
//! stamped package costs no apt call at all.

use crate::host::paths;
use crate::host::process::{self, Cmd};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A package of a foreign architecture, e.g. `busybox-static` for `i386`.
#[derive(Clone, Copy, Debug)]
pub struct Foreign {
    pub name: &'static str,
    pub arch: &'static str,
}

impl Foreign {
    /// `name:arch`, as apt spells it.
    pub fn spec(&self) -> String {
        format!("{}:{}", self.name, self.arch)
    }
}

/// The i386 busybox the guests run through compat-exec.
pub const BUSYBOX_I386: Foreign = Foreign {
    name: "busybox-static",
    arch: "i386",
};

/// Where the host's apt sources are read from (copied, never changed).
const HOST_SOURCES: &str = "/etc/apt/sources.list";
const HOST_SOURCE_PARTS: &str = "/etc/apt/sources.list.d";

/// A package unpacked under target/.
pub struct Unpacked {
    /// The `dpkg-deb -x` root: the package's files, e.g. `root/bin/busybox`.
    pub root: PathBuf,
    /// The .deb file it came from, e.g. `busybox-static_1%3a1.35.0-4+b3_i386.deb`.
    pub deb: String,
    /// False if it was already there (stamped): no apt call was made.
    pub fetched: bool,
}

/// The package unpacked; fetched and unpacked unless stamped.
pub fn unpacked(package: Foreign) -> Result<Unpacked> {
    let apt = PrivateApt::new(package.arch);
    let dir = apt.dir.join(package.name);
    let root = dir.join("root");
    let stamp = dir.join("stamp");
    let stamped = std::fs::read_to_string(&stamp).unwrap_or_default();
    if !stamped.trim().is_empty() && root.is_dir() {
        return Ok(Unpacked {
            root,
            deb: stamped.trim().to_string(),
            fetched: false,
        });
    }
    let _ = std::fs::remove_file(&stamp);
    apt.prepare()?;
    let deb = apt.download(package, &dir)?;
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot remove {}", root.display()))?;
    }
    Cmd::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root)
        .logged(&apt.log)
        .with_context(|| format!("unpacking {}", deb.display()))?;
    let name = deb
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    std::fs::write(&stamp, format!("{name}\n"))
        .with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(Unpacked {
        root,
        deb: name,
        fetched: true,
    })
}

/// A Debian source package at one version, e.g. `qemu` `1:7.2+dfsg-7+deb12u18`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub version: String,
}

/// The source package (and version) that built the installed file `path`.
pub fn source_of_file(path: &Path) -> Result<Source> {
    let owners = Cmd::new("dpkg-query")
        .arg("-S")
        .arg(path)
        .read()
        .with_context(|| format!("{} belongs to no Debian package", path.display()))?;
    let binary = package_of_search(&owners)
        .with_context(|| format!("cannot read dpkg-query -S {}: {owners:?}", path.display()))?;
    let fields = Cmd::new("dpkg-query")
        .args(["-W", "-f", "${source:Package} ${source:Version}", &binary])
        .read()
        .with_context(|| format!("cannot read the source package of {binary}"))?;
    match fields.split_whitespace().collect::<Vec<_>>()[..] {
        [name, version] => Ok(Source {
            name: name.into(),
            version: version.into(),
        }),
        _ => bail!("dpkg-query gave no source package for {binary}: {fields:?}"),
    }
}

/// The first package of `dpkg-query -S` output (`pkg[, pkg2]: /path`),
/// skipping diversion lines.
fn package_of_search(text: &str) -> Option<String> {
    let line = text.lines().find(|l| !l.starts_with("diversion "))?;
    let (packages, path) = line.split_once(": ")?;
    if !path.starts_with('/') {
        return None;
    }
    let first = packages.split(", ").next()?.trim();
    (!first.is_empty()).then(|| first.to_string())
}

/// The file `member` (a path below the top folder of the upstream tarball,
/// e.g. `include/qemu/qemu-plugin.h`) of `source`, from its orig tarball
/// fetched with `apt-get source --download-only` into a private apt state
/// under `target/debian-src/`; extracted once and kept, the download
/// removed. Refuses when Debian's own patches change the file (the
/// upstream copy would then not be what the binary was built from).
pub fn orig_member(source: &Source, member: &str) -> Result<PathBuf> {
    let apt = PrivateApt::for_sources();
    let dir = apt.dir.join(format!(
        "{}_{}",
        source.name,
        source.version.replace(':', "%3a")
    ));
    let file = dir.join("files").join(member);
    if file.is_file() {
        return Ok(file);
    }
    apt.prepare()?;
    let spec = format!("{}={}", source.name, source.version);
    let download = dir.join("download");
    apt.fetch_into(&["source", "--download-only", &spec], &spec, &download)?;
    let debian = file_containing(&download, ".debian.tar.")?;
    let patches = Cmd::new("tar")
        .arg("-xOf")
        .arg(&debian)
        .args(["--wildcards", "debian/patches/*"])
        .read_bytes()
        .with_context(|| format!("cannot read the patches of {}", debian.display()))?;
    if String::from_utf8_lossy(&patches).contains(&format!("/{member}")) {
        bail!(
            "Debian's patches of {spec} change {member}: the upstream file is not what was built"
        );
    }
    let files = dir.join("files");
    let orig = file_containing(&download, ".orig.tar.")?;
    std::fs::create_dir_all(&files)
        .with_context(|| format!("cannot create {}", files.display()))?;
    Cmd::new("tar")
        .arg("-xf")
        .arg(&orig)
        .arg("-C")
        .arg(&files)
        .args([
            "--wildcards",
            "--strip-components=1",
            &format!("*/{member}"),
        ])
        .read()
        .with_context(|| format!("cannot extract {member} from {}", orig.display()))?;
    anyhow::ensure!(file.is_file(), "{} has no {member}", orig.display());
    let _ = std::fs::remove_dir_all(&download);
    Ok(file)
}

/// The one file in `dir` whose name contains `part`.
fn file_containing(dir: &Path, part: &str) -> Result<PathBuf> {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(part))
        })
        .collect();
    match &found[..] {
        [one] => Ok(one.clone()),
        _ => bail!(
            "want one *{part}* file in {}, found {found:?}",
            dir.display()
        ),
    }
}

/// apt-get with its own state, cache and sources for one architecture.
struct PrivateApt {
    dir: PathBuf,
    arch: &'static str,
    log: PathBuf,
    /// Source packages too: every `deb` entry of the host gets its `deb-src` twin.
    deb_src: bool,
}

impl PrivateApt {
    fn new(arch: &'static str) -> PrivateApt {
        let dir = paths::target().join(format!("debian-{arch}"));
        let log = dir.join("apt.log");
        PrivateApt {
            dir,
            arch,
            log,
            deb_src: false,
        }
    }

    /// For source packages (`apt-get source`), in `target/debian-src/`.
    fn for_sources() -> PrivateApt {
        let dir = paths::target().join("debian-src");
        let log = dir.join("apt.log");
        PrivateApt {
            dir,
            arch: "amd64",
            log,
            deb_src: true,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.join("apt/state")
    }

    fn sources(&self) -> PathBuf {
        self.dir.join("apt/sources.list.d")
    }

    /// The `-o` options that make apt-get use only our folders.
    fn options(&self) -> Vec<String> {
        let cache = self.dir.join("apt/cache");
        [
            format!("Dir::State={}", self.state().display()),
            format!(
                "Dir::State::status={}",
                self.state().join("status").display()
            ),
            format!("Dir::Cache={}", cache.display()),
            "Dir::Etc::sourcelist=/dev/null".to_string(),
            format!("Dir::Etc::sourceparts={}", self.sources().display()),
            format!("APT::Architecture={}", self.arch),
            format!("APT::Architectures::={}", self.arch),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    fn apt_get(&self, args: &[&str]) -> Cmd {
        Cmd::new("apt-get")
            .args(self.options())
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
    }

    /// Creates the folders, an empty dpkg status and a copy of the host's
    /// sources (every run: the host's sources may have changed).
    fn prepare(&self) -> Result<()> {
        for dir in [
            self.state().join("lists/partial"),
            self.dir.join("apt/cache/archives/partial"),
            self.sources(),
        ] {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let status = self.state().join("status");
        if !status.exists() {
            std::fs::write(&status, "")
                .with_context(|| format!("cannot create {}", status.display()))?;
        }
        process::create_log(&self.log)?;
        copy_sources(&self.sources(), self.deb_src)
    }

    /// True if `apt-get update` has stored package lists here (source
    /// lists when sources are wanted).
    fn has_lists(&self) -> bool {
        let suffix = if self.deb_src {
            "_Sources"
        } else {
            "_Packages"
        };
        std::fs::read_dir(self.state().join("lists")).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(suffix))
        })
    }

    fn update(&self) -> Result<()> {
        let cmd = self.apt_get(&["update"]);
        cmd.logged(&self.log).with_context(|| {
            format!(
                "apt-get update of the private {} package lists failed; the command was:\n  {cmd}",
                self.arch
            )
        })
    }

    /// Downloads `package` into `dir`; returns the .deb.
    fn download(&self, package: Foreign, dir: &Path) -> Result<PathBuf> {
        let spec = package.spec();
        self.fetch_into(&["download", &spec], &spec, dir)?;
        newest_deb(dir, package)
    }

    /// Runs `apt-get ARGS` in `dir` to fetch `what`. Updates the lists
    /// first if there are none, or once more if the fetch fails.
    fn fetch_into(&self, args: &[&str], what: &str, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut updated = false;
        if !self.has_lists() {
            self.update()?;
            updated = true;
        }
        let cmd = self.apt_get(args).dir(dir);
        let mut result = cmd.logged(&self.log);
        if result.is_err() && !updated {
            self.update()?;
            result = cmd.logged(&self.log);
        }
        result.with_context(|| {
            format!(
                "cannot fetch the Debian package {what}; the command was (in {}):\n  {cmd}\n(log: {})",
                dir.display(),
                self.log.display()
            )
        })
    }
}

/// Copies the host's apt sources (`sources.list` and the `*.list` and
/// `*.sources` files of `sources.list.d`) into `to`, replacing what is
/// there; with `deb_src`, each `deb` entry also as `deb-src` (the host's
/// own mirrors, whatever they are: no host name is written here).
fn copy_sources(to: &Path, deb_src: bool) -> Result<()> {
    for old in std::fs::read_dir(to).with_context(|| format!("cannot read {}", to.display()))? {
        let old = old?.path();
        std::fs::remove_file(&old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(HOST_SOURCE_PARTS)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| is_source_file(p));
    if Path::new(HOST_SOURCES).is_file() {
        found.push(HOST_SOURCES.into());
    }
    if found.is_empty() {
        bail!("no apt sources on this host ({HOST_SOURCES}, {HOST_SOURCE_PARTS}/*.sources): apt cannot fetch Debian packages");
    }
    for source in found {
        let name = source.file_name().context("a source file has a name")?;
        let copy = to.join(name);
        let text = std::fs::read_to_string(&source)
            .with_context(|| format!("cannot read {}", source.display()))?;
        let text = match (deb_src, source.extension().is_some_and(|e| e == "sources")) {
            (false, _) => text,
            (true, true) => with_deb_src_deb822(&text),
            (true, false) => with_deb_src_one_line(&text),
        };
        std::fs::write(&copy, text).with_context(|| format!("cannot write {}", copy.display()))?;
    }
    Ok(())
}

/// deb822 (`*.sources`): `Types: deb` becomes `Types: deb deb-src`.
fn with_deb_src_deb822(text: &str) -> String {
    let lines = text.lines().map(|line| match line.strip_prefix("Types:") {
        Some(types) if !types.split_whitespace().any(|t| t == "deb-src") => {
            format!("Types:{types} deb-src")
        }
        _ => line.to_string(),
    });
    lines.collect::<Vec<_>>().join("\n") + "\n"
}

/// One-line style (`*.list`): every `deb ...` line gets a `deb-src ...` twin.
fn with_deb_src_one_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if let Some(rest) = line.trim_start().strip_prefix("deb ") {
            out.push_str(&format!("deb-src {rest}\n"));
        }
    }
    out
}

/// apt reads only these names in sources.list.d (others, e.g. `*.disabled`, are ignored).
fn is_source_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "list" || e == "sources")
}

/// The .deb of `package` in `dir` (apt-get download names it
/// `NAME_VERSION_ARCH.deb`); the newest by modification time if several.
fn newest_deb(dir: &Path, package: Foreign) -> Result<PathBuf> {
    let prefix = format!("{}_", package.name);
    let suffix = format!("_{}.deb", package.arch);
    let mut debs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && n.ends_with(&suffix)
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    debs.sort();
    match debs.pop() {
        Some((_, deb)) => Ok(deb),
        None => bail!(
            "apt-get download {} succeeded but left no {prefix}*{suffix} in {}",
            package.spec(),
            dir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_options_point_only_at_private_folders() {
        let apt = PrivateApt::new("i386");
        let opts = apt.options();
        let values: Vec<&String> = opts.iter().skip(1).step_by(2).collect();
        assert!(opts.iter().step_by(2).all(|o| o == "-o"));
        for v in &values {
            let private = v.contains(&*paths::target().to_string_lossy());
            let fixed = v.starts_with("APT::") || v.as_str() == "Dir::Etc::sourcelist=/dev/null";
            assert!(private || fixed, "{v} leaves target/");
        }
        assert!(values
            .iter()
            .any(|v| v.as_str() == "APT::Architecture=i386"));
    }

    #[test]
    fn source_entries_get_deb_src_twins() {
        let deb822 = "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\n\nTypes: deb deb-src\nURIs: x\n";
        let out = with_deb_src_deb822(deb822);
        assert!(
            out.starts_with("Types: deb deb-src\nURIs: http://mirror.invalid/debian\n"),
            "{out}"
        );
        assert_eq!(
            out.matches("deb-src").count(),
            2,
            "no second deb-src: {out}"
        );
        let list =
            "# deb http://old\ndeb [arch=amd64] http://mirror.invalid/debian bookworm main\n";
        assert_eq!(
            with_deb_src_one_line(list),
            "# deb http://old\ndeb [arch=amd64] http://mirror.invalid/debian bookworm main\ndeb-src [arch=amd64] http://mirror.invalid/debian bookworm main\n"
        );
    }

    #[test]
    fn dpkg_search_output_names_the_first_package() {
        assert_eq!(
            package_of_search("qemu-system-x86: /usr/bin/qemu-system-x86_64\n").as_deref(),
            Some("qemu-system-x86")
        );
        assert_eq!(
            package_of_search("diversion by x from: /a\nlibc6:amd64, libc6-dev: /a\n").as_deref(),
            Some("libc6:amd64")
        );
        assert_eq!(package_of_search("dpkg-query: no path found\n"), None);
    }

    #[test]
    fn source_files_are_those_apt_reads() {
        assert!(is_source_file(Path::new("/x/debian.sources")));
        assert!(is_source_file(Path::new("/x/extra.list")));
        assert!(!is_source_file(Path::new(
            "/x/nodesource.sources.disabled-by-farm"
        )));
    }

    #[test]
    fn the_newest_matching_deb_is_chosen_and_its_absence_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = newest_deb(dir.path(), BUSYBOX_I386)
            .unwrap_err()
            .to_string();
        assert!(err.contains("busybox-static:i386"), "{err}");
        std::fs::write(dir.path().join("busybox-static_1_amd64.deb"), "").unwrap();
        std::fs::write(dir.path().join("busybox_1_i386.deb"), "").unwrap();
        assert!(newest_deb(dir.path(), BUSYBOX_I386).is_err());
        let good = dir.path().join("busybox-static_1%3a1.35.0-4+b3_i386.deb");
        std::fs::write(&good, "").unwrap();
        assert_eq!(newest_deb(dir.path(), BUSYBOX_I386).unwrap(), good);
    }
}
