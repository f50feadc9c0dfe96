#!/usr/bin/env bash
# Every cell of benchmarks/results/peers.md in one command: hack/peers/run.sh with the
# arguments that give each cell its runs (5, or 3 for the scenarios that take a node
# away: crash, hang, drain, since five rounds of everything would take far more than an
# hour), then the peers and the kind cluster removed. Adds to peers.json (every piece
# does); start from an empty file with `mv benchmarks/results/peers.json{,.old}` first.
# Each piece takes the kind and heavy locks for one phase of one round, so other users
# of the machine get their turn between pieces (PAUSE s, default 20).
#
#   hack/peers/build.sh && make kind-build && hack/peers/all.sh
#
# Benchmark-only: nothing in `make test` or CI runs it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PAUSE=${PAUSE:-20}
run=$repo/hack/peers/run.sh
"$run" 3 "default tuned lease15" --scenarios crash,hang,drain
"$run" 5 "default tuned lease15" --scenarios agent,create,api
"$run" 5 default,tuned,lease15 --policy Local --scenarios local
"$run" 5 "default tuned" --scenarios resources
flock /tmp/keepvip-kind.lock "$repo/.venv/bin/python" "$repo/benchmarks/peers.py" --teardown
flock /tmp/keepvip-kind.lock make -C "$repo" kind-down
