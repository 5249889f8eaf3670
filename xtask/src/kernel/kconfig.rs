//! Kernel configuration: `make tinyconfig`, the repo's fragment merged with
//! the kernel's own merge_config.sh, olddefconfig, then a check that every
//! option the fragment asks for survived.

use crate::host::paths;
use crate::host::process::Cmd;
use crate::kernel::Flavour;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The fragment a flavour builds with: qemu/kernel.config, and for the
/// debug and criu flavours qemu/debug.config or qemu/criu.config after it,
/// as one file in `build` (so that merge_config.sh, the check after
/// olddefconfig and the cache key all see every option).
pub fn fragment_for(flavour: Flavour, build: &Path) -> Result<PathBuf> {
    let base = paths::config_fragment();
    let extra = match flavour {
        Flavour::Default => return Ok(base),
        Flavour::Debug => paths::debug_fragment(),
        Flavour::Criu => paths::criu_fragment(),
    };
    let mut text = std::fs::read_to_string(&base)
        .with_context(|| format!("cannot read {}", base.display()))?;
    text.push_str(
        &std::fs::read_to_string(&extra)
            .with_context(|| format!("cannot read {}", extra.display()))?,
    );
    std::fs::create_dir_all(build).with_context(|| format!("cannot create {}", build.display()))?;
    let out = build.join(format!("fragment{}.config", flavour.suffix()));
    std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}

/// Configures the build directory `build` of the source tree `src`.
/// `make` returns the kernel's make command for a target, with its flags.
pub fn configure(
    src: &Path,
    build: &Path,
    fragment: &Path,
    log: &Path,
    make_cmd: &dyn Fn(&str) -> Cmd,
) -> Result<()> {
    make_cmd("tinyconfig")
        .logged(log)
        .context("make tinyconfig")?;
    let config = build.join(".config");
    Cmd::new("sh")
        .arg(src.join("scripts/kconfig/merge_config.sh"))
        .arg("-m")
        .arg("-O")
        .arg(build)
        .arg(&config)
        .arg(fragment)
        .dir(src)
        .logged(log)
        .context("merging the config fragment with merge_config.sh")?;
    make_cmd("olddefconfig")
        .logged(log)
        .context("make olddefconfig")?;

    let wanted = std::fs::read_to_string(fragment)
        .with_context(|| format!("cannot read {}", fragment.display()))?;
    let got = std::fs::read_to_string(&config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let dropped = dropped_options(&wanted, &got);
    if !dropped.is_empty() {
        let list: Vec<String> = dropped.iter().map(|d| d.to_string()).collect();
        bail!(
            "{} asks for options that kconfig did not keep (unmet dependency or unknown symbol):\n  {}\n\
             Add the missing dependencies to the fragment, or remove the options. Full config: {}",
            fragment.display(),
            list.join("\n  "),
            config.display()
        );
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub struct Dropped {
    pub option: String,
    pub wanted: String,
    pub got: String,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: wanted {}, got {}",
            self.option, self.wanted, self.got
        )
    }
}

/// Options of `fragment` whose value differs in the final `config`.
pub fn dropped_options(fragment: &str, config: &str) -> Vec<Dropped> {
    let have = parse(config);
    parse(fragment)
        .into_iter()
        .filter_map(|(option, wanted)| {
            let got = have
                .get(&option)
                .cloned()
                .unwrap_or_else(|| "n".to_string());
            (got != wanted).then_some(Dropped {
                option,
                wanted,
                got,
            })
        })
        .collect()
}

/// The options a fragment sets, one `CONFIG_X=v` per line in a fixed order:
/// what the build depends on (a comment edit must not rebuild a kernel).
pub fn canonical(fragment: &str) -> String {
    parse(fragment)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect()
}

/// `CONFIG_X=v` and `# CONFIG_X is not set` (value "n") lines.
fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if let Some(name) = line
                .strip_prefix("# ")
                .and_then(|l| l.strip_suffix(" is not set"))
            {
                return name
                    .starts_with("CONFIG_")
                    .then(|| (name.to_string(), "n".to_string()));
            }
            let (name, value) = line.split_once('=')?;
            name.starts_with("CONFIG_")
                .then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_options_pass() {
        let fragment = "# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S=\"x\"\n";
        let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S=\"x\"\nCONFIG_OTHER=y\n";
        assert!(dropped_options(fragment, config).is_empty());
    }

    #[test]
    fn silently_dropped_options_are_named() {
        let fragment = "CONFIG_A=y\nCONFIG_GONE=y\nCONFIG_M=m\n# CONFIG_B is not set\n";
        let config = "CONFIG_A=y\n# CONFIG_GONE is not set\nCONFIG_M=y\nCONFIG_B=y\n";
        let dropped = dropped_options(fragment, config);
        let names: Vec<&str> = dropped.iter().map(|d| d.option.as_str()).collect();
        assert_eq!(names, ["CONFIG_B", "CONFIG_GONE", "CONFIG_M"]);
        assert_eq!(dropped[1].to_string(), "CONFIG_GONE: wanted y, got n");
    }

    #[test]
    fn an_option_absent_from_the_config_counts_as_n() {
        let dropped = dropped_options("CONFIG_NEW=y\n", "CONFIG_A=y\n");
        assert_eq!(dropped[0].got, "n");
        assert!(dropped_options("# CONFIG_NEW is not set\n", "").is_empty());
    }

    #[test]
    fn canonical_form_ignores_comments_and_order() {
        let a = canonical("# why\nCONFIG_B=y\nCONFIG_A=y\n");
        assert_eq!(a, canonical("CONFIG_A=y\n\n# other words\nCONFIG_B=y\n"));
        assert_eq!(a, "CONFIG_A=y\nCONFIG_B=y\n");
        assert_ne!(a, canonical("CONFIG_A=y\n# CONFIG_B is not set\n"));
    }

    #[test]
    fn the_debug_fragment_adds_its_options_and_keeps_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let merged = fragment_for(Flavour::Debug, dir.path()).unwrap();
        let options = parse(&std::fs::read_to_string(merged).unwrap());
        for (option, value) in [
            ("CONFIG_IA32_EMULATION", "y"),
            ("CONFIG_KASAN", "y"),
            ("CONFIG_PROVE_LOCKING", "y"),
            ("CONFIG_DEBUG_KMEMLEAK", "y"),
            ("CONFIG_SLUB_TINY", "n"),
            ("CONFIG_PANIC_ON_OOPS", "n"),
        ] {
            assert_eq!(
                options.get(option).map(String::as_str),
                Some(value),
                "{option}"
            );
        }
        let default = fragment_for(Flavour::Default, dir.path()).unwrap();
        assert_eq!(default, paths::config_fragment());
        assert_ne!(
            canonical(&std::fs::read_to_string(default).unwrap()),
            canonical(
                &options
                    .iter()
                    .map(|(k, v)| format!("{k}={v}\n"))
                    .collect::<String>()
            )
        );
    }

    #[test]
    fn the_criu_fragment_adds_its_options_and_keeps_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let merged = fragment_for(Flavour::Criu, dir.path()).unwrap();
        let options = parse(&std::fs::read_to_string(merged).unwrap());
        for option in [
            "CONFIG_IA32_EMULATION",
            "CONFIG_UNIX",
            "CONFIG_NF_TABLES_INET",
            "CONFIG_CGROUPS",
            "CONFIG_ADVISE_SYSCALLS",
        ] {
            assert_eq!(
                options.get(option).map(String::as_str),
                Some("y"),
                "{option}"
            );
        }
        let base = parse(&std::fs::read_to_string(paths::config_fragment()).unwrap());
        assert!(
            !base.contains_key("CONFIG_UNIX"),
            "criu's options stay out of kernel.config"
        );
        assert!(
            !options.contains_key("CONFIG_KASAN"),
            "not the debug fragment"
        );
    }

    #[test]
    fn the_repo_fragment_parses() {
        let text = std::fs::read_to_string(crate::host::paths::config_fragment()).unwrap();
        let options = parse(&text);
        assert!(options
            .get("CONFIG_IA32_EMULATION")
            .is_some_and(|v| v == "y"));
        assert!(options.len() > 10);
    }
}
