#!/usr/bin/env bash
# Runs the three benchmark programs as BENCHMARKS.md describes, one after another, and keeps what
# they print in target/benchmarks/<UTC time>/ (the tables of BENCHMARKS.md come from these files).
#
# Usage: bash scripts/benchmarks.sh [--with-1000]   (--with-1000: also the 1,000-peer benchmark_dht)
# With HIVEMIND_BENCHMARK_DHT=path/to/hivemind/benchmarks/benchmark_dht.py it also measures
# hivemind 1.1.12 on this machine (scripts/hivemind-baseline.sh; makes a 5.6 GB venv once).
set -euo pipefail
cd "$(dirname "$0")/.."
out="target/benchmarks/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
cargo build --release --examples
bin=target/release/examples

run() {
    local name=$1
    shift
    echo "== $name: $*" | tee "$out/$name.txt"
    uptime >>"$out/$name.txt"
    "$@" | tee -a "$out/$name.txt"
}

run rpc-multi-thread "$bin/benchmark_rpc" --runs 3
run rpc-current-thread "$bin/benchmark_rpc" --runs 3 --runtime current-thread
run dht-memory "$bin/benchmark_dht" --baseline kad --runs 3
run dht-tcp "$bin/benchmark_dht" --baseline kad --runs 3 --transport tcp
run dht-pair-tcp "$bin/benchmark_dht" --scenario pair --baseline kad --runs 3 --transport tcp
run dht-pair-memory "$bin/benchmark_dht" --scenario pair --baseline kad --runs 3
run dht-pair-tcp-current-thread "$bin/benchmark_dht" --scenario pair --baseline kad --runs 3 \
    --transport tcp --runtime current-thread
run dht-memory-current-thread "$bin/benchmark_dht" --baseline kad --runs 3 --runtime current-thread
run lookup "$bin/benchmark_lookup"
if [ "${1:-}" = "--with-1000" ]; then
    run dht-1000 "$bin/benchmark_dht" --num-peers 1000
fi
if [ -n "${HIVEMIND_BENCHMARK_DHT:-}" ]; then
    run hivemind bash scripts/hivemind-baseline.sh --benchmark-dht "$HIVEMIND_BENCHMARK_DHT"
fi
echo "== outputs in $out"
