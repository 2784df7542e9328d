#!/usr/bin/env bash
# hivemind 1.1.12's figures on this machine (scripts/hivemind_baseline.py), for the hivemind
# columns of BENCHMARKS.md.
#
# Usage: bash scripts/hivemind-baseline.sh [--json] [--benchmark-dht HIVEMIND/benchmarks/benchmark_dht.py]
#   --benchmark-dht runs hivemind's own benchmark (from a checkout of hivemind 1.1.12) with its
#   defaults, three times.
# Env:   HIVEMIND_VENV, HIVEMIND_CONSTRAINTS (see scripts/hivemind-venv.sh). The first run makes a
# venv with hivemind 1.1.12 (about 5.6 GB, a few minutes). Not part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/hivemind-venv.sh
# hivemind's benchmark_dht.py imports tqdm, which hivemind itself does not install.
"$VENV/bin/python" -c 'import tqdm' 2>/dev/null || "$VENV/bin/pip" install -q tqdm -c "$HIVEMIND_CONSTRAINTS"
PYTHONWARNINGS=ignore exec "$VENV/bin/python" scripts/hivemind_baseline.py "$@"
