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

/// The example's cargo-leptos settings (in the workspace's manifest).
fn todo_site() -> toml::Table {
    let workspace: toml::Table = read("../../Cargo.toml").parse().unwrap();
    let sites = workspace["workspace"]["metadata"]["leptos"]
        .as_array()
        .unwrap();
    sites
        .iter()
        .find(|site| site["name"].as_str() == Some("todo"))
        .and_then(|site| site.as_table().cloned())
        .expect("the todo site")
}

#[test]
fn every_rust_line_of_the_section_is_in_the_example() {
    let example = [
        "src/main.rs",
        "src/lib.rs",
        // Routes under a prefix, with options in the pages' context.
        "src/bin/under_prefix.rs",
    ]
    .map(read)
    .join("\n");
    let example_lines: Vec<&str> = example.lines().map(str::trim).collect();
    // The README's manifest names its files /pkg/<its output-name>.*; the
    // example's site shares the reference node's output name.
    let (_, manifest) = section_blocks()
        .into_iter()
        .find(|(lang, _)| lang == "toml")
        .expect("a toml block");
    let manifest: toml::Table = manifest.join("\n").parse().expect("valid TOML");
    let readme_files = format!(
        "/pkg/{}.",
        manifest["package"]["metadata"]["leptos"]["output-name"]
            .as_str()
            .unwrap()
    );
    let example_files = format!("/pkg/{}.", todo_site()["output-name"].as_str().unwrap());
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
            let line = line.replace(&readme_files, &example_files);
            assert!(
                example_lines.contains(&line.as_str()),
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
fn the_manifest_is_complete_and_uses_the_examples_crates() {
    let blocks = section_blocks();
    let (_, lines) = blocks
        .iter()
        .find(|(lang, _)| lang == "toml")
        .expect("a toml block");
    let readme: toml::Table = lines.join("\n").parse().expect("valid TOML");
    let example: toml::Table = read("Cargo.toml").parse().unwrap();
    // Every dependency the README lists, the example (which its Playwright
    // test runs) has too, with the same requirement (the path aside).
    let ours = example["dependencies"].as_table().unwrap();
    for (name, spec) in readme["dependencies"].as_table().unwrap() {
        let theirs = ours
            .get(name)
            .unwrap_or_else(|| panic!("the example lacks {name}"));
        if name != "version-observer" {
            assert_eq!(spec.get("version"), theirs.get("version"), "{name}");
        }
    }
    let features = readme["features"].as_table().unwrap();
    let example_features = example["features"].as_table().unwrap();
    for (feature, must) in [
        (
            "hydrate",
            &[
                "version-observer/hydrate",
                "leptos/hydrate",
                "dep:wasm-bindgen",
            ][..],
        ),
        (
            "ssr",
            &[
                "version-observer/ssr",
                "leptos/ssr",
                "dep:leptos_axum",
                "dep:axum",
                "dep:tokio",
            ][..],
        ),
    ] {
        for entry in must {
            for table in [features, example_features] {
                let listed = table[feature].as_array().unwrap();
                assert!(
                    listed.iter().any(|v| v.as_str() == Some(entry)),
                    "{feature}: {entry}"
                );
            }
        }
    }
    // The server binary needs `ssr`: without it a plain `cargo check`
    // would build `main.rs` without the server's crates.
    let bin_features = |manifest: &toml::Table| manifest["bin"][0]["required-features"].clone();
    assert_eq!(bin_features(&readme), bin_features(&example));
    let crate_types = readme["lib"]["crate-type"].as_array().unwrap();
    assert!(crate_types.iter().any(|t| t.as_str() == Some("cdylib")));
    let leptos = &readme["package"]["metadata"]["leptos"];
    assert_eq!(leptos["bin-features"][0].as_str(), Some("ssr"));
    assert_eq!(leptos["lib-features"][0].as_str(), Some("hydrate"));
    // The example's wasm-bindgen pin is the workspace's (the CLI's).
    let workspace: toml::Table = read("../../Cargo.toml").parse().unwrap();
    let pin = workspace["workspace"]["dependencies"]["wasm-bindgen"]
        .as_str()
        .unwrap();
    assert_eq!(
        readme["dependencies"]["wasm-bindgen"]["version"].as_str(),
        Some(pin)
    );
}
