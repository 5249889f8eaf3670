//! Who a patch goes to: the kernel tree's `scripts/get_maintainer.pl`.

use crate::host::process::Cmd;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// The list every patch that changes the userspace ABI is Cc'd to
/// (Documentation/process/submitting-patches.rst).
pub const LINUX_API: &str = "linux-api@vger.kernel.org";

/// True for a file whose change is a change of the userspace ABI.
pub fn is_abi(file: &str) -> bool {
    file.starts_with("include/uapi/") || file.contains("/include/uapi/")
}

/// The maintainers, reviewers and lists of `patch`, in get_maintainer's
/// order (maintainers of the most specific entry first, lists last), as
/// `Name <address>` or a bare list address. Without git and Fixes: lookups:
/// the imported tree has no upstream history (a Fixes: id is unknown to
/// it), and who touched a file last is not who to Cc.
pub fn of_patch(tree: &Path, patch: &Path) -> Result<Vec<String>> {
    let script = tree.join("scripts/get_maintainer.pl");
    if !script.is_file() {
        bail!(
            "{} is missing: the kernel tree has no get_maintainer.pl",
            script.display()
        );
    }
    let out = Cmd::new("perl")
        .arg(&script)
        .args(["--nogit", "--nogit-fallback", "--norolestats", "--nofixes"])
        .arg(patch)
        .dir(tree)
        .output()
        .context("running get_maintainer.pl")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "get_maintainer.pl failed on {} ({}):\n{}",
            patch.display(),
            out.status,
            stderr.trim()
        );
    }
    let addresses: Vec<String> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.contains('@'))
        .map(String::from)
        .collect();
    if addresses.is_empty() {
        bail!(
            "get_maintainer.pl named nobody for {}:\n{}{}",
            patch.display(),
            stdout.trim(),
            stderr.trim()
        );
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree whose get_maintainer.pl is `script` (perl).
    fn tree_with(script: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("scripts")).unwrap();
        std::fs::write(dir.path().join("scripts/get_maintainer.pl"), script).unwrap();
        dir
    }

    #[test]
    fn addresses_come_in_the_scripts_order() {
        let tree = tree_with(
            "print \"Thomas Gleixner <tglx\\@linutronix.de>\\nx86\\@kernel.org\\n\\nlinux-kernel\\@vger.kernel.org\\n\";",
        );
        let got = of_patch(tree.path(), Path::new("p.patch")).unwrap();
        assert_eq!(
            got,
            [
                "Thomas Gleixner <tglx@linutronix.de>",
                "x86@kernel.org",
                "linux-kernel@vger.kernel.org"
            ]
        );
    }

    #[test]
    fn a_failing_or_silent_script_is_an_error_with_its_message() {
        let failing = tree_with("print STDERR \"file 'p.patch' not found\\n\"; exit 2;");
        let err = format!(
            "{:#}",
            of_patch(failing.path(), Path::new("p.patch")).unwrap_err()
        );
        assert!(err.contains("get_maintainer.pl failed on p.patch"), "{err}");
        assert!(err.contains("file 'p.patch' not found"), "{err}");
        let silent = tree_with("exit 0;");
        let err = format!(
            "{:#}",
            of_patch(silent.path(), Path::new("p.patch")).unwrap_err()
        );
        assert!(err.contains("named nobody"), "{err}");
        let none = tempfile::tempdir().unwrap();
        let err = format!(
            "{:#}",
            of_patch(none.path(), Path::new("p.patch")).unwrap_err()
        );
        assert!(err.contains("has no get_maintainer.pl"), "{err}");
    }

    #[test]
    fn uapi_headers_are_the_abi() {
        assert!(is_abi("arch/x86/include/uapi/asm/prctl.h"));
        assert!(is_abi("include/uapi/linux/prctl.h"));
        assert!(!is_abi("arch/x86/include/asm/elf.h"));
        assert!(!is_abi("Documentation/arch/x86/compat-mode.rst"));
    }
}
