//! Who sends the series: the git identity the user would commit with, as
//! git resolves it (`GIT_AUTHOR_NAME`/`_EMAIL`, the repository's config,
//! the global one), and the people named in a patch's `From:` and trailers.

use crate::host::process::Cmd;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// A name and an e-mail address, as in `Name <email>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: String,
}

impl Person {
    /// `Name <email>` (a quoted name loses its quotes); None if there is
    /// no `<...>` or nothing before it.
    pub fn parse(text: &str) -> Option<Person> {
        let open = text.rfind('<')?;
        let close = open + text[open..].find('>')?;
        let name = text[..open].trim().trim_matches('"').replace("\\\"", "\"");
        let email = text[open + 1..close].trim().to_string();
        (!name.is_empty()).then_some(Person { name, email })
    }

    /// Same address (what git and mail readers compare), any case.
    pub fn same_address(&self, other: &Person) -> bool {
        self.email.eq_ignore_ascii_case(&other.email)
    }

    /// An address in `.invalid`, the TLD reserved for addresses that must
    /// not be mailed (RFC 2606): the series' placeholder author is one.
    pub fn is_placeholder(&self) -> bool {
        is_invalid_address(&self.email)
    }
}

/// `Name <email>` as in trailers and in-body `From:` lines.
impl std::fmt::Display for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} <{}>", self.name, self.email)
    }
}

/// The address part of `Name <email>` or a bare address, lower case: what
/// two Cc lines are compared by.
pub fn address_key(text: &str) -> String {
    match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text,
    }
    .trim()
    .to_ascii_lowercase()
}

fn is_invalid_address(email: &str) -> bool {
    let domain = email.rsplit('@').next().unwrap_or_default();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    domain == "invalid" || domain.ends_with(".invalid")
}

/// The identity the user sends with, as git resolves it in `repo`.
pub fn sender(repo: &Path) -> Result<Person> {
    sender_with(Cmd::new("git").arg("-C").arg(repo))
}

/// `sender` with a prepared `git` command (tests isolate its config).
fn sender_with(git: Cmd) -> Result<Person> {
    let out = git
        .args(["var", "GIT_AUTHOR_IDENT"])
        .output()
        .context("running git var GIT_AUTHOR_IDENT")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "git has no identity to send the series with (user.name and user.email \
             are not both set):\n{}\n{}",
            stderr.trim(),
            HOW_TO_SET
        );
    }
    let ident = String::from_utf8_lossy(&out.stdout);
    let person = parse_ident(&ident)
        .with_context(|| format!("git var GIT_AUTHOR_IDENT gave {:?}", ident.trim()))?;
    check_sender(&person)?;
    Ok(person)
}

const HOW_TO_SET: &str = "Set the identity you send patches with:\n  \
     git config --global user.name \"Your Name\"\n  \
     git config --global user.email \"you@example.org\"";

/// `Name <email> 1700000000 +0100` → the person.
fn parse_ident(ident: &str) -> Result<Person> {
    let close = ident.rfind('>').context("no <email> in the identity")?;
    let open = ident[..close]
        .rfind('<')
        .context("no <email> in the identity")?;
    Ok(Person {
        name: ident[..open].trim().to_string(),
        email: ident[open + 1..close].trim().to_string(),
    })
}

/// A series goes out under a real name and a deliverable address.
fn check_sender(person: &Person) -> Result<()> {
    let problem = if person.name.is_empty() {
        Some("user.name is empty".to_string())
    } else if person.email.is_empty() || !person.email.contains('@') {
        Some(format!("user.email {:?} is not an address", person.email))
    } else if person.is_placeholder() {
        Some(format!(
            "user.email {} is a placeholder (the .invalid domain cannot receive mail)",
            person.email
        ))
    } else if person.email.ends_with(".(none)") {
        Some(format!("user.email {} was guessed by git", person.email))
    } else {
        None
    };
    match problem {
        Some(problem) => bail!("git identity {person}: {problem}.\n{HOW_TO_SET}"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `git` in `repo` that sees no system or global config but `global`.
    fn isolated_git(home: &Path, repo: &Path, global: &str) -> Cmd {
        let config = home.join("gitconfig");
        std::fs::write(&config, global).unwrap();
        Cmd::new("git")
            .arg("-C")
            .arg(repo)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home)
            .env("GIT_CONFIG_GLOBAL", &config)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("EMAIL", "")
    }

    fn scratch_repo() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        Cmd::new("git")
            .args(["init", "-q"])
            .arg(&repo)
            .read()
            .unwrap();
        (dir, repo)
    }

    #[test]
    fn no_identity_is_refused_with_the_command_to_set_it() {
        let (home, repo) = scratch_repo();
        let err = format!(
            "{:#}",
            sender_with(isolated_git(home.path(), &repo, "")).unwrap_err()
        );
        assert!(err.contains("user.name and user.email"), "{err}");
        assert!(
            err.contains("git config --global user.name \"Your Name\""),
            "{err}"
        );
        assert!(err.contains("git config --global user.email"), "{err}");
    }

    #[test]
    fn the_placeholder_identity_is_refused() {
        let (home, repo) = scratch_repo();
        let global = "[user]\n\tname = Compat Mode Dev\n\temail = dev@compat-mode.invalid\n";
        let err = format!(
            "{:#}",
            sender_with(isolated_git(home.path(), &repo, global)).unwrap_err()
        );
        assert!(
            err.contains("dev@compat-mode.invalid is a placeholder"),
            "{err}"
        );
        assert!(err.contains("git config --global user.email"), "{err}");
    }

    #[test]
    fn the_repository_config_wins_over_the_global_one() {
        let (home, repo) = scratch_repo();
        let global = "[user]\n\tname = Global Person\n\temail = global@example.org\n";
        let git = isolated_git(home.path(), &repo, global);
        assert_eq!(
            sender_with(git).unwrap(),
            Person {
                name: "Global Person".into(),
                email: "global@example.org".into()
            }
        );
        Cmd::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["config", "user.email", "local@example.org"])
            .read()
            .unwrap();
        let git = isolated_git(home.path(), &repo, global);
        assert_eq!(sender_with(git).unwrap().email, "local@example.org");
    }

    #[test]
    fn identities_that_cannot_send_are_named() {
        let person = |name: &str, email: &str| Person {
            name: name.into(),
            email: email.into(),
        };
        let why = |p: Person| format!("{:#}", check_sender(&p).unwrap_err());
        assert!(why(person("", "a@b.org")).contains("user.name is empty"));
        assert!(why(person("A", "")).contains("is not an address"));
        assert!(why(person("A", "a@host.INVALID")).contains("placeholder"));
        assert!(why(person("A", "root@vm.(none)")).contains("guessed by git"));
        check_sender(&person("Jörg Rödel", "joro@8bytes.org")).unwrap();
    }

    #[test]
    fn people_and_addresses_parse() {
        assert_eq!(
            Person::parse("\"H. Peter Anvin\" <hpa@zytor.com>").unwrap(),
            Person {
                name: "H. Peter Anvin".into(),
                email: "hpa@zytor.com".into()
            }
        );
        assert!(Person::parse("x86@kernel.org").is_none());
        assert_eq!(address_key("\"A\" <X86@Kernel.org>"), "x86@kernel.org");
        assert_eq!(
            address_key(" linux-api@vger.kernel.org"),
            "linux-api@vger.kernel.org"
        );
        assert_eq!(
            parse_ident("Jane Doe <jane@example.org> 1700000000 +0100\n").unwrap(),
            Person {
                name: "Jane Doe".into(),
                email: "jane@example.org".into()
            }
        );
    }
}
