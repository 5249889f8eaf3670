//! The architecture invariants of docs/design.md, checked on the source
//! text so CI keeps them: every `crate::` path in every file is an edge
//! from its module to the module that defines the item, and
//! - edges only point down the layers (host, kernel, vm, results,
//!   pipeline, flags, commands, main), never up;
//! - the module graph has no cycle, inside a layer either;
//! - nothing uses an item of `main.rs`; only `main.rs` and `commands/`
//!   use `flags`; a command never uses another command;
//! - `kernel/` and `vm/` do not print; only `host/process.rs` builds a
//!   `std::process::Command`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: [&str; 8] = [
    "host", "kernel", "vm", "results", "pipeline", "flags", "commands", "main",
];
const THIS_FILE: &str = "layering";

/// Module path ("host::process", "main" for the crate root) → source text.
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect_rs(&src, &mut files);
    files
        .into_iter()
        .map(|file| {
            let rel = file.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let text = std::fs::read_to_string(&file).unwrap();
            (parts.join("::"), text)
        })
        .filter(|(name, _)| name != THIS_FILE)
        .collect()
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every path named after `crate::`, with `{a, b::c}` groups expanded one level.
fn crate_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let base = rest[..end].trim_end_matches(':').to_string();
        if rest[end..].starts_with('{') && rest[..end].ends_with("::") {
            let close = rest[end..].find('}').map_or(rest.len(), |c| end + c);
            for item in rest[end + 1..close].split(',') {
                let item = item.trim();
                match item {
                    "" => {}
                    "self" => out.push(base.clone()),
                    _ => out.push(format!("{base}::{item}")),
                }
            }
        } else {
            out.push(base);
        }
    }
    out
}

/// The module defining `path`: its longest prefix that is a module, else main.
fn owner(path: &str, modules: &BTreeMap<String, String>) -> String {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains_key(m))
        .unwrap_or_else(|| "main".into())
}

fn layer(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    LAYERS
        .iter()
        .position(|l| *l == top)
        .unwrap_or_else(|| panic!("module {module} is in no layer of docs/design.md"))
}

/// `from` → the modules it uses (itself excluded).
fn edges(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    modules
        .iter()
        .map(|(from, text)| {
            let to = crate_paths(text)
                .iter()
                .map(|p| owner(p, modules))
                .filter(|to| to != from)
                .collect();
            (from.clone(), to)
        })
        .collect()
}

/// The broken rules, one line each.
fn violations(modules: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (from, tos) in edges(modules) {
        for to in &tos {
            let command = |m: &str| m.split("::").nth(1).map(String::from);
            if layer(to) > layer(&from) {
                out.push(format!("{from} uses {to}, which is above it"));
            }
            if to == "main" {
                out.push(format!("{from} uses an item of main.rs"));
            }
            if to == "flags" && !(from == "main" || from.starts_with("commands")) {
                out.push(format!("{from} uses the CLI types of flags.rs"));
            }
            if from.starts_with("commands::")
                && to.starts_with("commands::")
                && command(&from) != command(to)
            {
                out.push(format!("command {from} uses command {to}"));
            }
        }
    }
    for (name, text) in modules {
        let quiet = name.starts_with("kernel") || name.starts_with("vm");
        if quiet
            && ["println!", "eprintln!", "print!(", "ui::"]
                .iter()
                .any(|p| text.contains(p))
        {
            out.push(format!("{name} prints (kernel/ and vm/ return facts)"));
        }
        if name != "host::process" && text.contains(concat!("Command", "::new")) {
            out.push(format!("{name} builds a Command (use host::process::Cmd)"));
        }
    }
    out.extend(cycle(&edges(modules)).map(|c| format!("cycle: {}", c.join(" -> "))));
    out
}

/// One cycle of the graph, if there is any.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_architecture_invariants_hold() {
    let modules = modules();
    assert!(modules.len() > 30, "found only {modules:?}");
    let broken = violations(&modules);
    assert!(broken.is_empty(), "\n{}", broken.join("\n"));
}

#[test]
fn the_checker_sees_back_edges_cycles_and_prints() {
    let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let modules = m(&[
        ("main", "fn main() {}"),
        ("flags", ""),
        ("host::ui", "use crate::host::process::{self, Cmd};"),
        (
            "host::process",
            "use crate::host::ui;\nuse crate::kernel::Variant;",
        ),
        ("kernel", "pub enum Variant {}"),
        (
            "vm::boot",
            "fn f() { eprintln!(\"x\"); crate::flags::Cli; }",
        ),
        ("commands::a", "use crate::commands::b::run;"),
        ("commands::b", "use crate::Variant;"),
    ]);
    let broken = violations(&modules);
    let has = |s: &str| broken.iter().any(|b| b.contains(s));
    assert!(
        has("host::process uses kernel, which is above it"),
        "{broken:?}"
    );
    assert!(has("vm::boot prints"), "{broken:?}");
    assert!(has("vm::boot uses the CLI types"), "{broken:?}");
    assert!(
        has("command commands::a uses command commands::b"),
        "{broken:?}"
    );
    assert!(has("commands::b uses an item of main.rs"), "{broken:?}");
    assert!(has("cycle: host::"), "{broken:?}");
    assert_eq!(
        crate_paths("use crate::host::{deps, process::Cmd, self};"),
        ["host::deps", "host::process::Cmd", "host"]
    );
}
