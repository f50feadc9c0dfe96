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
errf=$(mktemp)
trap 'rm -f "$errf"' EXIT
# The controller manager allocates a range when a node registers: seconds. A kubectl
# that cannot ask is said at once and again at the end, not hidden by the wait.
deadline=$((SECONDS + 240))
for n in $nodes; do
	err=""
	while :; do
		if out=$("$kubectl" --kubeconfig "$kubeconfig" get node "$n" -o jsonpath='{.spec.podCIDR}' 2>"$errf"); then
			cidr[$n]=$out err=""
			[[ -n $out ]] && break
		else
			[[ -z $err ]] && log "asking for $n's pod range: $(tail -c 300 "$errf")"
			err=$(tail -c 300 "$errf")
		fi
		((SECONDS < deadline)) || {
			log "node $n has no pod range after 240 s${err:+ (kubectl: $err)}"
			exit 1
		}
		sleep 1
	done
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
