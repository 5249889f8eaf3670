//! `cargo xtask format-series`: the series as mails to send, under the
//! sender's git identity, into a folder of its own (docs/pipeline.md).

use crate::flags::FormatOpts;
use crate::host::{paths, ui};
use crate::kernel::outgoing::{self, Outgoing, Plan, COVER_LETTER};
use crate::kernel::{identity, maintainers, source, Variant};
use crate::pipeline::{Settings, Workspace};
use crate::results::cover_letter::{self, LastTable};
use crate::results::exit;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

pub fn run(opts: &FormatOpts) -> Result<i32> {
    // Before anything is imported: without a sender there is nothing to do.
    let sender = identity::sender(&paths::root())?;
    let prefix = subject_prefix(&opts.subject_prefix)?;
    let ws = Workspace::open(&settings(opts))?;
    let base_commit = base_commit(opts)?;
    let table = match opts.no_table {
        true => None,
        false => Some(LastTable::read_for(&ws.series.hash(), &ws.source.tree_id)?),
    };
    let cover_path = ws.series.dir.join(COVER_LETTER);
    let cover = std::fs::read_to_string(&cover_path)
        .with_context(|| format!("cannot read {}", cover_path.display()))?;
    let cover = cover_letter::with_table(&cover, table.as_ref())
        .with_context(|| format!("in {}", cover_path.display()))?;
    let tree = ws.layout.src(Variant::Vanilla);
    let cc = ws
        .series
        .patches
        .iter()
        .map(|p| maintainers::of_patch(&tree, &p.path))
        .collect::<Result<Vec<_>>>()?;
    let origin = std::path::Path::new(&ws.source.origin)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = format!(
        "Linux {} ({} {origin})",
        ws.source.version, ws.source.provider
    );
    let plan = Plan {
        sender: &sender,
        prefix,
        base_commit: base_commit.as_deref(),
        base: &base,
    };
    let mails = outgoing::format(&ws.series, &cover, &cc, &plan)?;
    outgoing::check_applies(&tree, &ws.source.commit, &ws.series, &mails, &sender)
        .context("the mails do not apply as git am reads them")?;
    let dir = opts
        .output
        .clone()
        .unwrap_or_else(|| default_output(prefix));
    outgoing::prepare_dir(&dir, &ws.series.dir)?;
    outgoing::write(&dir, &mails)?;
    if opts.no_table {
        ui::note("--no-table: the cover letter has no before/after table (and no table markers)");
    }
    report(&dir, &mails, &sender);
    Ok(exit::AS_DECLARED)
}

/// What was written and how to send it.
fn report(dir: &std::path::Path, mails: &[Outgoing], sender: &identity::Person) {
    println!("{} mails from {sender} in {}:", mails.len(), dir.display());
    for mail in mails {
        let parsed = crate::kernel::mail::Mail::parse(&mail.text);
        let subject = parsed
            .ok()
            .and_then(|m| m.header("Subject").map(String::from));
        println!("  {}  {}", mail.name, subject.unwrap_or_default());
    }
    println!(
        "checked: every patch applies as git am reads it and gives the series' tree\n\
         send: git send-email --to <maintainers> {}/*.patch",
        dir.display()
    );
}

/// The plain settings Workspace::open needs (no kernel is built or booted).
fn settings(opts: &FormatOpts) -> Settings {
    Settings {
        kernel_src: opts.source.kernel_src.clone(),
        kernel_tarball: opts.source.kernel_tarball.clone(),
        series: opts.series.clone(),
        jobs: None,
        accel: crate::vm::accel::Accel::Auto,
        timeout_secs: 0,
        filter: None,
        flavour: crate::kernel::Flavour::Default,
        stress: None,
        seed: None,
        workers: None,
    }
}

/// `PATCH v2`: words, no brackets or line breaks (it goes inside `[...]`).
fn subject_prefix(prefix: &str) -> Result<&str> {
    let prefix = prefix.trim();
    if prefix.is_empty() || prefix.contains(['[', ']', '\n', '\r']) {
        bail!("--subject-prefix {prefix:?}: give words without brackets, e.g. \"PATCH v2\" or \"RFC PATCH v3\"");
    }
    Ok(prefix)
}

/// target/format-series/patch-v2 for "PATCH v2".
fn default_output(prefix: &str) -> PathBuf {
    let slug: String = prefix
        .to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    paths::target().join("format-series").join(slug)
}

/// The base-commit: trailer: `--base-commit`, or the commit of a clean
/// `--kernel-src` git tree; none for a tarball or Debian's package, which
/// are no upstream commit (said on stderr, with how to add one).
fn base_commit(opts: &FormatOpts) -> Result<Option<String>> {
    let head = opts
        .source
        .kernel_src
        .as_deref()
        .and_then(source::clean_head);
    match (&opts.base_commit, head) {
        (Some(given), head) => {
            let is_id =
                matches!(given.len(), 40 | 64) && given.chars().all(|c| c.is_ascii_hexdigit());
            if !is_id {
                bail!("--base-commit {given:?}: give the full commit id (40 hex digits), as git rev-parse prints it");
            }
            if let Some(head) = head.filter(|h| !h.eq_ignore_ascii_case(given)) {
                bail!("--base-commit {given} but the --kernel-src tree the series was tested on is at {head}");
            }
            Ok(Some(given.to_ascii_lowercase()))
        }
        (None, Some(head)) => Ok(Some(head)),
        (None, None) => {
            let what = match &opts.source.kernel_src {
                Some(dir) => format!("{} is not a git checkout with nothing uncommitted", dir.display()),
                None => "a release tarball (or Debian's linux-source, which also carries Debian's patches) is no upstream commit".into(),
            };
            ui::note(&format!(
                "no base-commit: line in the cover letter: {what}. Add one with --base-commit <full id of \
                 the upstream commit the series applies to> (e.g. git rev-parse v6.12.117 in a linux-stable \
                 clone, after checking that the series applies there) or use --kernel-src <a clean git tree>"
            ));
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked_and_slugged() {
        assert_eq!(subject_prefix(" PATCH v2 ").unwrap(), "PATCH v2");
        assert!(subject_prefix("[PATCH v2]")
            .unwrap_err()
            .to_string()
            .contains("without brackets"));
        assert!(subject_prefix("").is_err());
        assert!(default_output("RFC PATCH v3").ends_with("format-series/rfc-patch-v3"));
    }

    #[test]
    fn a_base_commit_must_be_a_full_id() {
        let opts = |base: &str| FormatOpts {
            subject_prefix: "PATCH v2".into(),
            output: None,
            base_commit: Some(base.into()),
            no_table: false,
            source: Default::default(),
            series: None,
        };
        let err = base_commit(&opts("abc123")).unwrap_err().to_string();
        assert!(err.contains("full commit id"), "{err}");
        let full = "A".repeat(40);
        assert_eq!(base_commit(&opts(&full)).unwrap(), Some("a".repeat(40)));
    }
}
