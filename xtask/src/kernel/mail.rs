//! One `git format-patch` mail as text: its mbox `From ` line, headers,
//! in-body `From:`, commit message, trailers and the rest (notes, diffstat,
//! diff, signature), and the rewrites `format-series` makes to it.

use crate::kernel::identity::{address_key, Person};
use anyhow::{bail, Context, Result};

/// What every mail of `git format-patch` ends its mbox separator line with.
const MBOX_DATE: &str = " Mon Sep 17 00:00:00 2001";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// `From <sha> Mon Sep 17 00:00:00 2001`
    pub separator: String,
    /// Name and unfolded value, in order.
    pub headers: Vec<(String, String)>,
    /// Everything after the blank line that ends the headers.
    pub body: String,
}

impl Mail {
    pub fn parse(text: &str) -> Result<Mail> {
        let mut lines = text.split_inclusive('\n');
        let separator = lines.next().unwrap_or_default().trim_end().to_string();
        if !(separator.starts_with("From ") && separator.ends_with(MBOX_DATE)) {
            bail!(
                "not a git format-patch mail: the first line is {separator:?}, not \
                 `From <sha>{MBOX_DATE}`"
            );
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut consumed = separator.len() + 1;
        for line in lines {
            consumed += line.len();
            let line = line.trim_end_matches('\n');
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                let (_, value) = headers
                    .last_mut()
                    .context("a continuation line before any header")?;
                value.push_str(line);
            } else {
                let (name, value) = line
                    .split_once(':')
                    .with_context(|| format!("header line without a colon: {line:?}"))?;
                headers.push((name.to_string(), value.trim_start().to_string()));
            }
        }
        Ok(Mail {
            separator,
            headers,
            body: text.get(consumed..).unwrap_or_default().to_string(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces the header's value, or adds it after the last header.
    pub fn set_header(&mut self, name: &str, value: String) {
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, v)) => *v = value,
            None => self.headers.push((name.to_string(), value)),
        }
    }

    /// The subject without its `[PATCH ...]` prefix.
    pub fn title(&self) -> Result<String> {
        let subject = self.header("Subject").context("the mail has no Subject:")?;
        Ok(strip_prefix(subject).to_string())
    }

    /// The mail as git writes it: headers folded at 78 columns.
    pub fn render(&self) -> String {
        let mut out = format!("{}\n", self.separator);
        for (name, value) in &self.headers {
            out.push_str(&fold(&format!("{name}: {value}")));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.body);
        out
    }
}

/// `[PATCH v2 03/10] title` → `title` (one leading bracket group).
pub fn strip_prefix(subject: &str) -> &str {
    match subject.strip_prefix('[').and_then(|s| s.split_once(']')) {
        Some((_, rest)) => rest.trim_start(),
        None => subject,
    }
}

/// `[PATCH v2 03/10]`: numbers as wide as the total, as git numbers them.
pub fn subject_prefix(prefix: &str, number: usize, total: usize) -> String {
    let width = total.to_string().len();
    format!("[{prefix} {number:0width$}/{total}]")
}

/// A header line folded at spaces so no line passes 78 columns where a
/// space allows it (RFC 5322 2.1.1); unfolding gives the line back.
/// Address lists fold only between addresses, never inside a name.
fn fold(line: &str) -> String {
    let is_list = ["Cc:", "To:"].iter().any(|h| line.starts_with(h));
    let words: Vec<&str> = match is_list {
        true => line
            .split_inclusive(", ")
            .map(|w| w.strip_suffix(' ').unwrap_or(w))
            .collect(),
        false => line.split(' ').collect(),
    };
    let mut out = String::new();
    let mut current = String::new();
    for (i, word) in words.into_iter().enumerate() {
        if i > 0 && current.len() + 1 + word.len() > 78 && !current.trim().is_empty() {
            out.push_str(&current);
            out.push('\n');
            current = String::new();
        }
        if i > 0 {
            current.push(' ');
        }
        current.push_str(word);
    }
    out.push_str(&current);
    out
}

/// A `From:` header value: RFC 2047 for a name that is not ASCII, quotes
/// for one with RFC 822 specials (what `git format-patch` does).
pub fn header_address(person: &Person) -> String {
    let name = &person.name;
    if !name.is_ascii() {
        let mut encoded = String::from("=?UTF-8?q?");
        for byte in name.bytes() {
            if byte.is_ascii_alphanumeric() || b"!*+-/".contains(&byte) {
                encoded.push(byte as char);
            } else {
                encoded.push_str(&format!("={byte:02X}"));
            }
        }
        format!("{encoded}?= <{}>", person.email)
    } else if name.contains(|c| "()<>[]:;@\\,.\"".contains(c)) {
        let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{quoted}\" <{}>", person.email)
    } else {
        format!("{name} <{}>", person.email)
    }
}

/// The body split where `git am` splits it: an in-body `From:` (the author
/// when it differs from the sender), the commit message, and the rest
/// from the `---` line on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub in_body_from: Option<String>,
    pub message: Vec<String>,
    pub rest: String,
}

impl Body {
    pub fn parse(body: &str) -> Body {
        let (message, rest) = match body.find("\n---\n") {
            Some(at) => (&body[..at + 1], &body[at + 1..]),
            None if body.starts_with("---\n") => ("", body),
            None => (body, ""),
        };
        let mut lines: Vec<String> = message.lines().map(String::from).collect();
        let mut in_body_from = None;
        if let Some(first) = lines.first() {
            if let Some(who) = first.strip_prefix("From: ") {
                in_body_from = Some(who.to_string());
                let blank = lines.get(1).is_some_and(|l| l.is_empty());
                lines.drain(..if blank { 2 } else { 1 });
            }
        }
        Body {
            in_body_from,
            message: lines,
            rest: rest.to_string(),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(who) = &self.in_body_from {
            out.push_str(&format!("From: {who}\n\n"));
        }
        for line in &self.message {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&self.rest);
        out
    }

    /// The index of the first line of the trailer block: the last
    /// paragraph, if every line of it is `Token: value`.
    fn trailer_start(&self) -> Option<usize> {
        let end = self.message.iter().rposition(|l| !l.trim().is_empty())? + 1;
        let start = self.message[..end]
            .iter()
            .rposition(|l| l.trim().is_empty())
            .map_or(0, |i| i + 1);
        let is_trailer = |l: &String| {
            l.split_once(": ").is_some_and(|(token, _)| {
                !token.is_empty() && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        };
        (start > 0 && self.message[start..end].iter().all(is_trailer)).then_some(start)
    }

    /// The trailer lines (empty when the message has no trailer block).
    pub fn trailers(&self) -> &[String] {
        match self.trailer_start() {
            Some(start) => {
                let end = self
                    .message
                    .iter()
                    .rposition(|l| !l.trim().is_empty())
                    .unwrap()
                    + 1;
                &self.message[start..end]
            }
            None => &[],
        }
    }

    /// Replaces the trailer block (adds one after a blank line if none).
    fn set_trailers(&mut self, trailers: Vec<String>) {
        let end = self
            .message
            .iter()
            .rposition(|l| !l.trim().is_empty())
            .map_or(0, |i| i + 1);
        let start = self.trailer_start().unwrap_or_else(|| {
            self.message.truncate(end);
            self.message.push(String::new());
            end + 1
        });
        let tail: Vec<String> = self.message.split_off(end.max(start));
        self.message.truncate(start);
        self.message.extend(trailers);
        self.message.extend(tail);
    }
}

/// How one patch of the series goes out.
pub struct PatchRewrite<'a> {
    pub sender: &'a Person,
    /// `[PATCH v2 03/10]`
    pub prefix: String,
    /// Addresses to Cc when the patch does not Cc them yet, in order.
    pub cc: &'a [String],
}

/// One patch rewritten for sending: `From:` is the sender; a real author
/// who is someone else is kept in an in-body `From:` (git am takes it as
/// the author) and keeps their Signed-off-by, the sender's is added last;
/// placeholder (`.invalid`) sign-offs become the sender's; missing Cc
/// lines are added after the existing ones; the subject gets `prefix`.
pub fn rewrite_patch(mail: &Mail, how: &PatchRewrite) -> Result<Mail> {
    let mut out = mail.clone();
    let mut body = Body::parse(&mail.body);
    let from_header = mail.header("From").context("the mail has no From:")?;
    let written_author = body.in_body_from.as_deref().unwrap_or(from_header);
    let author = Person::parse(written_author)
        .with_context(|| format!("the author {written_author:?} is not `Name <email>`"))?;
    let author = if author.is_placeholder() {
        how.sender.clone()
    } else {
        author
    };
    body.in_body_from = (!author.same_address(how.sender)).then(|| author.to_string());
    if body.trailers().is_empty() {
        bail!("the commit message has no trailers (no Signed-off-by:)");
    }
    let trailers = sign_off(body.trailers(), how.sender);
    body.set_trailers(add_cc(trailers, how.cc, how.sender));
    out.set_header("From", header_address(how.sender));
    out.set_header("Subject", format!("{} {}", how.prefix, mail.title()?));
    out.body = body.render();
    Ok(out)
}

/// Placeholder sign-offs become the sender's (once), and the sender's is last.
fn sign_off(trailers: &[String], sender: &Person) -> Vec<String> {
    let mine = format!("Signed-off-by: {sender}");
    let is_placeholder = |l: &String| {
        l.strip_prefix("Signed-off-by: ")
            .and_then(Person::parse)
            .is_some_and(|p| p.is_placeholder())
    };
    let is_mine = |l: &String| {
        l.strip_prefix("Signed-off-by: ")
            .and_then(Person::parse)
            .is_some_and(|p| p.same_address(sender))
    };
    let mut out: Vec<String> = Vec::new();
    for line in trailers {
        let line = if is_placeholder(line) { &mine } else { line };
        if !(is_mine(line) && out.iter().any(is_mine)) {
            out.push(line.clone());
        }
    }
    if !out.last().is_some_and(is_mine) {
        out.retain(|l| !is_mine(l));
        out.push(mine);
    }
    out
}

/// `cc` addresses not Cc'd yet, after the last `Cc:` (else before the
/// first `Signed-off-by:`), in the order given; never the sender (who
/// gets the mail as its sender).
fn add_cc(mut trailers: Vec<String>, cc: &[String], sender: &Person) -> Vec<String> {
    let mut have: Vec<String> = std::iter::once(sender.email.to_ascii_lowercase())
        .chain(
            trailers
                .iter()
                .filter_map(|l| l.strip_prefix("Cc: "))
                .map(address_key),
        )
        .collect();
    let at = match trailers.iter().rposition(|l| l.starts_with("Cc: ")) {
        Some(last) => last + 1,
        None => trailers
            .iter()
            .position(|l| l.starts_with("Signed-off-by: "))
            .unwrap_or(trailers.len()),
    };
    let mut new = Vec::new();
    for address in cc {
        if !have.contains(&address_key(address)) {
            have.push(address_key(address));
            new.push(format!("Cc: {address}"));
        }
    }
    trailers.splice(at..at, new);
    trailers
}

/// The Cc addresses of a rewritten patch, in order.
pub fn cc_of(mail: &Mail) -> Vec<String> {
    Body::parse(&mail.body)
        .trailers()
        .iter()
        .filter_map(|l| l.strip_prefix("Cc: "))
        .map(|a| a.trim().to_string())
        .collect()
}

/// Files a patch changes, from its `diff --git a/X b/X` lines.
pub fn touched_files(mail: &Mail) -> Vec<String> {
    mail.body
        .lines()
        .filter_map(|l| l.strip_prefix("diff --git a/"))
        .filter_map(|l| l.split_once(" b/").map(|(a, _)| a.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const PATCH: &str = include_str!("../../testdata/format-series/0003-in.patch");
    const PATCH_OUT: &str = include_str!("../../testdata/format-series/0003-out.patch");

    fn jane() -> Person {
        Person {
            name: "Jane Doe".into(),
            email: "jane@example.org".into(),
        }
    }

    fn rewrite(text: &str, sender: &Person, cc: &[&str]) -> String {
        let cc: Vec<String> = cc.iter().map(|s| s.to_string()).collect();
        let how = PatchRewrite {
            sender,
            prefix: subject_prefix("PATCH v3", 3, 10),
            cc: &cc,
        };
        rewrite_patch(&Mail::parse(text).unwrap(), &how)
            .unwrap()
            .render()
    }

    #[test]
    fn a_recorded_patch_is_rewritten_as_recorded() {
        let got = rewrite(
            PATCH,
            &jane(),
            &[
                "Thomas Gleixner <tglx@linutronix.de>",
                "LINUX-MM@kvack.org",
                "Jane Doe <jane@example.org>",
                "linux-api@vger.kernel.org",
            ],
        );
        assert_eq!(got, PATCH_OUT);
    }

    #[test]
    fn parse_and_render_give_the_same_bytes() {
        let mail = Mail::parse(PATCH).unwrap();
        assert_eq!(mail.render(), PATCH);
        let body = Body::parse(&mail.body);
        assert_eq!(body.render(), mail.body);
        assert_eq!(
            mail.title().unwrap(),
            "x86/mm: Bound compat mmap() and mremap() ranges by the 32-bit task size"
        );
        assert_eq!(
            touched_files(&mail),
            [
                "arch/x86/include/asm/elf.h",
                "arch/x86/kernel/sys_x86_64.c",
                "arch/x86/mm/hugetlbpage.c",
                "arch/x86/mm/mmap.c"
            ]
        );
    }

    #[test]
    fn a_real_author_is_kept_in_the_body_and_signs_before_the_sender() {
        let text = PATCH.replace(
            "Compat Mode Dev <dev@compat-mode.invalid>",
            "Ann Author <ann@example.com>",
        );
        let out = rewrite(&text, &jane(), &[]);
        assert!(
            out.contains("\nFrom: Jane Doe <jane@example.org>\n"),
            "{out}"
        );
        assert!(
            out.contains("\n\nFrom: Ann Author <ann@example.com>\n\nA 64-bit"),
            "{out}"
        );
        assert!(out.contains(
            "Signed-off-by: Ann Author <ann@example.com>\nSigned-off-by: Jane Doe <jane@example.org>\n---\n"
        ), "{out}");
        // Rewriting its own output changes nothing.
        assert_eq!(rewrite(&out, &jane(), &[]), out);
    }

    #[test]
    fn the_sender_who_is_the_author_gets_no_in_body_from_and_signs_once() {
        let text = PATCH.replace(
            "Compat Mode Dev <dev@compat-mode.invalid>",
            "Jane Doe <JANE@example.org>",
        );
        let out = rewrite(&text, &jane(), &[]);
        assert!(!out.contains("\n\nFrom: "), "{out}");
        assert_eq!(out.matches("Signed-off-by:").count(), 1, "{out}");
    }

    #[test]
    fn a_mail_without_trailers_or_separator_is_refused() {
        let message_end = PATCH.find("\n\nFixes: ").unwrap();
        let trailers_end = PATCH.find("\n---\n").unwrap();
        let no_trailers = format!("{}{}", &PATCH[..message_end], &PATCH[trailers_end..]);
        let how = PatchRewrite {
            sender: &jane(),
            prefix: "[PATCH]".into(),
            cc: &[],
        };
        let err = rewrite_patch(&Mail::parse(&no_trailers).unwrap(), &how).unwrap_err();
        assert!(err.to_string().contains("has no trailers"), "{err}");
        let err = Mail::parse("diff --git a/x b/x\n").unwrap_err().to_string();
        assert!(err.contains("not a git format-patch mail"), "{err}");
    }

    #[test]
    fn every_patch_of_the_series_parses_and_renders_to_its_own_bytes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-patches");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "patch") {
                let text = std::fs::read_to_string(&path).unwrap();
                let mail = Mail::parse(&text).unwrap();
                assert_eq!(mail.render(), text, "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 10, "only {seen} patches in {}", dir.display());
    }

    #[test]
    fn names_are_encoded_for_headers_as_git_does() {
        let p = |name: &str| Person {
            name: name.into(),
            email: "a@b.org".into(),
        };
        assert_eq!(header_address(&p("Jane Doe")), "Jane Doe <a@b.org>");
        assert_eq!(
            header_address(&p("H. Peter Anvin")),
            "\"H. Peter Anvin\" <a@b.org>"
        );
        assert_eq!(
            header_address(&p("Jörg Rödel")),
            "=?UTF-8?q?J=C3=B6rg=20R=C3=B6del?= <a@b.org>"
        );
    }

    #[test]
    fn long_subjects_fold_and_unfold_to_the_same_line() {
        let line = "Subject: [PATCH v2 08/10] x86/arch_prctl: Add ARCH_SET_COMPAT, ARCH_SET_NATIVE and ARCH_GET_COMPAT";
        let folded = fold(line);
        assert!(folded.lines().all(|l| l.len() <= 78), "{folded}");
        assert_eq!(folded.lines().count(), 2);
        assert_eq!(folded.replace('\n', ""), line);
        assert_eq!(subject_prefix("PATCH v2", 0, 10), "[PATCH v2 00/10]");
        assert_eq!(subject_prefix("RFC PATCH", 7, 9), "[RFC PATCH 7/9]");
    }
}
