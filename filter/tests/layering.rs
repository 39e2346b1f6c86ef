//! The filter's module layering, enforced (issue 12). Modules follow the message
//! (ARCHITECTURE.md §2, STYLE.md house rule 1): a module may use only the modules below
//! it, as listed in [`RULES`]; `message` is the floor, `config` and `record` sit just above
//! it, `pipeline` alone sequences the stages, and the daemon's wiring (`daemon`) is on top.
//!
//! The test reads every `filter/src/**/*.rs` of the library, finds each `crate::X`
//! reference (in `use` lines, brace groups and paths alike, comments skipped), and checks
//! the edge from the file's top-level module to `X` against the rules. `super::` paths
//! stay inside one top-level module, so they are not edges. Edges that break the rules
//! today are listed in [`KNOWN_DEBT`], to be emptied move by move; an entry that no
//! longer occurs fails too, so the list only shrinks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of the library and the modules it may use, bottom up.
const RULES: &[(&str, &[&str])] = &[
    // The floor: envelope, spooled body, per-recipient state, plain outcome types.
    ("message", &[]),
    // Every reply string in one place.
    ("replies", &["message"]),
    ("config", &["message"]),
    ("record", &["message"]),
    // The stages, in the order of the message.
    ("accept", &["message", "config", "record", "replies"]),
    ("receive", &["message", "config", "record", "replies"]),
    // MIME parsing helpers, used by decode alone.
    ("mime", &["message"]),
    ("decode", &["message", "config", "record", "mime"]),
    ("check", &["message", "config", "record", "decode"]),
    ("decide", &["message", "config", "replies", "check"]),
    ("act", &["message", "config", "record", "replies", "decide"]),
    ("forward", &["message", "config", "record", "replies", "act"]),
    // The one place that sequences the stages.
    (
        "pipeline",
        &[
            "message", "config", "record", "replies", "receive", "decode", "check", "decide", "act", "forward",
        ],
    ),
    // The daemon's wiring on top: runtime, reload, the handler that feeds the pipeline.
    (
        "daemon",
        &[
            "message", "config", "record", "replies", "accept", "receive", "decode", "check", "decide", "act",
            "forward", "pipeline",
        ],
    ),
];

/// Edges that break [`RULES`] today: (from, to). Shrinks to empty as types move down.
const KNOWN_DEBT: &[(&str, &str)] = &[];

/// One reference: the module it points at, and where it was seen.
#[derive(Debug)]
struct Seen {
    to: String,
    at: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display());
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a library file belongs to; `None` for the crate roots and the
/// binary's own files (`main.rs` and the modules it declares use `filter::`, not `crate::`).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    match name {
        "lib" | "main" | "privs" => None,
        other => Some(other.to_string()),
    }
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level names a piece of code reaches through `crate::`: `crate::a::b` gives
/// `a`; `crate::{a::b, c}` gives `a` and `c`.
fn crate_refs(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // `$crate::` and identifiers ending in `crate` are not ours.
        let before = rest[..i].chars().next_back();
        let after = &rest[i + "crate::".len()..];
        rest = after;
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = after.strip_prefix('{') {
            // Top-level items of the brace group: the first identifier after `{` and after
            // each comma at depth one.
            let mut depth = 1;
            let mut expect = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect = true,
                    c if c.is_whitespace() => {}
                    _ if expect && depth == 1 => {
                        out.push(ident_at(&group[j..]).to_string());
                        expect = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident_at(after).to_string());
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

/// Every edge between top-level modules, with where each is seen.
fn edges() -> BTreeMap<(String, String), Vec<String>> {
    let root = src_dir();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&root).unwrap_or(&file).to_path_buf();
        let Some(from) = module_of(&rel) else { continue };
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // Code only: whole-line comments (doc comments included) are dropped; the line
        // numbers stay right because each line keeps its place.
        let code: String = text
            .lines()
            .map(|l| if l.trim_start().starts_with("//") { "" } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        // Brace groups can span lines: a line opening one is read to the closing brace.
        let mut seen: Vec<Seen> = Vec::new();
        let mut start = 0;
        for (n, line) in code.split('\n').enumerate() {
            let chunk = match closing(&code[start..]) {
                Some(len) if line.contains("crate::{") => &code[start..start + len],
                _ => line,
            };
            for to in crate_refs(chunk) {
                seen.push(Seen {
                    to,
                    at: format!("{}:{}", rel.display(), n + 1),
                });
            }
            start += line.len() + 1;
        }
        for s in seen {
            if s.to != from {
                edges.entry((from.clone(), s.to)).or_default().push(s.at);
            }
        }
    }
    edges
}

/// The length of `s` up to and including the brace that closes the first `crate::{`.
fn closing(s: &str) -> Option<usize> {
    let open = s.find("crate::{")? + "crate::".len();
    let mut depth = 0;
    for (j, c) in s[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + j + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn rules() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    RULES
        .iter()
        .map(|(m, uses)| (*m, uses.iter().copied().collect()))
        .collect()
}

#[test]
fn every_module_imports_only_modules_below_it() {
    let rules = rules();
    let debt: BTreeSet<(String, String)> = KNOWN_DEBT
        .iter()
        .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
        .collect();
    let edges = edges();
    assert!(
        !edges.is_empty(),
        "no crate:: reference found: is the source tree there?"
    );
    let mut problems = Vec::new();
    for ((from, to), at) in &edges {
        let Some(allowed) = rules.get(from.as_str()) else {
            problems.push(format!("module `{from}` is not in RULES: place it in the layering"));
            continue;
        };
        if !rules.contains_key(to.as_str()) {
            problems.push(format!("module `{to}` (used by `{from}`) is not in RULES"));
            continue;
        }
        if !allowed.contains(to.as_str()) && !debt.contains(&(from.clone(), to.clone())) {
            problems.push(format!(
                "`{from}` must not use `{to}` (it is above it): {}",
                at.join(", ")
            ));
        }
    }
    for (from, to) in &debt {
        if !edges.contains_key(&(from.clone(), to.clone())) {
            problems.push(format!(
                "KNOWN_DEBT lists `{from}` → `{to}`, which is gone: remove the entry"
            ));
        }
    }
    assert!(problems.is_empty(), "layering violations:\n  {}", problems.join("\n  "));
}

#[test]
fn the_known_debt_only_lists_edges_that_break_the_rules() {
    let rules = rules();
    for (from, to) in KNOWN_DEBT {
        let allowed = rules.get(from).unwrap_or_else(|| panic!("`{from}` is not in RULES"));
        assert!(
            !allowed.contains(to),
            "`{from}` → `{to}` is allowed: drop it from KNOWN_DEBT"
        );
    }
}

/// The modules in a cycle of `graph`, if any (depth-first search, one cycle reported).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut done, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_rules_form_no_cycle() {
    let graph = RULES
        .iter()
        .map(|(m, uses)| ((*m).to_string(), uses.iter().map(|u| (*u).to_string()).collect()))
        .collect();
    assert_eq!(find_cycle(&graph), None, "RULES must be a layering, without a cycle");
}

#[test]
fn the_modules_import_each_other_without_a_cycle_beyond_the_known_debt() {
    let debt: BTreeSet<(String, String)> = KNOWN_DEBT
        .iter()
        .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in edges().into_keys() {
        if !debt.contains(&(from.clone(), to.clone())) {
            graph.entry(from).or_default().insert(to);
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!("modules import each other in a cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn crate_references_are_read_from_paths_and_brace_groups() {
    assert_eq!(crate_refs("use crate::message::{Ids, Reply};"), ["message"]);
    assert_eq!(crate_refs("use crate::{act, decide::Verdict};"), ["act", "decide"]);
    assert_eq!(crate_refs("use crate::{\n    a::{b, c},\n    d,\n};"), ["a", "d"]);
    assert_eq!(crate_refs("let x = crate::forward::ConnUse::None;"), ["forward"]);
    assert_eq!(
        crate_refs("$crate::x; mycrate::y; pub(crate) fn f()"),
        Vec::<String>::new()
    );
}
