#!/usr/bin/env bash
# benchmarks/peers.py in pieces: one round per invocation, each inside
# the kind and heavy locks (taken in that order) and released for PAUSE s between
# pieces, so that other users of the machine get their turn (the rule: holds of
# about 10 minutes). The pieces share one kind cluster and the peers installed on
# it (KEEPVIP_KEEP_KIND=1, KEEPVIP_KEEP_PEERS=1) and add their runs to
# benchmarks/results/peers.json; after the last piece remove the peers with
# `benchmarks/peers.py --teardown` and the cluster with `make kind-down`.
#
#   run.sh ROUNDS "PIECES..." [peers.py arguments]     (a piece: comma-separated phases)
#   e.g. run.sh 3 "default,tuned,lease15" --scenarios crash,agent,drain,create
# (that piece holds the locks about 9 minutes on the project's 2-core machine), or
#   run.sh 5 "default tuned lease15" --scenarios api      (one API server freeze a piece)
#   run.sh 5 "default tuned" --policy Local --scenarios local
#   run.sh 5 default --scenarios resources
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=$1 phases=$2
shift 2
for ((r = 0; r < rounds; r++)); do
	for phase in $phases; do
		echo "peers/run.sh: round $((r + 1))/$rounds, phase $phase ($(date -u +%H:%M:%S))" >&2
		KEEPVIP_KEEP_KIND=1 KEEPVIP_KEEP_PEERS=1 flock /tmp/keepvip-kind.lock \
			flock /tmp/keepvip-heavy.lock "$repo/.venv/bin/python" "$repo/benchmarks/peers.py" \
			--runs 1 --phases "$phase" "$@"
		sleep "${PAUSE:-60}"
	done
done
