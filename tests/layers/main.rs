//! The shape of `shared/src`: which file imports which, checked from the source text.
//!
//! Every reference to another file of the crate counts: `crate::a::b` and `super::x` paths (in
//! `use` items and in expressions), and relative paths to a file's own child modules. A path that
//! names an item re-exported by a `mod.rs` (or `lib.rs`) is followed to the file that defines it,
//! so `pub use` facades do not count as imports of the facade. Comments are ignored.
//!
//! Run: `cargo test -p ragbot-tests --test layers -- --nocapture` prints the graph's layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

struct Crate {
    /// Module path → file (relative to `shared/src`).
    files: BTreeMap<ModPath, String>,
    /// Per module: re-exported name → module path it comes from (`pub use child::{A, B}`).
    reexports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
    /// Per file: its source with comments removed.
    source: BTreeMap<ModPath, String>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Removes `//` and `/* */` comments and the contents of string literals (so a URL or a message
/// never reads as a path).
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"')) {
            // Raw string r"…" / r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') || (i > 0 && is_ident(b[i - 1])) {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&b'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '"') — not a lifetime ('a).
            if b.get(i + 2) == Some(&b'\'') {
                i += 3;
                out.push_str("' '");
            } else if b.get(i + 1) == Some(&b'\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Parses a path tree starting at `s` (after a leading `crate::`/`super::`/child prefix):
/// `a::b::{c, d::{e, f}}` → [[a,b,c],[a,b,d,e],[a,b,d,f]].
fn parse_tree(s: &[u8], i: &mut usize) -> Vec<ModPath> {
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && s[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut prefix: ModPath = Vec::new();
    loop {
        skip_ws(i);
        if *i < s.len() && s[*i] == b'{' {
            *i += 1;
            let mut all = Vec::new();
            loop {
                skip_ws(i);
                if *i >= s.len() {
                    break;
                }
                if s[*i] == b'}' {
                    *i += 1;
                    break;
                }
                if s[*i] == b',' {
                    *i += 1;
                    continue;
                }
                let before = *i;
                for sub in parse_tree(s, i) {
                    let mut p = prefix.clone();
                    p.extend(sub);
                    all.push(p);
                }
                // Skip `as alias` and anything unparsed up to the next separator.
                while *i < s.len() && s[*i] != b',' && s[*i] != b'}' {
                    if s[*i] == b'{' {
                        break;
                    }
                    *i += 1;
                }
                if *i == before {
                    *i += 1;
                }
            }
            return all;
        }
        let start = *i;
        while *i < s.len() && (is_ident(s[*i]) || s[*i] == b'*') {
            *i += 1;
        }
        if *i == start {
            return vec![prefix];
        }
        prefix.push(String::from_utf8_lossy(&s[start..*i]).into_owned());
        if s.get(*i) == Some(&b':') && s.get(*i + 1) == Some(&b':') {
            *i += 2;
        } else {
            return vec![prefix];
        }
    }
}

impl Crate {
    fn load() -> Crate {
        let root = src_dir();
        let mut paths = Vec::new();
        walk(&root, &mut paths);
        let mut files = BTreeMap::new();
        let mut source = BTreeMap::new();
        for p in paths {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mut segs: ModPath = rel
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_owned)
                .collect();
            if segs.last().is_some_and(|s| s == "mod" || s == "lib") {
                segs.pop();
            }
            let text = strip(&std::fs::read_to_string(&p).unwrap());
            // Unit tests inside a file (`#[cfg(test)] mod tests { … }`) are not part of the build.
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            files.insert(segs.clone(), rel);
            source.insert(segs, text);
        }
        let mut krate = Crate {
            files,
            reexports: BTreeMap::new(),
            source,
        };
        let mods: Vec<ModPath> = krate.files.keys().cloned().collect();
        for m in mods {
            let text = krate.source[&m].clone();
            let mut map = BTreeMap::new();
            let starts = text
                .match_indices("pub use ")
                .map(|(at, m)| at + m.len())
                .chain(
                    text.match_indices("pub(crate) use ")
                        .map(|(at, m)| at + m.len()),
                );
            for start in starts.collect::<Vec<_>>() {
                let s = text.as_bytes();
                let mut i = start;
                for path in parse_tree(s, &mut i) {
                    if let (Some(name), Some(target)) = (
                        path.last(),
                        krate.resolve_module(&m, &path[..path.len() - 1]),
                    ) {
                        if target != m && name != "*" {
                            map.insert(name.clone(), target);
                        }
                    }
                }
            }
            krate.reexports.insert(m, map);
        }
        krate
    }

    /// The module a path relative to `from` (already stripped of `crate::`, or with `super`
    /// segments) names, if it is one of the crate's files: the longest prefix that is a file.
    fn resolve_module(&self, from: &ModPath, rel: &[String]) -> Option<ModPath> {
        let abs = self.absolute(from, rel)?;
        (0..=abs.len())
            .rev()
            .map(|n| abs[..n].to_vec())
            .find(|p| self.files.contains_key(p))
    }

    fn absolute(&self, from: &ModPath, rel: &[String]) -> Option<ModPath> {
        let mut base: ModPath;
        let mut rest = rel;
        match rel.first().map(String::as_str) {
            Some("crate") => {
                base = Vec::new();
                rest = &rel[1..];
            }
            Some("super") | Some("self") => {
                base = from.clone();
                while let Some(seg) = rest.first() {
                    match seg.as_str() {
                        "super" => {
                            base.pop()?;
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
            }
            _ => {
                // A relative path from a file: one of its child modules.
                base = from.clone();
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The file that defines what `path` (absolute) names: the longest module prefix, then through
    /// that module's re-exports of the next segment.
    fn defining(&self, abs: &[String]) -> Option<ModPath> {
        let mut m = (0..=abs.len())
            .rev()
            .map(|n| abs[..n].to_vec())
            .find(|p| self.files.contains_key(p))?;
        let mut rest = abs[m.len()..].to_vec();
        for _ in 0..8 {
            let Some(first) = rest.first() else { break };
            let Some(target) = self.reexports.get(&m).and_then(|r| r.get(first)) else {
                break;
            };
            let mut next = target.clone();
            next.extend(rest.iter().cloned());
            m = (0..=next.len())
                .rev()
                .map(|n| next[..n].to_vec())
                .find(|p| self.files.contains_key(p))?;
            rest = next[m.len()..].to_vec();
        }
        Some(m)
    }

    /// Every file `from` refers to.
    fn imports(&self, from: &ModPath) -> BTreeSet<ModPath> {
        let text = &self.source[from];
        let s = text.as_bytes();
        let children: BTreeSet<String> = self
            .files
            .keys()
            .filter(|k| k.len() == from.len() + 1 && k.starts_with(from))
            .map(|k| k.last().unwrap().clone())
            .collect();
        let mut out = BTreeSet::new();
        let mut i = 0;
        while i < s.len() {
            let at_word = i == 0 || !(is_ident(s[i - 1]) || s[i - 1] == b':');
            if !at_word || !is_ident(s[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < s.len() && is_ident(s[i]) {
                i += 1;
            }
            let word = &text[start..i];
            let is_prefix = matches!(word, "crate" | "super" | "self") || children.contains(word);
            let declared = text[..start].trim_end().ends_with("mod");
            if !is_prefix || declared || s.get(i) != Some(&b':') || s.get(i + 1) != Some(&b':') {
                continue;
            }
            let mut j = start;
            for path in parse_tree(s, &mut j) {
                if let Some(abs) = self.absolute(from, &path) {
                    if let Some(target) = self.defining(&abs) {
                        if &target != from {
                            if std::env::var_os("RAGBOT_PRINT_PATHS").is_some() {
                                println!(
                                    "{} -> {}: {}",
                                    self.files[from],
                                    self.files[&target],
                                    abs.join("::")
                                );
                            }
                            out.insert(target);
                        }
                    }
                }
            }
            i = j.max(i);
        }
        out
    }

    fn graph(&self) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
        self.files
            .keys()
            .filter(|m| !m.is_empty()) // lib.rs declares every module
            .map(|m| (m.clone(), self.imports(m)))
            .collect()
    }

    fn name(&self, m: &ModPath) -> String {
        self.files[m].clone()
    }
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct T<'a> {
        g: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<ModPath, usize>,
        low: BTreeMap<ModPath, usize>,
        stack: Vec<ModPath>,
        on: BTreeSet<ModPath>,
        next: usize,
        out: Vec<Vec<ModPath>>,
    }
    fn visit(t: &mut T, v: &ModPath) {
        t.index.insert(v.clone(), t.next);
        t.low.insert(v.clone(), t.next);
        t.next += 1;
        t.stack.push(v.clone());
        t.on.insert(v.clone());
        let empty = BTreeSet::new();
        for w in t.g.get(v).unwrap_or(&empty).clone() {
            if !t.g.contains_key(&w) {
                continue;
            }
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let l = t.low[v].min(t.low[&w]);
                t.low.insert(v.clone(), l);
            } else if t.on.contains(&w) {
                let l = t.low[v].min(t.index[&w]);
                t.low.insert(v.clone(), l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(&w);
                let done = &w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn no_import_cycle_between_files_of_shared_src() {
    let krate = Crate::load();
    let graph = krate.graph();
    let found = cycles(&graph);
    let mut report = String::new();
    for comp in &found {
        report.push_str("cycle:\n");
        for m in comp {
            let inside: Vec<String> = graph[m]
                .iter()
                .filter(|t| comp.contains(t))
                .map(|t| krate.name(t))
                .collect();
            report.push_str(&format!("  {} -> {}\n", krate.name(m), inside.join(", ")));
        }
    }
    assert!(found.is_empty(), "import cycles in shared/src:\n{report}");
}

#[test]
fn the_checker_sees_imports_of_every_kind() {
    let krate = Crate::load();
    let graph = krate.graph();
    let edges = |from: &str| -> BTreeSet<String> {
        let m: ModPath = from.split('/').map(str::to_owned).collect();
        graph[&m].iter().map(|t| krate.name(t)).collect()
    };
    // A `use crate::…` group, followed through the `store` facade to the defining file.
    assert!(
        edges("http/health").contains("health/mod.rs"),
        "{:?}",
        edges("http/health")
    );
    assert!(
        edges("store/jobs").contains("store/tenant.rs")
            || edges("store/jobs").contains("store/pool.rs"),
        "{:?}",
        edges("store/jobs")
    );
    // The parser on tricky text.
    let s = b"crate::{a::{b, c as d}, e::*, f}";
    let mut i = 0;
    let paths = parse_tree(s, &mut i);
    let flat: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        flat,
        ["crate::a::b", "crate::a::c", "crate::e::*", "crate::f"]
    );
    assert_eq!(
        strip("a // x::y\nb \"crate::z\" /* crate::w */ c"),
        "a \nb \"\"  c"
    );
}

/// Prints each file's imports and the layers (files that import nothing of the crate first).
#[test]
fn print_the_graph() {
    let krate = Crate::load();
    let graph = krate.graph();
    if std::env::var_os("RAGBOT_PRINT_LAYERS").is_none() {
        return;
    }
    for (m, to) in &graph {
        let names: Vec<String> = to.iter().map(|t| krate.name(t)).collect();
        println!("{} -> {}", krate.name(m), names.join(", "));
    }
}

/// The layers of `shared/src`, lowest first. A file may import files of its own layer (the cycle
/// check keeps those one-way) and of lower layers, never of a higher one; the domain reaches
/// PostgreSQL through `store`, never `aws` or an SDK.
const LAYERS: &[(&str, &[&str])] = &[
    ("base", &["env", "future", "retry", "telemetry", "auth"]),
    ("ports", &["ports", "parsing", "embedding", "llm"]),
    ("adapters", &["store", "aws"]),
    (
        "domain",
        &[
            "ingest",
            "retrieval",
            "chat",
            "backup",
            "health",
            "ratelimit",
        ],
    ),
    (
        "composition",
        &["config", "providers", "function", "app", "deploy"],
    ),
    ("entrypoints", &["http", "lambda"]),
];

/// Crates only adapters and entry points may name.
const SDKS: &[&str] = &[
    "aws_sdk_",
    "aws_config",
    "aws_lambda_events",
    "lambda_http",
    "lambda_runtime",
    "aws_smithy",
];

fn layer_of(m: &ModPath) -> Option<(usize, &'static str)> {
    let top = m.first()?;
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, mods))| mods.contains(&top.as_str()))
        .map(|(i, (name, _))| (i, *name))
}

#[test]
fn layers_point_one_way() {
    let krate = Crate::load();
    let graph = krate.graph();
    let mut wrong = Vec::new();
    for (from, tos) in &graph {
        let Some((lf, lname)) = layer_of(from) else {
            wrong.push(format!(
                "{} is in no layer (add it to LAYERS)",
                krate.name(from)
            ));
            continue;
        };
        for to in tos {
            if to.first() == from.first() || to.is_empty() {
                continue;
            }
            let Some((lt, tname)) = layer_of(to) else {
                continue;
            };
            let domain_to_aws = lname == "domain" && to.first().is_some_and(|t| t == "aws");
            if lt > lf || domain_to_aws {
                wrong.push(format!(
                    "{} ({lname}) imports {} ({tname})",
                    krate.name(from),
                    krate.name(to)
                ));
            }
        }
        if matches!(lname, "base" | "ports" | "domain") {
            let text = &krate.source[from];
            for sdk in SDKS {
                if text.contains(sdk) {
                    wrong.push(format!(
                        "{} ({lname}) names the SDK crate {sdk}",
                        krate.name(from)
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layering broken:\n  {}",
        wrong.join("\n  ")
    );
}
