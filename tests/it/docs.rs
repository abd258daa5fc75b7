//! The documentation stays true to the shipped example config: every key
//! of `config/tokenwatch.toml` (commented-out ones included) is described
//! in `docs/configuration.md`, every key described there appears in the
//! example, and the README links every file under `docs/`.

use std::collections::BTreeSet;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel))
        .unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// How a key is named in the docs: `key` at the top, `[table] key`,
/// `[[array]] key`.
fn qualified(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section} {key}")
    }
}

/// Every key the example config sets, plus the ones it shows commented out
/// (`# key = value` lines inside a section), as the docs name them.
fn example_keys(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let doc: toml_edit::DocumentMut = text.parse().expect("config/tokenwatch.toml is TOML");
    for (k, item) in doc.iter() {
        match item {
            toml_edit::Item::Table(t) => {
                for (k2, _) in t.iter() {
                    keys.insert(qualified(&format!("[{k}]"), k2));
                }
            }
            toml_edit::Item::ArrayOfTables(a) => {
                for t in a.iter() {
                    for (k2, _) in t.iter() {
                        keys.insert(qualified(&format!("[[{k}]]"), k2));
                    }
                }
            }
            _ => {
                keys.insert(k.to_string());
            }
        }
    }
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        // A commented-out section ("# [[webhook]]") holds commented keys.
        let line = match line.strip_prefix("# ") {
            Some(rest) if rest.starts_with('[') => rest,
            _ => line,
        };
        if line.starts_with('[') {
            section = line.split('#').next().unwrap_or("").trim().to_string();
            continue;
        }
        // A commented-out setting: "# key = value", a bare key before '='.
        let Some(rest) = line.strip_prefix("# ") else {
            continue;
        };
        let Some((key, _)) = rest.split_once(" = ") else {
            continue;
        };
        let key = key.trim();
        if !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            keys.insert(qualified(&section, key));
        }
    }
    keys
}

/// The keys named in the first column of the reference table. A cell may
/// name several keys of one section: "`[[token]] path`, `account`".
fn documented_keys(md: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for line in md.lines() {
        let Some(cell) = line.strip_prefix("| `") else {
            continue;
        };
        let cell = cell.split(" |").next().unwrap_or("");
        let names: Vec<&str> = cell
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s.trim())
            .filter(|s| !s.is_empty() && *s != ",")
            .collect();
        let Some(first) = names.first() else { continue };
        let (section, first_key) = match first.rsplit_once(' ') {
            Some((s, k)) if s.starts_with('[') => (s.to_string(), k),
            _ => (String::new(), *first),
        };
        keys.insert(qualified(&section, first_key));
        for k in &names[1..] {
            keys.insert(qualified(&section, k.trim_start_matches(", ")));
        }
    }
    keys
}

#[test]
fn every_key_of_the_example_config_is_documented_and_every_documented_key_is_in_the_example() {
    let example = example_keys(&read("config/tokenwatch.toml"));
    let documented = documented_keys(&read("docs/configuration.md"));
    assert!(
        example.len() > 20,
        "the example parser found too few keys: {example:?}"
    );
    let undocumented: Vec<_> = example.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "keys of config/tokenwatch.toml missing from docs/configuration.md's table: {undocumented:?}"
    );
    let not_in_example: Vec<_> = documented.difference(&example).collect();
    assert!(
        not_in_example.is_empty(),
        "keys documented in docs/configuration.md but not shown in config/tokenwatch.toml: {not_in_example:?}"
    );
}

#[test]
fn the_readme_links_every_doc_and_every_link_to_a_doc_resolves() {
    let readme = read("README.md");
    let docs = Path::new(ROOT).join("docs");
    let mut files: Vec<String> = std::fs::read_dir(&docs)
        .expect("docs/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in &files {
        assert!(
            readme.contains(&format!("](docs/{f})")),
            "README.md does not link docs/{f}"
        );
    }
    // Relative links between the documents point at files that exist.
    let mut sources = vec![("README.md".to_string(), readme)];
    for f in &files {
        sources.push((format!("docs/{f}"), read(&format!("docs/{f}"))));
    }
    for (name, text) in &sources {
        let base = Path::new(ROOT).join(name);
        let base = base.parent().unwrap();
        for part in text.split("](").skip(1) {
            let target = part.split(')').next().unwrap_or("");
            let file = target.split('#').next().unwrap_or("");
            if file.is_empty() || file.contains("://") {
                continue;
            }
            assert!(
                base.join(file).exists(),
                "{name} links {target}, which does not exist"
            );
        }
    }
}

#[test]
fn the_key_parsers_see_sections_arrays_and_commented_out_keys() {
    let ex =
        example_keys("a = 1\n[t]\nb = 2\n# c = 3\n# just a comment\n[[f]]\nd = 4\n[[f]]\ne = 5\n");
    let want: BTreeSet<String> = ["a", "[t] b", "[t] c", "[[f]] d", "[[f]] e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(ex, want);
    let doc = documented_keys(
        "| key | default |\n|---|---|\n| `a` | 1 |\n| `[t] b` | 2 |\n| `[[f]] d`, `e` | x |\n",
    );
    let want: BTreeSet<String> = ["a", "[t] b", "[[f]] d", "[[f]] e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(doc, want);
}
