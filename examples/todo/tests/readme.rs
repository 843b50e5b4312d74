//! The README's "Add it to your app" section must stay exactly true: every
//! line of its Rust snippets is a line of this example app (which its
//! Playwright test runs), and its dependency line and features are this
//! example's. Change one without the other and this test fails.

use std::path::Path;

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The code blocks of the README section, with their language.
fn section_blocks() -> Vec<(String, Vec<String>)> {
    let readme = read("../../README.md");
    let start = readme
        .find("\n## Add it to your app\n")
        .expect("the README has the section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in rest[..end].lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => current = Some((lang.trim().to_owned(), Vec::new())),
            (Some(_), Some(_)) => blocks.push(current.take().unwrap()),
            (Some((_, lines)), None) => lines.push(line.to_owned()),
            (None, None) => {}
        }
    }
    blocks
}

#[test]
fn every_rust_line_of_the_section_is_in_the_example() {
    let example = format!("{}\n{}", read("src/main.rs"), read("src/lib.rs"));
    let example_lines: Vec<&str> = example.lines().map(str::trim).collect();
    let mut checked = 0;
    for (lang, lines) in section_blocks() {
        if lang != "rust" {
            continue;
        }
        // The cluster snippet configures NATS, which the example (a single
        // node) does not use; its API is covered by the crate's doc tests.
        if lines.iter().any(|l| l.contains("NatsSettings::new")) {
            continue;
        }
        for line in lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
            assert!(
                example_lines.contains(&line),
                "README line not in examples/todo/src: {line:?}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 15,
        "only {checked} lines checked: did the section move?"
    );
}

#[test]
fn the_dependency_and_features_are_the_examples() {
    let manifest = read("Cargo.toml");
    let blocks = section_blocks();
    let (_, toml) = blocks
        .iter()
        .find(|(lang, _)| lang == "toml")
        .expect("a toml block");
    let dependency = toml
        .iter()
        .find(|l| l.starts_with("version-observer = "))
        .expect("the dependency line");
    assert!(manifest.lines().any(|l| l == dependency), "{dependency}");
    let manifest: toml::Table = manifest.parse().unwrap();
    let features = manifest["features"].as_table().unwrap();
    for (feature, entry) in [
        ("hydrate", "version-observer/hydrate"),
        ("ssr", "version-observer/ssr"),
    ] {
        assert!(toml
            .iter()
            .any(|l| l.starts_with(feature) && l.contains(entry)));
        let listed = features[feature].as_array().unwrap();
        assert!(
            listed.iter().any(|v| v.as_str() == Some(entry)),
            "{feature}"
        );
    }
}
