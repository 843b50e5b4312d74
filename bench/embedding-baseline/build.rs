//! Copies the example app's `src/lib.rs` without version-observer: the
//! `use version_observer::…` lines, the `<VersionBanner/>` and
//! `<ReloadOnNavigation/>` lines and their comments (and the module docs,
//! which `include!` cannot take); its server function returns Leptos'
//! `ServerFnError` instead of `GuardedError`, and its error message matches
//! one of that type's variants instead of `StaleClient` (an app without
//! version-observer shows its failed calls too). Anything else in the
//! example is compiled as it is, so the difference between the two bundles
//! is what embedding version-observer costs.

use std::{env, fs, path::Path};

fn main() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/todo/src/lib.rs");
    println!("cargo:rerun-if-changed={}", example.display());
    let source = fs::read_to_string(&example).expect("the example's src/lib.rs");
    // With feature `banner`: the example less its optional part only
    // (`<ReloadOnNavigation/>`): what the banner with its default parts adds.
    let banner = env::var_os("CARGO_FEATURE_BANNER").is_some();
    let mut removed = 0;
    let kept: Vec<String> = source
        .lines()
        .filter(|line| {
            let optional = line.contains("ReloadOnNavigation")
                || line.contains("// And, optionally: once stale");
            let drop = optional
                || (!banner
                    && (line.contains("VersionBanner")
                        || line.contains("use version_observer::GuardedError")
                        || line.contains("// The one line for the banner")));
            removed += usize::from(drop);
            !drop && !line.trim_start().starts_with("//!")
        })
        .map(|line| {
            if banner {
                return line.to_owned();
            }
            line.replace("GuardedError::StaleClient(_)", "ServerFnError::Request(_)")
                .replace("GuardedError", "ServerFnError")
        })
        .collect();
    assert_eq!(
        removed,
        if banner { 3 } else { 7 },
        "expected the imports, <VersionBanner/>, <ReloadOnNavigation/> and their comments in examples/todo/src/lib.rs; update build.rs"
    );
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("lib.rs");
    fs::write(out, kept.join("\n")).unwrap();
}
