//! git as the harness uses it: reproducible commits and worktrees of the
//! imported vanilla repository.

use crate::host::process::Cmd;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// `git -C dir` with a fixed identity and dates, so commits are reproducible.
pub fn git(dir: &Path) -> Cmd {
    Cmd::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=xtask", "-c", "user.email=xtask@localhost"])
        .args(["-c", "core.excludesFile=/dev/null", "-c", "gc.auto=0"])
        .env("GIT_AUTHOR_DATE", "2024-11-17T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-11-17T00:00:00Z")
}

/// A worktree of the repository `repo` at `path`, detached at `commit`
/// (created once; an existing one is reused as it is).
pub fn ensure_worktree(repo: &Path, path: &Path, commit: &str, log: &Path) -> Result<PathBuf> {
    if !path.join(".git").exists() {
        if path.exists() {
            std::fs::remove_dir_all(path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
        git(repo).args(["worktree", "prune"]).logged(log)?;
        add_worktree(repo, path, commit, log)?;
    }
    Ok(path.to_path_buf())
}

/// A new worktree of `repo` at `path`, detached at `commit`. A `worktree
/// add` that was killed leaves its entry locked ("initializing") with no
/// folder, which blocks every later add at that path: such a leftover is
/// unlocked and pruned first.
pub fn add_worktree(repo: &Path, path: &Path, commit: &str, log: &Path) -> Result<()> {
    if !path.exists() {
        let _ = git(repo).args(["worktree", "unlock"]).arg(path).read();
        git(repo).args(["worktree", "prune"]).logged(log)?;
    }
    git(repo)
        .args(["worktree", "add", "--quiet", "--detach"])
        .arg(path)
        .arg(commit)
        .logged(log)
        .with_context(|| format!("creating the worktree {}", path.display()))
}

/// Removes the worktree at `path` (if any) and its directory.
pub fn remove_worktree(repo: &Path, path: &Path) {
    let _ = git(repo)
        .args(["worktree", "remove", "--force", "--force"])
        .arg(path)
        .read();
    let _ = std::fs::remove_dir_all(path);
}
