//! The kernel after each prefix of the series (vanilla, +0001, +0002, ...).
//! All prefixes are built in one "bisect" worktree and build dir (make is
//! incremental, so each step recompiles only what the next patch touched),
//! and each built kernel is kept on a shelf by its build key: check-series'
//! prefix builds are what `compare --per-patch` boots, and a prefix whose
//! tree did not change is never rebuilt. The key holds the applied tree's
//! git id, not the patches' bytes: a reworded commit message or a moved
//! Cc line rebuilds nothing.

use super::{boot_validator_as, build_kernel, declared, programs, RunName, Settings, Workspace};
use crate::host::paths;
use crate::kernel::build::{self, BuildInputs, Kernel};
use crate::kernel::git;
use crate::kernel::series::{self, Series};
use crate::kernel::{Flavour, Variant};
use crate::results::report::{Declared, RunReport};
use crate::vm::qemu::Qemu;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// The validator's run on every prefix of the series, vanilla first.
pub struct PerPatchRuns {
    pub ws: Workspace,
    pub declared: Vec<Declared>,
    /// The patches' subjects, in series order.
    pub subjects: Vec<Option<String>>,
    /// `runs[k]`: the kernel with the first `k` patches.
    pub runs: Vec<RunReport>,
}

/// Builds (or takes from the shelf) the kernel after each prefix, then
/// boots them with the validator, two at a time.
pub fn collect(settings: &Settings) -> Result<PerPatchRuns> {
    refuse_flavour(settings.flavour)?;
    let programs = programs()?;
    let declared = declared(&programs, settings)?;
    let ws = Workspace::open(settings)?;
    let initrd = ws.validator_initramfs(&programs, settings.filter.as_deref())?;
    let qemu = Qemu::find()?;
    let runs = {
        let prefixes = Prefixes::open(&ws)?;
        // All builds first: a build error stops the run before any boot.
        let kernels = (0..=prefixes.len())
            .map(|k| prefixes.kernel(k))
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<RunName> = (0..kernels.len()).map(|k| prefixes.run_name(k)).collect();
        let mut runs = Vec::new();
        let jobs: Vec<(RunName, Kernel)> = names.into_iter().zip(kernels).collect();
        for pair in jobs.chunks(2) {
            let booted: Vec<Result<RunReport>> = std::thread::scope(|s| {
                let threads: Vec<_> = pair
                    .iter()
                    .map(|(name, kernel)| {
                        let (ws, initrd, qemu) = (&ws, &initrd, &qemu);
                        s.spawn(move || {
                            boot_validator_as(ws, name, kernel.clone(), initrd, qemu, settings)
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .map(|t| t.join().expect("prefix boot thread"))
                    .collect()
            });
            for report in booted {
                runs.push(report?);
            }
        }
        runs
    };
    let subjects = ws.series.patches.iter().map(|p| p.subject()).collect();
    Ok(PerPatchRuns {
        ws,
        declared,
        subjects,
        runs,
    })
}

/// The matrix's ends are the workspace's builds, of the flavour asked for,
/// and the prefixes between them the shelf's, built with the test VM's
/// fragment only: another flavour would compare kernels configured
/// differently. Refused before anything is built.
pub fn refuse_flavour(flavour: Flavour) -> Result<()> {
    anyhow::ensure!(
        flavour == Flavour::Default,
        "--per-patch boots prefix kernels built with the test VM's fragment only; \
         drop --flavour {} (for one prefix, give a series of its patches to `run --flavour {0}`)",
        flavour.name()
    );
    Ok(())
}

pub struct Prefixes<'a> {
    ws: &'a Workspace,
    pub tree: PathBuf,
    pub build: PathBuf,
    shelf: PathBuf,
    log: PathBuf,
}

impl<'a> Prefixes<'a> {
    /// The bisect worktree, created at the source's commit if missing.
    /// Its builds use the test VM's fragment whatever the workspace's
    /// flavour (check-series builds them next to its debug selftests).
    pub fn open(ws: &'a Workspace) -> Result<Prefixes<'a>> {
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
        let tree_id = self.apply(k)?;
        self.build_applied(k, &tree_id)
    }

    fn build_applied(&self, k: usize, tree_id: &str) -> Result<Kernel> {
        let fragment = paths::config_fragment();
        let what = format!("Building vanilla + {k} of {} patches", self.len());
        let kernel = build_kernel(&what, &self.inputs(tree_id, &fragment))?;
        build::keep(&kernel, &self.shelf)
            .with_context(|| format!("keeping the kernel of vanilla + {k} patches"))
    }

    /// Checks out vanilla plus the first `k` patches in the bisect tree
    /// (only the files that differ change, so make stays incremental) and
    /// returns the git id of that tree.
    fn apply(&self, k: usize) -> Result<String> {
        series::apply(
            &self.tree,
            &self.ws.source.commit,
            &self.series(k),
            &self.log,
        )?;
        let id = git::git(&self.tree)
            .args(["rev-parse", "HEAD^{tree}"])
            .read()
            .context("reading the applied tree's id")?;
        Ok(id.trim().to_string())
    }

    /// The kernel of the first `k` patches: the workspace's own vanilla and
    /// patched builds at the two ends (what `compare` built), else from the
    /// shelf when these very inputs were built before (by check-series or
    /// an earlier run), else built.
    pub fn kernel(&self, k: usize) -> Result<Kernel> {
        // The ends are the workspace's builds, in its flavour.
        refuse_flavour(self.ws.flavour)?;
        if k == 0 {
            return self.ws.kernel(Variant::Vanilla);
        }
        if k == self.len() {
            return self.ws.kernel(Variant::Patched);
        }
        let tree_id = self.apply(k)?;
        let fragment = paths::config_fragment();
        let key = build::key_of(&self.inputs(&tree_id, &fragment))?;
        match build::kept(&self.shelf, &key)? {
            Some(kernel) => Ok(kernel),
            None => self.build_applied(k, &tree_id),
        }
    }

    /// What prefix `k` is called in reports: `vanilla`, `+0001`, ...
    pub fn label(k: usize) -> String {
        match k {
            0 => Variant::Vanilla.name(),
            _ => format!("+{k:04}"),
        }
    }

    /// How prefix `k`'s validator run is named and where it is kept: its
    /// declarations are vanilla's for no patch, else the series'.
    fn run_name(&self, k: usize) -> RunName {
        let label = Self::label(k);
        RunName {
            variant: if k == 0 {
                Variant::Vanilla
            } else {
                Variant::Patched
            },
            dir: paths::results().join("per-patch").join(&label),
            label,
            series_hash: self.series(k).hash(),
        }
    }

    /// The applied tree's id stands where a build's series hash goes.
    fn inputs<'b>(
        &'b self,
        applied_tree: &'b str,
        fragment: &'b std::path::Path,
    ) -> BuildInputs<'b> {
        BuildInputs {
            src: &self.tree,
            build: &self.build,
            tree_id: &self.ws.source.tree_id,
            series_hash: applied_tree,
            fragment,
            jobs: self.ws.jobs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_patch_refuses_every_flavour_but_the_default() {
        assert!(refuse_flavour(Flavour::Default).is_ok());
        for flavour in [Flavour::Debug, Flavour::Criu] {
            let err = refuse_flavour(flavour).unwrap_err().to_string();
            assert!(
                err.contains(&format!("drop --flavour {}", flavour.name())),
                "{err}"
            );
        }
    }
}
