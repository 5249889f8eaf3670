//! An exclusive lock on a directory, so two runs never share a build dir.

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::path::Path;

pub struct DirLock(#[allow(dead_code)] Flock<File>);

/// Locks `dir` (creating it), waiting while another xtask holds it.
pub fn lock_dir(dir: &Path) -> Result<DirLock> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(".lock");
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => return Ok(DirLock(lock)),
        Err((file, _)) => file,
    };
    eprintln!(
        "waiting for another xtask run that holds {}",
        path.display()
    );
    Flock::lock(file, FlockArg::LockExclusive)
        .map(DirLock)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("cannot lock {}", path.display()))
}
