#!/usr/bin/env bash
# The README's run command: install what is missing, build (release), and start
# one node on the embedded single-node default at http://127.0.0.1:3000.
# Extra arguments go to the node, e.g. scripts/run.sh --app-version 2.0.0
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_build_tools
ensure_wasm_opt
build_site --release
build_binaries --release
say "starting version-observer (Ctrl-C stops it)"
cd "$VO_ROOT"
exec "$VO_ROOT/target/release/version-observer" "$@"
