#!/usr/bin/env bash
# Pod networking for a kind cluster whose default CNI (kindnetd) is disabled:
# Debian's CNI plugins on every node, with the pod range the controller
# manager gave the node, and a route on every node to every other node's pod
# range (what kindnetd would do). Idempotent: run after `kind create`, and
# again after a node container was restarted (its routes went with it).
#
#   net.sh CLUSTER KUBECTL KUBECONFIG     (DOCKER_HOST names the daemon)
set -euo pipefail
cluster=$1 kubectl=$2 kubeconfig=$3
docker=${DOCKER:-/usr/bin/docker}

log() { echo "kind/net.sh: $*" >&2; }

nodes=$("$docker" ps --filter "label=io.x-k8s.kind.cluster=$cluster" --format '{{.Names}}' | sort)
declare -A cidr ip
for n in $nodes; do
	# The controller manager allocates a range when the node registers (300 s: a cold CI run
	# on a loaded 2-core machine gave up at 120 s; the cause was not established).
	for _ in $(seq 1 300); do
		cidr[$n]=$("$kubectl" --kubeconfig "$kubeconfig" get node "$n" -o jsonpath='{.spec.podCIDR}' 2>/dev/null || true)
		[[ -n ${cidr[$n]} ]] && break
		sleep 1
	done
	[[ -n ${cidr[$n]} ]] || {
		log "node $n has no pod range after 300 s"
		exit 1
	}
	ip[$n]=$("$docker" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$n")
done
for n in $nodes; do
	# ptp: a veth per pod and a host route to it; ipMasq: pods reach the
	# node network (the API server, other nodes) from the node's address.
	"$docker" exec -i "$n" sh -c 'cat >/etc/cni/net.d/10-keepvip.conflist.tmp && mv /etc/cni/net.d/10-keepvip.conflist.tmp /etc/cni/net.d/10-keepvip.conflist' <<CNI
{
  "cniVersion": "1.0.0",
  "name": "keepvip",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": true,
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "${cidr[$n]}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
	for m in $nodes; do
		[[ $m == "$n" ]] && continue
		"$docker" exec "$n" ip route replace "${cidr[$m]}" via "${ip[$m]}"
	done
	log "$n: pods ${cidr[$n]}"
done
