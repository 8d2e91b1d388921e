#!/usr/bin/env bash
# Alternates builds (or settings) of the query_speed bench on loupe's full outliers question, so
# that two of them are compared in one script, not across runs minutes apart (run-to-run noise
# on a 2-core machine is 5-8%).
#
#   benches/ab_outliers.sh ROUNDS 'label|binary|ENV=value ...' 'label|binary|' ...
#
# Each spec is a label, a query_speed binary (copied out of target/release/deps after
# `cargo bench -p loupe-bench --bench query_speed --no-run`, as the next build overwrites it) and
# environment settings for it, possibly none. For each of ROUNDS rounds, every spec runs
# `OUTLIERS=full RUNS=3 QUERIES=outliers <binary> --bench` from benches/ in turn; the line printed
# is the bench's own (cold, and warm median of 3). The data is target/bench-data's unless
# BENCH_DATA says otherwise (a binary copied out of target/ would not find it).
set -euo pipefail
rounds=$1
shift
cd "$(dirname "$0")"
export BENCH_DATA=${BENCH_DATA:-$PWD/../target/bench-data}
for r in $(seq 1 "$rounds"); do
  for spec in "$@"; do
    IFS='|' read -r label bin envs <<<"$spec"
    # shellcheck disable=SC2086 # the settings are words on purpose
    out=$(env $envs OUTLIERS=full RUNS=3 QUERIES=outliers "$bin" --bench 2>/dev/null | grep "loupe, full")
    echo "round $r $label: $out"
  done
done
