#!/usr/bin/env bash
# Live interop with a real hivemind 1.1.12 on loopback (see docs/hivemind-compat.md):
#   - a Rust stub (examples/hivemind_interop.rs, WireMode::Hivemind) calls a Python hivemind
#     servicer: unary, a handler error, an unknown handler, unary-stream, stream-stream;
#   - a Python hivemind stub calls the Rust servicer: the same, plus an unknown handler;
#   - a Python hivemind.DHT bootstraps from our `p2p-dht node` alone and they store and get each
#     other's values and subkeys (`p2p-dht get` / `store` on the Rust side);
#   - a mixed swarm of 3 Python and 3 Rust DHT nodes where every node gets every key.
#
# Usage: bash scripts/interop-hivemind.sh
# Env:   HIVEMIND_VENV, HIVEMIND_CONSTRAINTS (see scripts/hivemind-venv.sh). The first run makes a
# venv with hivemind 1.1.12 (about 5.6 GB, a few minutes). Not part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/hivemind-venv.sh
echo "== building the Rust side"
cargo build --workspace --example hivemind_interop --bin p2p-dht
BINS="$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/examples"
echo "== running"
PYTHONWARNINGS=ignore "$VENV/bin/python" scripts/interop_hivemind.py "$BINS"
