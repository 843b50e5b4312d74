#!/usr/bin/env bash
# The README's benchmark command: install what is missing, build everything in
# release mode, then run the benchmarks and print each figure with its inputs.
#   scripts/bench.sh                         every benchmark, full size (about 13 min, and 4 more for the browser one)
#   scripts/bench.sh --size smoke            every benchmark, small (about 2 min, and 1 more for the browser one)
#   scripts/bench.sh --only convergence,ssr  some of them (--only browser: Chromium, end2end/bench/)
# Further options: target/release/vo-bench --help.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_build_tools
ensure_wasm_opt
ensure_bench_tools
build_site --release
build_binaries --release
cd "$VO_ROOT"
say "vo-bench $*"
exec "$VO_ROOT/target/release/vo-bench" "$@"
