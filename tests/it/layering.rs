//! The core's imports are its contract: a pure module never reaches into an
//! edge (config, state, transports, the daemon), and top-level modules form
//! no cycle. This reads `src/` as text, so a new import that breaks the rule
//! fails here with its file and line, before anyone reviews it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const LEAF: &[&str] = &["secret", "show", "backoff"];
const CORE: &[&str] = &["token", "evaluate", "assess", "alerts", "render"];
const VIEW: &[&str] = &["report"];
const EDGE: &[&str] = &[
    "config",
    "scan",
    "state",
    "probe",
    "schedule",
    "watch",
    "channel",
    "mail",
    "daemon",
    "cli",
    "hardening",
    "webhook",
    "metrics",
];
/// Known violations being removed. Each entry must still occur, so the list
/// can only shrink; a new violation is never added here.
const RATCHET: &[(&str, &str)] = &[];
/// Known uses of forbidden items in the core, ratcheted like `RATCHET`.
const FORBIDDEN_RATCHET: &[(&str, &str)] = &[];
/// What the core must not touch outside its tests: the I/O crates, the
/// filesystem and the network, and the clock (the core is given `now`).
const CORE_FORBIDDEN: &[&str] = &[
    "lettre::",
    "rusqlite::",
    "reqwest::",
    "notify::",
    "tokio::",
    "std::fs",
    "std::net",
    "Utc::now",
    "SystemTime::now",
    "Instant::now",
];

struct Lists<'a> {
    leaf: &'a [&'a str],
    core: &'a [&'a str],
    view: &'a [&'a str],
    edge: &'a [&'a str],
    ratchet: &'a [(&'a str, &'a str)],
    core_forbidden: &'a [&'a str],
    forbidden_ratchet: &'a [(&'a str, &'a str)],
}

const LISTS: Lists<'static> = Lists {
    leaf: LEAF,
    core: CORE,
    view: VIEW,
    edge: EDGE,
    ratchet: RATCHET,
    core_forbidden: CORE_FORBIDDEN,
    forbidden_ratchet: FORBIDDEN_RATCHET,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layer {
    Leaf,
    Core,
    View,
    Edge,
}

impl Layer {
    fn name(self) -> &'static str {
        match self {
            Layer::Leaf => "leaf",
            Layer::Core => "core",
            Layer::View => "view",
            Layer::Edge => "edge",
        }
    }

    fn may_import(self, target: Layer) -> bool {
        match self {
            Layer::Leaf => target == Layer::Leaf,
            Layer::Core | Layer::View => matches!(target, Layer::Leaf | Layer::Core),
            Layer::Edge => true,
        }
    }
}

#[derive(Default, Debug)]
struct Findings {
    /// Modules in `lib.rs` with no layer, or with more than one.
    unassigned: Vec<String>,
    /// Listed modules that `lib.rs` does not declare: a rule about them
    /// would check nothing.
    undeclared: Vec<String>,
    /// Imports across layers the wrong way, not in the ratchet.
    violations: Vec<String>,
    /// Ratchet entries that no longer occur.
    stale: Vec<String>,
    /// I/O or clock use in core code.
    forbidden: Vec<String>,
    /// Strongly connected components of more than one module.
    cycles: Vec<String>,
}

impl Findings {
    fn problems(&self) -> Vec<String> {
        [
            &self.unassigned,
            &self.undeclared,
            &self.violations,
            &self.stale,
            &self.forbidden,
            &self.cycles,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }
}

/// `lib_rs`: the text of `src/lib.rs`. `files`: path relative to the crate
/// root (`src/alerts/tests.rs`) and text, without `lib.rs` and `main.rs`.
fn analyse(lib_rs: &str, files: &[(String, String)], lists: &Lists) -> Findings {
    let mut out = Findings::default();
    let modules = top_level_modules(lib_rs);
    let mut layer = BTreeMap::new();
    for m in &modules {
        let mut found = Vec::new();
        for (l, names) in [
            (Layer::Leaf, lists.leaf),
            (Layer::Core, lists.core),
            (Layer::View, lists.view),
            (Layer::Edge, lists.edge),
        ] {
            if names.contains(&m.as_str()) {
                found.push(l);
            }
        }
        match found.as_slice() {
            [l] => {
                layer.insert(m.clone(), *l);
            }
            [] => out
                .unassigned
                .push(format!("module {m} is in no layer list: add it to one")),
            _ => out
                .unassigned
                .push(format!("module {m} is in more than one layer list")),
        }
    }

    for (list, names) in [
        ("LEAF", lists.leaf),
        ("CORE", lists.core),
        ("VIEW", lists.view),
        ("EDGE", lists.edge),
    ] {
        for name in names.iter().filter(|n| !modules.contains(**n)) {
            out.undeclared.push(format!(
                "{list} lists {name}, which src/lib.rs does not declare as a top-level module"
            ));
        }
    }

    // (from, to) -> first witness "file:line"
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut forbidden_seen = BTreeSet::new();
    for (path, text) in files {
        let Some(module_path) = module_path(path) else {
            continue;
        };
        let owner = module_path[0].clone();
        let code = strip(text);
        let test_from = if is_test_file(path) {
            0
        } else {
            inline_tests_start(&code).unwrap_or(code.len())
        };
        for (at, target) in imports(&code, &module_path, test_from) {
            if target == owner || !modules.contains(&target) {
                continue;
            }
            let line = code[..at].matches('\n').count() + 1;
            let witness = format!("{path}:{line}");
            if let (Some(&from_l), Some(&to_l)) = (layer.get(&owner), layer.get(&target)) {
                let ratcheted = lists
                    .ratchet
                    .iter()
                    .any(|&(a, b)| a == owner && b == target);
                if !from_l.may_import(to_l) && !ratcheted {
                    out.violations.push(format!(
                        "{witness}: {} module {owner} imports {target} ({})",
                        from_l.name(),
                        to_l.name()
                    ));
                }
            }
            edges.entry((owner.clone(), target)).or_insert(witness);
        }
        if layer.get(&owner) == Some(&Layer::Core) {
            let non_test = &code[..test_from];
            for &needle in lists.core_forbidden {
                if lists.forbidden_ratchet.contains(&(owner.as_str(), needle)) {
                    if non_test.contains(needle) {
                        forbidden_seen.insert((owner.clone(), needle));
                    }
                    continue;
                }
                for (at, _) in non_test.match_indices(needle) {
                    let line = non_test[..at].matches('\n').count() + 1;
                    out.forbidden
                        .push(format!("{path}:{line}: core module {owner} uses {needle}"));
                }
            }
        }
    }

    for &(a, b) in lists.ratchet {
        if !edges.contains_key(&(a.to_string(), b.to_string())) {
            out.stale.push(format!(
                "remove ({a}, {b}) from RATCHET: it no longer occurs"
            ));
        }
    }

    for &(m, needle) in lists.forbidden_ratchet {
        if !forbidden_seen.contains(&(m.to_string(), needle)) {
            out.stale.push(format!(
                "remove ({m}, {needle}) from FORBIDDEN_RATCHET: it no longer occurs"
            ));
        }
    }

    let graph: BTreeMap<&str, Vec<&str>> = {
        let mut g: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (a, b) in edges.keys() {
            if lists.ratchet.contains(&(a.as_str(), b.as_str())) {
                continue;
            }
            g.entry(a).or_default().push(b);
            g.entry(b).or_default();
        }
        g
    };
    for component in strongly_connected(&graph) {
        if component.len() < 2 {
            continue;
        }
        let members: BTreeSet<&str> = component.iter().copied().collect();
        let mut lines = vec![format!("cycle among {{{}}}:", component.join(", "))];
        for ((a, b), witness) in &edges {
            if members.contains(a.as_str())
                && members.contains(b.as_str())
                && !lists.ratchet.contains(&(a.as_str(), b.as_str()))
            {
                lines.push(format!("  {a} -> {b} ({witness})"));
            }
        }
        out.cycles.push(lines.join("\n"));
    }
    out
}

/// `pub mod x;` and `mod x;` lines of `lib.rs`, any visibility.
fn top_level_modules(lib_rs: &str) -> BTreeSet<String> {
    let code = strip(lib_rs);
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_suffix(';') else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        if let [.., "mod", name] = words.as_slice() {
            out.insert(name.to_string());
        }
    }
    out
}

/// `src/daemon/pass.rs` -> `[daemon, pass]`; `src/state/mod.rs` -> `[state]`;
/// `src/alerts/tests.rs` -> `[alerts, tests]`.
fn module_path(path: &str) -> Option<Vec<String>> {
    let rel = path.strip_prefix("src/")?.strip_suffix(".rs")?;
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if parts.len() > 1 && parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    if parts.is_empty() || matches!(parts[0].as_str(), "lib" | "main") {
        return None;
    }
    Some(parts)
}

fn is_test_file(path: &str) -> bool {
    path.ends_with("/tests.rs") || path.contains("/tests/")
}

/// Where `#[cfg(test)] mod tests {` starts in stripped code.
fn inline_tests_start(code: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = code[from..].find("#[cfg(test)]") {
        let at = from + i;
        let rest = code[at + "#[cfg(test)]".len()..].trim_start();
        if let Some(after) = rest.strip_prefix("mod") {
            // `mod tests;` names a file, which is_test_file covers.
            let after = after.trim_start();
            if let Some(rest) = after.strip_prefix("tests") {
                if rest.trim_start().starts_with('{') {
                    return Some(at);
                }
            }
        }
        from = at + 1;
    }
    None
}

/// Comments, string and char literals replaced by spaces (newlines kept, so
/// byte offsets still give line numbers). Lifetimes stay as they are.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let blank = |out: &mut Vec<u8>, s: &[u8]| {
        out.extend(s.iter().map(|&c| if c == b'\n' { b'\n' } else { b' ' }));
    };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'/' && next == Some(b'/') {
            let end = b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |p| i + p);
            blank(&mut out, &b[i..end]);
            i = end;
        } else if c == b'/' && next == Some(b'*') {
            let mut depth = 0;
            let mut j = i;
            while j < b.len() {
                if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                    depth += 1;
                    j += 2;
                } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &b[i..j.min(b.len())]);
            i = j.min(b.len());
        } else if (c == b'r' || (c == b'b' && next == Some(b'r')))
            && !prev_is_ident(b, i)
            && raw_string_len(&b[i..]).is_some()
        {
            let len = raw_string_len(&b[i..]).unwrap_or(1);
            blank(&mut out, &b[i..i + len]);
            i += len;
        } else if c == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            blank(&mut out, &b[i..end]);
            i = end;
        } else if c == b'\'' {
            // A char literal closes within a few bytes ('a', '\n', '\u{1F600}');
            // a lifetime ('a, 'static) has no closing quote right after.
            let len = char_literal_len(&b[i..]);
            match len {
                Some(len) => {
                    blank(&mut out, &b[i..i + len]);
                    i += len;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

fn prev_is_ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// Length of `r"…"`, `r#"…"#`, `br"…"` at the start of `b`.
fn raw_string_len(b: &[u8]) -> Option<usize> {
    let mut i = if b.first() == Some(&b'b') { 1 } else { 0 };
    if b.get(i) != Some(&b'r') {
        return None;
    }
    i += 1;
    let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
    i += hashes;
    if b.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    loop {
        let q = b[i..].iter().position(|&c| c == b'"')? + i;
        if b[q + 1..]
            .iter()
            .take(hashes)
            .filter(|&&c| c == b'#')
            .count()
            == hashes
            && b.len() >= q + 1 + hashes
        {
            return Some(q + 1 + hashes);
        }
        i = q + 1;
    }
}

fn char_literal_len(b: &[u8]) -> Option<usize> {
    if b.get(1) == Some(&b'\\') {
        let close = b.iter().skip(2).take(10).position(|&c| c == b'\'')?;
        return Some(close + 3);
    }
    let s = std::str::from_utf8(&b[1..b.len().min(6)])
        .unwrap_or_else(|e| std::str::from_utf8(&b[1..1 + e.valid_up_to()]).unwrap_or(""));
    let ch = s.chars().next()?;
    let after = 1 + ch.len_utf8();
    (b.get(after) == Some(&b'\'')).then_some(after + 1)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ident_at(code: &str, at: usize) -> &str {
    let b = code.as_bytes();
    let end = b[at..]
        .iter()
        .position(|&c| !is_ident(c))
        .map_or(b.len(), |p| at + p);
    &code[at..end]
}

fn skip_ws(code: &str, mut at: usize) -> usize {
    let b = code.as_bytes();
    while at < b.len() && b[at].is_ascii_whitespace() {
        at += 1;
    }
    at
}

/// The first segment of each item of a `{…}` group starting at `open`.
fn group_heads(code: &str, open: usize) -> Vec<(usize, String)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0;
    let mut expect_item = true;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'{' => {
                depth += 1;
                expect_item = depth == 1;
                i += 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
                i += 1;
            }
            b',' if depth == 1 => {
                expect_item = true;
                i += 1;
            }
            c if expect_item && depth == 1 && is_ident(c) => {
                let id = ident_at(code, i);
                out.push((i, id.to_string()));
                expect_item = false;
                i += id.len();
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                if depth == 1 {
                    expect_item = false;
                }
                i += 1;
            }
        }
    }
    out
}

/// Top-level module names that `code` reaches through `crate::` or enough
/// `super::` to get to the crate root, with the byte offset of each.
fn imports(code: &str, module_path: &[String], test_from: usize) -> Vec<(usize, String)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !is_ident(b[i]) || (i > 0 && (is_ident(b[i - 1]) || b[i - 1] == b'$')) {
            i += 1;
            continue;
        }
        let word = ident_at(code, i);
        let start = i;
        i += word.len();
        let at_root = match word {
            "crate" => code[i..].starts_with("::"),
            "super" => {
                // Inline `mod tests` sits one level below its file's module.
                let depth = module_path.len() + usize::from(start >= test_from);
                let mut ups = 1;
                let mut j = i;
                while code[j..].starts_with("::") && code[j + 2..].starts_with("super") {
                    let after = j + 2 + "super".len();
                    if b.get(after).copied().is_some_and(is_ident) {
                        break;
                    }
                    ups += 1;
                    j = after;
                }
                i = j;
                ups == depth && code[i..].starts_with("::")
            }
            _ => false,
        };
        if !at_root {
            continue;
        }
        let at = skip_ws(code, i + 2);
        if b.get(at) == Some(&b'{') {
            out.extend(group_heads(code, at));
        } else if b.get(at).copied().is_some_and(is_ident) {
            out.push((at, ident_at(code, at).to_string()));
        }
    }
    out
}

/// Tarjan's algorithm; components in no particular order.
fn strongly_connected<'a>(graph: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, g: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in g.get(v).map(Vec::as_slice).unwrap_or(&[]) {
            if !s.index.contains_key(w) {
                visit(w, g, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            comp.sort_unstable();
            s.out.push(comp);
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(v, graph, &mut s);
        }
    }
    s.out
}

fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_tree(root, &p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p.strip_prefix(root).expect("under root");
            let rel = rel.to_string_lossy().replace('\\', "/");
            if rel == "src/lib.rs" || rel == "src/main.rs" {
                continue;
            }
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            out.push((rel, text));
        }
    }
}

#[test]
fn the_core_imports_no_edge_and_top_level_modules_form_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib_rs = std::fs::read_to_string(root.join("src/lib.rs")).expect("src/lib.rs");
    let mut files = Vec::new();
    read_tree(root, &root.join("src"), &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    let f = analyse(&lib_rs, &files, &LISTS);
    let problems = f.problems();
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_catches_a_core_to_edge_import_and_a_cycle() {
    let lib = "//! map\npub mod alerts;\npub mod config;\nmod a;\npub(crate) mod b;\npub mod c;\npub mod s;\n";
    let file = |p: &str, t: &str| (p.to_string(), t.to_string());
    let files = vec![
        file(
            "src/alerts.rs",
            "// use crate::b; is a comment\nconst S: &str = \"crate::b::x\";\n\
             fn f<'a>(x: &'a str) -> char { 'x' }\nuse crate::config::X;\n\
             #[cfg(test)]\nmod tests {\n    use super::super::s;\n    fn t() { std::fs::read(\"\"); }\n}\n",
        ),
        file("src/a.rs", "use crate::{b, c::{d, e}};\n"),
        file("src/b/mod.rs", "pub mod inner;\n"),
        file("src/b/inner.rs", "use super::super::a::Thing;\nuse super::Local;\n"),
        file("src/c.rs", "r#\"crate::a\"#; use super::config;\n"),
        file("src/config.rs", ""),
        file("src/s.rs", ""),
    ];
    let lists = Lists {
        leaf: &["s"],
        core: &["alerts"],
        view: &[],
        edge: &["config", "a", "b", "c"],
        ratchet: &[],
        core_forbidden: &["std::fs"],
        forbidden_ratchet: &[],
    };
    let f = analyse(lib, &files, &lists);
    assert!(f.unassigned.is_empty(), "{f:?}");
    assert_eq!(
        f.violations,
        ["src/alerts.rs:4: core module alerts imports config (edge)"],
        "{f:?}"
    );
    // std::fs sits in the test module, where it is allowed.
    assert!(f.forbidden.is_empty(), "{f:?}");
    assert_eq!(f.cycles.len(), 1, "{f:?}");
    let cycle = &f.cycles[0];
    assert!(cycle.starts_with("cycle among {a, b}:"), "{cycle}");
    assert!(cycle.contains("a -> b (src/a.rs:1)"), "{cycle}");
    assert!(cycle.contains("b -> a (src/b/inner.rs:1)"), "{cycle}");

    // A ratchet entry that no longer occurs is reported, and a listed one
    // silences its violation; a module with no layer is reported.
    let ratcheted = Lists {
        ratchet: &[("alerts", "config"), ("config", "c")],
        edge: &["config", "a", "b"],
        ..lists
    };
    let f = analyse(lib, &files, &ratcheted);
    assert!(f.violations.is_empty(), "{f:?}");
    assert_eq!(
        f.stale,
        ["remove (config, c) from RATCHET: it no longer occurs"]
    );
    assert_eq!(
        f.unassigned,
        ["module c is in no layer list: add it to one"]
    );

    // A listed module that is not top-level (say, still nested under an
    // edge) is reported, so a layer list cannot silently cover nothing.
    let nested = Lists {
        core: &["alerts", "render"],
        ..lists
    };
    let f = analyse(lib, &files, &nested);
    assert_eq!(
        f.undeclared,
        ["CORE lists render, which src/lib.rs does not declare as a top-level module"]
    );
}

#[test]
fn core_code_may_not_use_the_clock_or_io() {
    let lib = "pub mod token;\n";
    let files = vec![(
        "src/token.rs".to_string(),
        "fn now() { let _ = chrono::Utc::now(); }\n".to_string(),
    )];
    let f = analyse(lib, &files, &LISTS);
    assert_eq!(
        f.forbidden,
        ["src/token.rs:1: core module token uses Utc::now"]
    );

    // A test module in its own file does not make the rest of this one test code.
    let files = vec![(
        "src/token.rs".to_string(),
        "#[cfg(test)]\nmod tests;\nfn f() { std::fs::read(\"x\"); }\n".to_string(),
    )];
    let f = analyse(lib, &files, &LISTS);
    assert_eq!(
        f.forbidden,
        ["src/token.rs:3: core module token uses std::fs"]
    );
}
