//! docs/compatibility.md is the reference the code cites: every quirk id and every anchor
//! cited anywhere in the repository is defined there, and nothing cites the external
//! specification's files instead.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every text file of the repository that can cite the reference (sources, schema,
/// protocol definitions, configs, docs), outside build output.
fn sources() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![repo_root()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | "fuzz") {
                    todo.push(path);
                }
                continue;
            }
            let wanted = ["rs", "proto", "sql", "toml", "md", "example", "yaml"];
            if path
                .extension()
                .is_some_and(|e| wanted.iter().any(|w| e == *w))
            {
                out.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out
}

/// `Q-` followed by capitals and digits, wherever it appears.
fn quirk_ids(text: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for (i, _) in text.match_indices("Q-") {
        let rest = &text[i + 2..];
        let letters = rest.chars().take_while(char::is_ascii_uppercase).count();
        let digits = rest[letters..]
            .chars()
            .take_while(char::is_ascii_digit)
            .count();
        let before = text[..i].chars().next_back();
        if letters > 0 && digits > 0 && !before.is_some_and(|c| c.is_ascii_alphanumeric()) {
            ids.insert(format!("Q-{}", &rest[..letters + digits]));
        }
    }
    ids
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_cited_quirk_and_anchor_is_defined_in_the_compatibility_notes() {
    let doc = std::fs::read_to_string(repo_root().join("docs/compatibility.md")).unwrap();
    let defined: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| Q-"))
        .filter_map(|l| l.split_once(" |"))
        .map(|(id, _)| format!("Q-{id}"))
        .collect();
    assert!(defined.len() >= 60, "{} ids defined", defined.len());
    let anchors: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect();
    // Built from parts, so that this file does not cite itself.
    let link = ["compatibility", ".md#"].concat();
    let spec_files =
        ["behaviour", "protocol", "quirks", "messages", "schema"].map(|f| format!("{f}.md"));
    let mut cited = 0;
    for (path, text) in sources() {
        let shown = path
            .strip_prefix(repo_root())
            .unwrap_or(&path)
            .display()
            .to_string();
        for id in quirk_ids(&text) {
            assert!(
                defined.contains(&id),
                "{shown} cites {id}, not defined in docs/compatibility.md"
            );
            cited += 1;
        }
        for (i, _) in text.match_indices(link.as_str()) {
            let rest = &text[i + link.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(rest.len());
            let a = &rest[..end];
            assert!(anchors.contains(a), "{shown} links #{a}, no such heading");
        }
        if shown == "BENCHMARKS.md" || shown.starts_with("docs/") {
            continue;
        }
        for f in &spec_files {
            assert!(!text.contains(f.as_str()), "{shown} cites the external {f}");
        }
        assert!(
            !text.contains('\u{a7}'),
            "{shown} cites a section of the external specification"
        );
    }
    assert!(
        cited > 50,
        "only {cited} citations found: is the walk broken?"
    );
}
