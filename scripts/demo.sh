#!/usr/bin/env bash
# The README's demo command: install what is missing, build (release), then run
# nats-server, three nodes and nginx on loopback and walk through a rolling
# deploy at a human pace. Open the printed URL and keep the tab open.
# Ctrl-C stops everything it started. Extra arguments go to `vo-lab demo`
# (e.g. --port 8081 --pace 10; see target/release/vo-lab demo --help).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_build_tools
ensure_wasm_opt
ensure_nats_server
ensure_nginx
build_site --release
build_binaries --release
say "vo-lab demo $*"
cd "$VO_ROOT"
exec "$VO_ROOT/target/release/vo-lab" demo "$@"
