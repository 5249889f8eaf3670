//! The kernel after each prefix of the series (vanilla, +0001, +0002, ...).
//! All prefixes are built in one "bisect" worktree and build dir (make is
//! incremental, so each step recompiles only what the next patch touched),
//! and each built kernel is kept on a shelf by its build key: check-series'
//! prefix builds are what `compare --per-patch` boots, and a prefix whose
//! inputs did not change is never rebuilt.

use super::{build_kernel, Workspace};
use crate::host::paths;
use crate::kernel::build::{self, BuildInputs, Kernel};
use crate::kernel::git;
use crate::kernel::series::{self, Series};
use crate::kernel::{Flavour, Variant};
use anyhow::{Context, Result};
use std::path::PathBuf;

pub struct Prefixes<'a> {
    ws: &'a Workspace,
    pub tree: PathBuf,
    pub build: PathBuf,
    shelf: PathBuf,
    log: PathBuf,
}

impl<'a> Prefixes<'a> {
    /// The bisect worktree, created at the source's commit if missing.
    pub fn open(ws: &'a Workspace) -> Result<Prefixes<'a>> {
        anyhow::ensure!(
            ws.flavour == Flavour::Default,
            "prefix builds use the test VM's fragment only; drop --flavour {}",
            ws.flavour.name()
        );
        let dir = ws.layout.extra("bisect");
        let log = ws.layout.logs().join("bisect.log");
        let vanilla = ws.layout.src(Variant::Vanilla);
        let tree = git::ensure_worktree(&vanilla, &dir.join("src"), &ws.source.commit, &log)?;
        Ok(Prefixes {
            ws,
            tree,
            build: dir.join("build"),
            shelf: dir.join("kept"),
            log,
        })
    }

    /// How many patches the series has (prefixes are 0..=len).
    pub fn len(&self) -> usize {
        self.ws.series.patches.len()
    }

    /// The first `k` patches.
    pub fn series(&self, k: usize) -> Series {
        Series {
            dir: self.ws.series.dir.clone(),
            patches: self.ws.series.patches[..k].to_vec(),
        }
    }

    /// Applies the first `k` patches to the bisect tree and builds it
    /// (incrementally), then keeps the kernel on the shelf.
    pub fn build(&self, k: usize) -> Result<Kernel> {
        let prefix = self.series(k);
        series::apply(&self.tree, &self.ws.source.commit, &prefix, &self.log)?;
        let fragment = paths::config_fragment();
        let what = format!("Building vanilla + {k} of {} patches", self.len());
        let kernel = build_kernel(&what, &self.inputs(&prefix.hash(), &fragment))?;
        build::keep(&kernel, &self.shelf)
            .with_context(|| format!("keeping the kernel of vanilla + {k} patches"))
    }

    /// The kernel of the first `k` patches: from the shelf when these very
    /// inputs were built before (by check-series or an earlier run), else built.
    pub fn kernel(&self, k: usize) -> Result<Kernel> {
        let fragment = paths::config_fragment();
        let key = build::key_of(&self.inputs(&self.series(k).hash(), &fragment))?;
        match build::kept(&self.shelf, &key)? {
            Some(kernel) => Ok(kernel),
            None => self.build(k),
        }
    }

    fn inputs<'b>(
        &'b self,
        series_hash: &'b str,
        fragment: &'b std::path::Path,
    ) -> BuildInputs<'b> {
        BuildInputs {
            src: &self.tree,
            build: &self.build,
            tree_id: &self.ws.source.tree_id,
            series_hash,
            fragment,
            jobs: self.ws.jobs,
        }
    }
}
