#!/usr/bin/env bash
# The README's test command: install what is missing, then run every test:
# formatting and lints, unit and integration tests, and the Playwright browser
# tests against the built site. CI (.ci/run) runs exactly this.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
started=$SECONDS

ensure_build_tools
ensure_wasm_opt
ensure_browser_tests
ensure_bench_tools
ensure_fuzz_tools
cd "$VO_ROOT"

say "cargo fmt --check"
cargo fmt --all -- --check

# One release build of the sites (what users download: the browser tests
# run it, and the smoke benchmarks hold its size to the budgets; a release
# node run after this command serves it too), and one debug build of every
# native target (the node, vo-lab and the tests, with the same package
# selection as `cargo test` below, so it reuses this build); the browser
# tests run these binaries.
site_started=$SECONDS
build_site --release
say "release sites built in $(( SECONDS - site_started )) s"
build_binaries --all-targets

say "cargo clippy (native crates, all targets, warnings are errors)"
cargo clippy "${NATIVE_PACKAGES[@]}" --all-targets -- -D warnings

say "cargo doc (the crates' API docs, as docs.rs builds them; warnings are errors)"
RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="-D warnings --cfg docsrs" cargo doc --no-deps -p version-observer-core -p version-observer --features version-observer/ssr
say "cargo doc (the browser's half alone, feature hydrate; warnings are errors)"
RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="-D warnings --cfg docsrs" cargo doc --no-deps -p version-observer --no-default-features --features hydrate

# Both library crates packaged as for crates.io, and built from the
# packages by the declared rust-version's toolchain.
package_crates

say "cargo test: unit and integration tests"
cargo test "${NATIVE_PACKAGES[@]}"

# The head parser and the cluster protocol, fed arbitrary bytes.
run_fuzzers 300000

say "Playwright browser tests (Chromium)"
(cd end2end && npx playwright test)

# Every benchmark, small: they must keep running (figures: scripts/bench.sh).
# The bundle benchmark reads the release sites built above and fails the run
# when the reference node's wasm or what the banner adds to the example app
# is over its size budget (README, Benchmarks).
say "benchmarks, smoke size (target/debug/vo-bench --size smoke --release-bundle)"
target/debug/vo-bench --size smoke --release-bundle

say "all tests passed in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
