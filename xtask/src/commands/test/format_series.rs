//! End-to-end: `format-series` after a passing `compare`, as a sender with
//! only environment-given identity (no git config at all): the mails carry
//! that identity and the compare table, and the command's own `git am`
//! check passed; with no identity it refuses, naming the setting, and
//! writes nothing.

use crate::flags::RunOpts;
use crate::host::process::Cmd;
use anyhow::{ensure, Context, Result};
use std::path::Path;

const NAME: &str = "E2E Sender";
const EMAIL: &str = "e2e.sender@example.org";
/// A scenario row every compare table has.
const TABLE_ROW: &str = "get_compat_reads_native";

pub fn check(opts: &RunOpts) -> Result<()> {
    let home = tempfile::tempdir()?;
    let out = home.path().join("mails");
    let refused = format_series(opts, home.path(), &out, false)?.output()?;
    let text = String::from_utf8_lossy(&refused.stderr);
    ensure!(
        refused.status.code() == Some(2) && text.contains("git config --global user.name"),
        "format-series with no identity exited {:?}, not 2 naming the setting:\n{text}",
        refused.status.code()
    );
    ensure!(
        !out.exists(),
        "format-series with no identity wrote {}",
        out.display()
    );

    let code = format_series(opts, home.path(), &out, true)?
        .run()?
        .code()
        .context("format-series was killed")?;
    ensure!(code == 0, "format-series exited {code}");
    let mut mails: Vec<_> = std::fs::read_dir(&out)?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .collect();
    mails.sort();
    ensure!(
        mails.len() >= 2,
        "{} mails in {}",
        mails.len(),
        out.display()
    );
    let sender = format!("{NAME} <{EMAIL}>");
    for mail in &mails {
        let text = std::fs::read_to_string(mail)?;
        let name = mail.display();
        ensure!(
            text.contains(&format!("\nFrom: {sender}\n")),
            "{name}: not from {sender}"
        );
        ensure!(
            !text.contains(".invalid"),
            "{name}: a placeholder address is left"
        );
        ensure!(
            text.contains("[PATCH v2 "),
            "{name}: no [PATCH v2 NN/MM] subject"
        );
    }
    let cover = std::fs::read_to_string(&mails[0])?;
    ensure!(
        // A filtered compare's table is refused: with --filter there is none.
        opts.filter.is_some() || cover.contains(TABLE_ROW),
        "the cover letter has no compare table"
    );
    for mail in &mails[1..] {
        let text = std::fs::read_to_string(mail)?;
        ensure!(
            text.contains(&format!("Signed-off-by: {sender}")),
            "{}: no sign-off by {sender}",
            mail.display()
        );
    }
    eprintln!(
        "    {} mails from {sender}, the cover letter with the table; no identity: exit 2",
        mails.len()
    );
    Ok(())
}

/// format-series into `out` with a HOME and git config of nothing; the
/// identity, when given, only through git's environment variables.
fn format_series(opts: &RunOpts, home: &Path, out: &Path, identity: bool) -> Result<Cmd> {
    let exe = std::env::current_exe().context("finding this xtask's executable")?;
    let mut cmd = Cmd::new(exe)
        .arg("format-series")
        .arg("--output")
        .arg(out)
        .env("HOME", home)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    if identity {
        for (key, value) in [
            ("GIT_AUTHOR_NAME", NAME),
            ("GIT_AUTHOR_EMAIL", EMAIL),
            ("GIT_COMMITTER_NAME", NAME),
            ("GIT_COMMITTER_EMAIL", EMAIL),
        ] {
            cmd = cmd.env(key, value);
        }
    }
    if let Some(src) = &opts.source.kernel_src {
        cmd = cmd.arg("--kernel-src").arg(src);
    }
    if let Some(tarball) = &opts.source.kernel_tarball {
        cmd = cmd.arg("--kernel-tarball").arg(tarball);
    }
    if opts.filter.is_some() {
        cmd = cmd.arg("--no-table");
    }
    if let Some(series) = &opts.series {
        cmd = cmd.arg("--series").arg(series);
    }
    Ok(cmd)
}
