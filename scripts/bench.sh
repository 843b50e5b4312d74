#!/usr/bin/env bash
# The README's benchmark command: install what is missing, build everything in
# release mode, then run the benchmarks and print each figure with its inputs.
#   scripts/bench.sh                         every benchmark, full size (about 20 min)
#   scripts/bench.sh --size smoke            every benchmark, small (a few minutes)
#   scripts/bench.sh --only convergence,ssr  some of them (names: README, "Benchmarks")
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
