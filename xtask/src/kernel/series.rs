//! The patch series: `series` lists patch files in order (quilt convention),
//! applied with `git apply` as commits on top of vanilla; the worktree only
//! moves once the whole series applied, so a half-applied series is never
//! built or reused.

use crate::kernel::git::git;
use crate::kernel::mail;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Patch {
    pub name: String,
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

impl Patch {
    /// The `Subject:` header, unfolded, without its `[PATCH ...]` prefix;
    /// None when the file has no mail header (a plain diff).
    pub fn subject(&self) -> Option<String> {
        subject_of(&String::from_utf8_lossy(&self.contents))
    }
}

/// Unlike `mail::Mail::parse`, any patch file with a `Subject:` header,
/// not only a git format-patch mail (a quilt patch has no mbox line).
fn subject_of(text: &str) -> Option<String> {
    let mut lines = text.lines().take_while(|l| !l.is_empty());
    let first = lines.find_map(|l| l.strip_prefix("Subject:"))?;
    // RFC 5322 folding: continuation lines start with white space.
    let mut subject = first.trim().to_string();
    for line in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        subject.push(' ');
        subject.push_str(line.trim());
    }
    Some(mail::strip_prefix(&subject).to_string())
}

#[derive(Debug, Clone)]
pub struct Series {
    pub dir: PathBuf,
    pub patches: Vec<Patch>,
}

impl Series {
    /// Reads `dir/series` and every patch it names.
    pub fn load(dir: &Path) -> Result<Series> {
        let list = dir.join("series");
        let text = std::fs::read_to_string(&list).with_context(|| {
            format!(
                "cannot read {} (the ordered list of patches)",
                list.display()
            )
        })?;
        let names = parse_series(&text).with_context(|| format!("in {}", list.display()))?;
        let patches = names
            .into_iter()
            .map(|(line, name)| {
                let path = dir.join(&name);
                let contents = std::fs::read(&path).with_context(|| {
                    format!(
                        "{}:{line} names {name}, which cannot be read",
                        list.display()
                    )
                })?;
                Ok(Patch {
                    name,
                    path,
                    contents,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Series {
            dir: dir.to_path_buf(),
            patches,
        })
    }

    /// Identity of the series: names and contents, in order.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for p in &self.patches {
            h.update(p.name.as_bytes());
            h.update([0]);
            h.update((p.contents.len() as u64).to_le_bytes());
            h.update(&p.contents);
        }
        format!("{:x}", h.finalize())
    }
}

/// `(line number, patch name)` for each entry. Quilt allows `-p1` after a
/// name; other options would change how a patch applies, so they are refused.
pub fn parse_series(text: &str) -> Result<Vec<(usize, String)>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default();
        if let Some(opt) = words.find(|w| *w != "-p1") {
            bail!(
                "line {}: option {opt} for {name} is not supported (only -p1)",
                i + 1
            );
        }
        if name.contains("..") || name.starts_with('/') {
            bail!(
                "line {}: {name} must be a file inside the series directory",
                i + 1
            );
        }
        out.push((i + 1, name.to_string()));
    }
    Ok(out)
}

/// Makes `worktree` exactly `base` plus the series, one commit per patch.
///
/// The commits are built in a private index (`git apply --cached`), so a
/// patch that does not apply leaves the worktree untouched, and the final
/// checkout rewrites only the files whose content changes: make then
/// rebuilds just what the edit really touched.
pub fn apply(worktree: &Path, base: &str, series: &Series, log: &Path) -> Result<()> {
    let scratch = tempfile::tempdir().context("creating a scratch index")?;
    let index = scratch.path().join("index");
    let with_index = |args: &[&str]| git(worktree).args(args).env("GIT_INDEX_FILE", &index);
    with_index(&["read-tree", base]).read()?;
    let mut head = base.to_string();
    for patch in &series.patches {
        let apply = with_index(&["apply", "--cached", "--verbose"]).arg(&patch.path);
        if let Err(err) = apply.read() {
            bail!(
                "patch {} does not apply (listed in {}):\n{err:#}\n\
                 Rebase or fix that patch; nothing of this series was applied.",
                patch.name,
                series.dir.join("series").display()
            );
        }
        let tree = with_index(&["write-tree"]).read()?;
        head = git(worktree)
            .args(["commit-tree", tree.trim(), "-p", &head, "-m"])
            .arg(&patch.name)
            .read()?
            .trim()
            .to_string();
    }
    git(worktree)
        .args(["checkout", "--quiet", "--force", "--detach", &head])
        .logged(log)?;
    git(worktree).args(["clean", "-fdxq"]).logged(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_comments_and_p1() {
        let text = "# the series\n0001-a.patch\n\n0002-b.patch -p1 # trailing\n";
        let got = parse_series(text).unwrap();
        assert_eq!(
            got,
            vec![(2, "0001-a.patch".into()), (4, "0002-b.patch".into())]
        );
    }

    #[test]
    fn empty_series_is_valid() {
        assert!(parse_series("# nothing yet\n\n").unwrap().is_empty());
    }

    #[test]
    fn refuses_options_and_paths_outside() {
        let err = parse_series("a.patch -p0\n").unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("-p0"), "{err}");
        assert!(parse_series("../x.patch\n").is_err());
        assert!(parse_series("/abs.patch\n").is_err());
    }

    #[test]
    fn subjects_are_unfolded_and_lose_their_prefix() {
        let mail = "From 1 Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\nSubject: [PATCH v2 02/10] x86/signal: Use the\n retcode when\n\tnot mapped\nDate: x\n\nbody\nSubject: no\n";
        assert_eq!(
            subject_of(mail).as_deref(),
            Some("x86/signal: Use the retcode when not mapped")
        );
        assert_eq!(subject_of("Subject: plain\n").as_deref(), Some("plain"));
        assert_eq!(subject_of("diff --git a/x b/x\n"), None);
        assert_eq!(subject_of("From: a\n\nSubject: in the body\n"), None);
    }

    #[test]
    fn hash_follows_order_and_contents() {
        let p = |name: &str, body: &str| Patch {
            name: name.into(),
            path: PathBuf::from(name),
            contents: body.as_bytes().to_vec(),
        };
        let s = |patches| Series {
            dir: PathBuf::new(),
            patches,
        };
        let ab = s(vec![p("a", "1"), p("b", "2")]).hash();
        assert_eq!(ab, s(vec![p("a", "1"), p("b", "2")]).hash());
        assert_ne!(ab, s(vec![p("b", "2"), p("a", "1")]).hash());
        assert_ne!(ab, s(vec![p("a", "1"), p("b", "3")]).hash());
        assert_ne!(s(vec![p("a", "12")]).hash(), s(vec![p("a1", "2")]).hash());
        assert_ne!(s(vec![]).hash(), ab);
    }

    #[test]
    fn a_missing_patch_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("series"),
            "0001-here.patch\n0002-gone.patch\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("0001-here.patch"), "x").unwrap();
        let err = format!("{:#}", Series::load(dir.path()).unwrap_err());
        assert!(err.contains("series:2 names 0002-gone.patch"), "{err}");
    }

    #[test]
    fn a_patch_that_does_not_apply_is_named_and_nothing_stays_applied() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join("f.c"), "one\ntwo\nthree\n").unwrap();
        let log = dir.path().join("log");
        let run = |args: &[&str]| git(&tree).args(args).read().unwrap();
        run(&["init", "-q"]);
        run(&["add", "-A"]);
        run(&["commit", "-qm", "base"]);
        let base = run(&["rev-parse", "HEAD"]).trim().to_string();

        let good = "--- a/f.c\n+++ b/f.c\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n";
        let bad = "--- a/f.c\n+++ b/f.c\n@@ -1,3 +1,3 @@\n one\n-zwei\n+ZWEI\n three\n";
        let patches = dir.path().join("patches");
        std::fs::create_dir(&patches).unwrap();
        std::fs::write(patches.join("series"), "1-good.patch\n2-bad.patch\n").unwrap();
        std::fs::write(patches.join("1-good.patch"), good).unwrap();
        std::fs::write(patches.join("2-bad.patch"), bad).unwrap();

        let series = Series::load(&patches).unwrap();
        let err = format!("{:#}", apply(&tree, &base, &series, &log).unwrap_err());
        assert!(err.contains("patch 2-bad.patch does not apply"), "{err}");
        assert!(
            err.contains("patch failed: f.c:1"),
            "names the file and hunk: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(tree.join("f.c")).unwrap(),
            "one\ntwo\nthree\n"
        );
        let head = run(&["rev-parse", "HEAD"]).trim().to_string();
        assert_eq!(
            head, base,
            "the good first patch is not left applied either"
        );

        std::fs::write(patches.join("series"), "1-good.patch\n").unwrap();
        let series = Series::load(&patches).unwrap();
        apply(&tree, &base, &series, &log).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.join("f.c")).unwrap(),
            "one\nTWO\nthree\n"
        );
        assert_eq!(run(&["log", "-1", "--format=%s"]).trim(), "1-good.patch");

        // Re-applying the same series leaves the file alone (no rebuild).
        let before = std::fs::metadata(tree.join("f.c"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        apply(&tree, &base, &series, &log).unwrap();
        let after = std::fs::metadata(tree.join("f.c"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after, "an unchanged file was rewritten");
    }
}
