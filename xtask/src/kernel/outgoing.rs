//! The series as it goes out: every patch and the cover letter rewritten
//! for the sender (`mail`), the cover letter's shortlog, base and Cc, the
//! output folder, and a check that the mails apply as `git am` reads them.

use crate::kernel::git::git;
use crate::kernel::identity::{address_key, Person};
use crate::kernel::mail::{self, Body, Mail, PatchRewrite};
use crate::kernel::maintainers;
use crate::kernel::series::Series;
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;

/// The cover letter's file name in the series folder and in the output.
pub const COVER_LETTER: &str = "0000-cover-letter.patch";

/// What the series goes out with besides its patches.
pub struct Plan<'a> {
    pub sender: &'a Person,
    /// `PATCH v2`
    pub prefix: &'a str,
    /// The upstream commit the series applies to, if there is one.
    pub base_commit: Option<&'a str>,
    /// `Linux 6.12.117 (...)`: what the series was written and tested on.
    pub base: &'a str,
}

/// One mail to write: its file name and text.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub name: String,
    pub text: String,
}

/// The cover letter (`cover`, its table already in place) then the
/// patches, rewritten; `cc[i]` is what get_maintainer.pl named for patch `i`.
pub fn format(
    series: &Series,
    cover: &str,
    cc: &[Vec<String>],
    plan: &Plan,
) -> Result<Vec<Outgoing>> {
    ensure!(cc.len() == series.patches.len(), "one Cc list per patch");
    let total = series.patches.len();
    let mut patches = Vec::new();
    for (i, (patch, cc)) in series.patches.iter().zip(cc).enumerate() {
        let text = String::from_utf8(patch.contents.clone())
            .with_context(|| format!("{} is not UTF-8", patch.name))?;
        let mail = Mail::parse(&text).with_context(|| format!("in {}", patch.name))?;
        let mut cc = cc.clone();
        if mail::touched_files(&mail)
            .iter()
            .any(|f| maintainers::is_abi(f))
        {
            cc.push(maintainers::LINUX_API.to_string());
        }
        let how = PatchRewrite {
            sender: plan.sender,
            prefix: mail::subject_prefix(plan.prefix, i + 1, total),
            cc: &cc,
        };
        let out = mail::rewrite_patch(&mail, &how).with_context(|| format!("in {}", patch.name))?;
        patches.push((patch.name.clone(), out));
    }
    let letter = cover_letter(cover, &patches, plan).context("in the cover letter")?;
    let mut out = vec![Outgoing {
        name: COVER_LETTER.into(),
        text: letter.render(),
    }];
    out.extend(patches.into_iter().map(|(name, mail)| Outgoing {
        name,
        text: mail.render(),
    }));
    for mail in &out {
        no_placeholder_left(mail)?;
    }
    Ok(out)
}

/// The cover letter for `patches`: sender, subject prefix, base, shortlog,
/// and a Cc header with every patch's Cc (first seen first) and linux-api.
fn cover_letter(text: &str, patches: &[(String, Mail)], plan: &Plan) -> Result<Mail> {
    let mut letter = Mail::parse(text)?;
    let body = with_shortlog(&letter.body, patches, plan.sender)?;
    letter.body = with_base(&body, plan);
    letter.set_header("From", mail::header_address(plan.sender));
    let title = letter.title()?;
    let prefix = mail::subject_prefix(plan.prefix, 0, patches.len());
    letter.set_header("Subject", format!("{prefix} {title}"));
    let mut cc: Vec<String> = Vec::new();
    let every = patches.iter().flat_map(|(_, m)| mail::cc_of(m));
    for address in every.chain([maintainers::LINUX_API.to_string()]) {
        if !cc.iter().any(|c| address_key(c) == address_key(&address)) {
            cc.push(address);
        }
    }
    letter.set_header("Cc", cc.join(", "));
    Ok(letter)
}

/// The shortlog (`Author (n):` and the indented titles, as git shortlog
/// wraps them) rebuilt from the rewritten patches.
fn with_shortlog(body: &str, patches: &[(String, Mail)], sender: &Person) -> Result<String> {
    let lines: Vec<&str> = body.lines().collect();
    let start = lines
        .iter()
        .position(|l| is_shortlog_head(l))
        .context("no shortlog (a `Name (N):` line)")?;
    let end = start
        + lines[start..]
            .iter()
            .position(|l| l.starts_with(' ') && l.contains(" | "))
            .context("no diffstat after the shortlog")?;
    let mut authors: Vec<(String, Vec<String>)> = Vec::new();
    for (_, mail) in patches {
        let author = Body::parse(&mail.body)
            .in_body_from
            .and_then(|who| Person::parse(&who))
            .unwrap_or_else(|| sender.clone());
        match authors.iter_mut().find(|(name, _)| *name == author.name) {
            Some((_, titles)) => titles.push(mail.title()?),
            None => authors.push((author.name, vec![mail.title()?])),
        }
    }
    authors.sort_by(|a, b| a.0.cmp(&b.0));
    let groups: Vec<String> = authors
        .iter()
        .map(|(name, titles)| {
            let wrapped: Vec<String> = titles.iter().map(|t| wrap_title(t)).collect();
            format!("{name} ({}):\n{}\n", titles.len(), wrapped.join("\n"))
        })
        .collect();
    let mut out = lines[..start].join("\n");
    out.push('\n');
    out.push_str(&groups.join("\n"));
    out.push('\n');
    out.push_str(&lines[end..].join("\n"));
    out.push('\n');
    Ok(out)
}

/// `Jane Doe (10):`, the head of a shortlog group.
fn is_shortlog_head(line: &str) -> bool {
    line.strip_suffix("):")
        .and_then(|l| l.rsplit_once(" ("))
        .is_some_and(|(name, n)| {
            !name.trim().is_empty() && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())
        })
}

/// A title as git shortlog -w72,2,4 prints it.
fn wrap_title(title: &str) -> String {
    let mut lines = vec![String::from("  ")];
    for word in title.split(' ') {
        let line = lines.last_mut().unwrap();
        if line.trim().is_empty() || line.len() + 1 + word.len() <= 72 {
            if !line.trim().is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        } else {
            lines.push(format!("    {word}"));
        }
    }
    lines.join("\n")
}

/// `Based on ...` before the shortlog and `base-commit:` before the
/// signature, as git format-patch --base puts it.
fn with_base(body: &str, plan: &Plan) -> String {
    let mut lines: Vec<String> = body
        .lines()
        .filter(|l| !l.starts_with("Based on Linux ") && !l.starts_with("base-commit: "))
        .map(String::from)
        .collect();
    let shortlog = lines
        .iter()
        .position(|l| is_shortlog_head(l))
        .unwrap_or(lines.len());
    lines.insert(shortlog, String::new());
    lines.insert(shortlog, format!("Based on {}.", plan.base));
    if let Some(commit) = plan.base_commit {
        let signature = lines
            .iter()
            .rposition(|l| l == "-- ")
            .unwrap_or(lines.len());
        lines.insert(signature, String::new());
        lines.insert(signature, format!("base-commit: {commit}"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out
}

/// No `.invalid` address in a header or in the text above the diff.
fn no_placeholder_left(mail: &Outgoing) -> Result<()> {
    let above_diff = mail.text.split("\ndiff --git ").next().unwrap_or_default();
    if let Some(line) = above_diff
        .lines()
        .find(|l| l.to_ascii_lowercase().contains(".invalid>"))
    {
        bail!("{} still names a placeholder address: {line:?}", mail.name);
    }
    Ok(())
}

/// Makes `dir` ready for a new series: created if missing; refused if it
/// is inside the series folder, or holds anything but mails of an earlier
/// run (`*.patch` files that start as git format-patch mails), which go.
pub fn prepare_dir(dir: &Path, series_dir: &Path) -> Result<()> {
    let series = series_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", series_dir.display()))?;
    if resolved(dir)?.starts_with(&series) {
        bail!(
            "{} is inside the series folder {}, which format-series never writes: choose another --output",
            dir.display(),
            series_dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut earlier = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let is_mail = path.extension().is_some_and(|e| e == "patch")
            && path.is_file()
            && std::fs::read_to_string(&path).is_ok_and(|t| Mail::parse(&t).is_ok());
        if !is_mail {
            bail!(
                "{} is not empty and holds {}, which is not a mail of an earlier run: \
                 choose another --output or empty it",
                dir.display(),
                path.display()
            );
        }
        earlier.push(path);
    }
    for path in earlier {
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

/// `path` with symbolic links and `..` resolved, whether it exists or not
/// (its nearest existing ancestor is resolved, the rest appended).
fn resolved(path: &Path) -> Result<std::path::PathBuf> {
    let absolute =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name().unwrap_or_default().to_owned());
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    let mut out = existing
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", existing.display()))?;
    out.extend(rest.iter().rev());
    Ok(out)
}

/// Writes the mails into `dir` (prepared by `prepare_dir`).
pub fn write(dir: &Path, mails: &[Outgoing]) -> Result<()> {
    for mail in mails {
        let path = dir.join(&mail.name);
        std::fs::write(&path, &mail.text)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Reads the patches (not the cover letter) as `git am` does (`git
/// mailinfo`) and applies them to `base` in `repo` in a private index:
/// the author and title must be what was meant, the sender must sign
/// off, and the tree must be the one the series itself gives.
pub fn check_applies(
    repo: &Path,
    base: &str,
    series: &Series,
    mails: &[Outgoing],
    sender: &Person,
) -> Result<()> {
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let originals: Vec<&Path> = series.patches.iter().map(|p| p.path.as_path()).collect();
    let wanted = tree_of(repo, base, &originals, &scratch.path().join("index-series"))?;
    let mut emitted = Vec::new();
    for mail in mails.iter().filter(|m| m.name != COVER_LETTER) {
        let (msg, patch) = (scratch.path().join("msg"), scratch.path().join(&mail.name));
        let info = git(repo)
            .arg("mailinfo")
            .arg(&msg)
            .arg(&patch)
            .stdin(mail.text.clone())
            .read()
            .with_context(|| format!("git mailinfo on {}", mail.name))?;
        let message = std::fs::read_to_string(&msg).context("reading mailinfo's message")?;
        check_mailinfo(&mail.name, &info, &message, &mail.text, sender)?;
        emitted.push(patch);
    }
    let emitted: Vec<&Path> = emitted.iter().map(|p| p.as_path()).collect();
    let got = tree_of(repo, base, &emitted, &scratch.path().join("index-mails"))?;
    ensure!(
        got == wanted,
        "the mails give tree {got}, the series gives {wanted}: a rewrite changed a patch"
    );
    Ok(())
}

/// The author git am would record is the in-body From or the sender,
/// the subject is the title, and the sender's sign-off is there.
fn check_mailinfo(
    name: &str,
    info: &str,
    message: &str,
    text: &str,
    sender: &Person,
) -> Result<()> {
    let field = |key: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_default()
            .to_string()
    };
    let mail = Mail::parse(text)?;
    let author = Body::parse(&mail.body)
        .in_body_from
        .and_then(|who| Person::parse(&who))
        .unwrap_or_else(|| sender.clone());
    let read = format!("{} <{}>", field("Author: "), field("Email: "));
    ensure!(
        read == author.to_string(),
        "{name}: git am reads the author as {read}, not {author}"
    );
    let subject = field("Subject: ");
    ensure!(
        subject == mail.title()?,
        "{name}: git am reads the subject as {subject:?}"
    );
    ensure!(
        message.contains(&format!("Signed-off-by: {sender}")),
        "{name}: git am finds no Signed-off-by: {sender}"
    );
    Ok(())
}

/// The tree `base` plus `patches` (git apply, in the index `index`).
fn tree_of(repo: &Path, base: &str, patches: &[&Path], index: &Path) -> Result<String> {
    let with_index = |args: &[&str]| git(repo).args(args).env("GIT_INDEX_FILE", index);
    with_index(&["read-tree", base]).read()?;
    for patch in patches {
        with_index(&["apply", "--cached"])
            .arg(patch)
            .read()
            .with_context(|| format!("applying {}", patch.display()))?;
    }
    Ok(with_index(&["write-tree"]).read()?.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::process::Cmd;
    use std::path::PathBuf;

    fn run(dir: &Path, args: &[&str]) -> String {
        Cmd::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=Committer",
                "-c",
                "user.email=c@example.org",
            ])
            .args(args)
            .read()
            .unwrap()
            .trim()
            .to_string()
    }

    fn commit(repo: &Path, file: &str, text: &str, author: &str, message: &str) {
        let path = repo.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        run(repo, &["add", "-A"]);
        run(repo, &["commit", "-q", "--author", author, "-m", message]);
    }

    /// A repository with a base commit and three patches (two by the
    /// placeholder author, one by Ann, the second one an ABI change),
    /// and the series git format-patch --cover-letter made of them.
    fn fixture() -> (tempfile::TempDir, PathBuf, String, Series, String) {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        run(&repo, &["init", "-q"]);
        commit(
            &repo,
            "f.c",
            "one\ntwo\n",
            "Base <base@example.org>",
            "base",
        );
        let base = run(&repo, &["rev-parse", "HEAD"]);
        let placeholder = "Compat Mode Dev <dev@compat-mode.invalid>";
        let sob = "Signed-off-by: Compat Mode Dev <dev@compat-mode.invalid>";
        commit(
            &repo,
            "f.c",
            "one\nTWO\n",
            placeholder,
            &format!("f: Shout two\n\nWhy.\n\nCc: List <list@example.org>\n{sob}"),
        );
        commit(
            &repo,
            "include/uapi/x.h",
            "#define X 1\n",
            placeholder,
            &format!("uapi: Add X\n\nWhy.\n\n{sob}"),
        );
        commit(
            &repo,
            "f.c",
            "ONE\nTWO\n",
            "Ann Author <ann@example.com>",
            "f: Shout one\n\nWhy.\n\nSigned-off-by: Ann Author <ann@example.com>",
        );
        let patches = dir.path().join("patches");
        Cmd::new("git")
            .arg("-C")
            .arg(&repo)
            .args([
                "format-patch",
                "-q",
                "--cover-letter",
                "--subject-prefix",
                "PATCH v2",
                "-o",
            ])
            .arg(&patches)
            .arg(format!("{base}..HEAD"))
            .read()
            .unwrap();
        let names: Vec<String> = std::fs::read_dir(&patches)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != COVER_LETTER)
            .collect();
        let mut names = names;
        names.sort();
        std::fs::write(patches.join("series"), names.join("\n")).unwrap();
        let cover = std::fs::read_to_string(patches.join(COVER_LETTER)).unwrap();
        let series = Series::load(&patches).unwrap();
        (dir, repo, base, series, cover)
    }

    fn jane() -> Person {
        Person {
            name: "Jane Doe".into(),
            email: "jane@example.org".into(),
        }
    }

    #[test]
    fn the_mails_apply_with_git_am_to_the_series_tree_under_the_right_authors() {
        let (dir, repo, base, series, cover) = fixture();
        let sender = jane();
        let cc = vec![
            vec![
                "Maint <m@example.org>".to_string(),
                "LIST@example.org".into(),
            ],
            vec!["Maint <m@example.org>".to_string()],
            vec!["Jane Doe <jane@example.org>".to_string()],
        ];
        let plan = Plan {
            sender: &sender,
            prefix: "PATCH v3",
            base_commit: Some(&base),
            base: "Linux 6.12.117 (test)",
        };
        let mails = format(&series, &cover, &cc, &plan).unwrap();
        check_applies(&repo, &base, &series, &mails, &sender).unwrap();
        let out = dir.path().join("out");
        prepare_dir(&out, &series.dir).unwrap();
        write(&out, &mails).unwrap();

        let letter = &mails[0].text;
        assert!(
            letter.starts_with("From ") && letter.contains("\nSubject: [PATCH v3 0/3] "),
            "{letter}"
        );
        assert!(
            letter.contains("\nFrom: Jane Doe <jane@example.org>\n"),
            "{letter}"
        );
        assert!(
            letter.contains(
                "\nCc: List <list@example.org>, Maint <m@example.org>, linux-api@vger.kernel.org\n"
            ),
            "{letter}"
        );
        assert!(
            letter.contains(&format!("\nbase-commit: {base}\n\n-- \n")),
            "{letter}"
        );
        assert!(letter.contains("Based on Linux 6.12.117 (test).\n\nAnn Author (1):\n  f: Shout one\n\nJane Doe (2):\n  f: Shout two\n  uapi: Add X\n"), "{letter}");
        let uapi = &mails[2].text;
        assert!(
            uapi.contains(
                "Cc: Maint <m@example.org>\nCc: linux-api@vger.kernel.org\nSigned-off-by: Jane Doe"
            ),
            "{uapi}"
        );
        assert!(!mails[1].text.contains("linux-api") && !mails[3].text.contains("linux-api"));

        // git am, as a maintainer would apply them, onto the base.
        let clone = dir.path().join("clone");
        Cmd::new("git")
            .args(["clone", "-q"])
            .arg(&repo)
            .arg(&clone)
            .read()
            .unwrap();
        run(&clone, &["checkout", "-q", "--detach", &base]);
        let files: Vec<PathBuf> = mails[1..].iter().map(|m| out.join(&m.name)).collect();
        Cmd::new("git")
            .arg("-C")
            .arg(&clone)
            .args([
                "-c",
                "user.name=M",
                "-c",
                "user.email=m@example.org",
                "am",
                "-q",
            ])
            .args(&files)
            .read()
            .unwrap();
        assert_eq!(
            run(&clone, &["rev-parse", "HEAD^{tree}"]),
            run(&repo, &["rev-parse", "HEAD^{tree}"])
        );
        assert_eq!(
            run(
                &clone,
                &["log", "--format=%an <%ae>|%s", &format!("{base}..HEAD")]
            ),
            "Ann Author <ann@example.com>|f: Shout one\n\
             Jane Doe <jane@example.org>|uapi: Add X\n\
             Jane Doe <jane@example.org>|f: Shout two"
        );
        let last = run(&clone, &["log", "-1", "--format=%B"]);
        assert!(last.ends_with("Signed-off-by: Ann Author <ann@example.com>\nSigned-off-by: Jane Doe <jane@example.org>"), "{last}");
    }

    #[test]
    fn a_rewrite_that_changes_a_patch_is_caught() {
        let (_dir, repo, base, series, cover) = fixture();
        let sender = jane();
        let plan = Plan {
            sender: &sender,
            prefix: "PATCH v2",
            base_commit: None,
            base: "Linux",
        };
        let mut mails = format(&series, &cover, &vec![vec![]; 3], &plan).unwrap();
        mails[2].text = mails[2].text.replace("+#define X 1", "+#define X 2");
        let err = format!(
            "{:#}",
            check_applies(&repo, &base, &series, &mails, &sender).unwrap_err()
        );
        assert!(err.contains("a rewrite changed a patch"), "{err}");
    }

    #[test]
    fn the_output_folder_is_new_empty_or_an_earlier_run_and_never_the_series() {
        let (dir, _repo, _base, series, _cover) = fixture();
        let err = format!(
            "{:#}",
            prepare_dir(&series.dir.join("v2"), &series.dir).unwrap_err()
        );
        assert!(err.contains("inside the series folder"), "{err}");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        let err = format!("{:#}", prepare_dir(&out, &series.dir).unwrap_err());
        assert!(
            err.contains("notes.txt, which is not a mail of an earlier run"),
            "{err}"
        );
        std::fs::remove_file(out.join("notes.txt")).unwrap();
        std::fs::copy(&series.patches[0].path, out.join("0001-old.patch")).unwrap();
        prepare_dir(&out, &series.dir).unwrap();
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "the earlier mail went"
        );
    }
}
