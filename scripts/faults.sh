#!/usr/bin/env bash
# The fault command: every reliability scenario (a rolling deploy with a
# fault injected: a frozen or killed monitor, a NATS restart, one of three
# NATS servers killed, a partitioned node, forged messages, a retiring node
# killed, and a seeded random schedule of faults through a whole deploy:
# --fault-seed N repeats one) twenty times, and
# the floods (half-sent heads, the open-files limit, clients that never
# read); prints per scenario runs, announcements expected and seen, false,
# missed and duplicated ones, and the time to recover. RELIABILITY.md records
# a run. Installs what is missing and builds in release mode first.
#   scripts/faults.sh                  twenty runs per scenario (about 40 min)
#   scripts/faults.sh --fault-runs 3   fewer
#   scripts/faults.sh --fault-scenarios 9   one scenario (by number; no floods)
# (scripts/test.sh runs each scenario once.)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_build_tools
ensure_bench_tools
build_binaries --release
cd "$VO_ROOT"
say "vo-bench --only faults $*"
exec "$VO_ROOT/target/release/vo-bench" --only faults "$@"
