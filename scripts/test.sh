#!/usr/bin/env bash
# The README's test command: install what is missing, then run every test:
# formatting and lints, unit and integration tests, and the Playwright browser
# tests against the built site. CI (.ci/run) runs exactly this.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
started=$SECONDS

ensure_build_tools
ensure_browser_tests
ensure_nats_server
cd "$VO_ROOT"

say "cargo fmt --check"
cargo fmt --all -- --check

# One debug build of the node and the site; the tests below reuse it.
build_site

say "cargo clippy (native crates, all targets, warnings are errors)"
cargo clippy -p app -p version-observer --all-targets -- -D warnings

say "cargo test: unit and integration tests"
cargo test -p app -p version-observer

say "Playwright browser tests (Chromium)"
(cd end2end && npx playwright test)

say "all tests passed in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
