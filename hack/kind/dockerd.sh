#!/usr/bin/env bash
# The Docker daemon of the kind tier: one of its own (socket, pid file, data
# root, bridge), so that nothing about the machine's default daemon changes
# and kind's --privileged nodes can be allowed here without allowing them
# anywhere else.
#
#   dockerd.sh ensure   start it unless it answers; print DOCKER_HOST=unix://...
#   dockerd.sh env      print DOCKER_HOST=unix://... (no start)
#   dockerd.sh stop     stop it if this script started it (pid file); remove nothing else
#
# Its addresses are documentation ranges only (RFC 5737), in the upper half
# of 198.51.100.0/24, whose lower half is the kind cluster's network
# (tests/harness/keepvip_harness/kindctl.py): the default bridge keepvipkind0 is 198.51.100.128/26
# (image builds run there), networks made without a subnet come from
# 198.51.100.192/26. The image tier's networks (192.0.2.128/25, on the
# machine's default daemon) and the lab's (inside network namespaces) are
# elsewhere, so no two tiers share a route.
#
# When CAP_SYS_RESOURCE (bit 24) is missing from the capability bounding set
# (these CI machines), runc-wrapper next to this file is registered as the
# default runtime: Docker would otherwise ask runc for it in every
# --privileged container and the kernel refuses (see that script).
#
# State: ${KEEPVIP_KIND_DOCKERD_DIR:-/var/lib/keepvip-kind/docker} (data root,
# kept between runs: it holds the cached node image) and
# ${XDG_RUNTIME_DIR:-/run}/keepvip-kind (socket, pid file, log).
set -euo pipefail
# shellcheck source=../lib/daemon.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/daemon.sh"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
data=${KEEPVIP_KIND_DOCKERD_DIR:-/var/lib/keepvip-kind/docker}
run=${XDG_RUNTIME_DIR:-/run}/keepvip-kind
sock=$run/docker.sock
host=unix://$sock

log() { echo "kind/dockerd.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

answers() { timeout 10 /usr/bin/docker -H "$host" info >/dev/null 2>&1; }

# Bit 24 of CapBnd, from /proc (no libcap tools needed).
lacks_sys_resource() {
	local bnd
	bnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' /proc/self/status)
	(((0x$bnd >> 24 & 1) == 0))
}

ensure() {
	if answers; then
		echo "DOCKER_HOST=$host"
		return
	fi
	[[ $(id -u) == 0 ]] || die "the kind tier's Docker daemon runs as root"
	if ! command -v dockerd >/dev/null || [[ ! -x /usr/bin/docker ]] || ! command -v jq >/dev/null; then
		log "installing docker.io, iptables and jq from Debian"
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			docker.io iptables jq >&2
	fi
	mkdir -p "$run" "$data"
	local args=(
		--host "$host" --pidfile "$run/dockerd.pid" --data-root "$data"
		--exec-root "$run/exec" --bridge keepvipkind0
		--default-address-pool base=198.51.100.192/26,size=28
	)
	# The default bridge is ours by name and address (dockerd takes -b or --bip, not both).
	ip link show keepvipkind0 >/dev/null 2>&1 ||
		{ ip link add keepvipkind0 type bridge && ip addr add 198.51.100.129/26 dev keepvipkind0 && ip link set keepvipkind0 up; }
	if lacks_sys_resource; then
		args+=(--add-runtime "keepvip-runc=$here/runc-wrapper" --default-runtime keepvip-runc)
	fi
	log "starting dockerd on $sock (log: $run/dockerd.log)"
	setsid dockerd "${args[@]}" >"$run/dockerd.log" 2>&1 </dev/null &
	echo $! >"$run/started-by-keepvip"
	for _ in $(seq 1 120); do
		if answers; then
			echo "DOCKER_HOST=$host"
			return
		fi
		kill -0 "$(cat "$run/started-by-keepvip")" 2>/dev/null || break
		sleep 0.5
	done
	tail -20 "$run/dockerd.log" >&2 || true
	die "dockerd did not answer within 60 s"
}

clean_rules() {
	# dockerd leaves its default bridge's iptables rules behind when it stops
	# (a MASQUERADE of the bridge's subnet among them, which would rewrite the
	# sources of any other bridge's traffic in that range): remove the rules
	# that name this daemon's bridge, and only those.
	local table rule args
	for table in nat filter; do
		while read -r rule; do
			read -ra args <<<"${rule#-A }"
			iptables -t "$table" -D "${args[@]}" 2>/dev/null || true
		done < <(iptables-save -t "$table" 2>/dev/null | grep -E '^-A .*keepvipkind0' || true)
	done
}

stop() {
	local marker=$run/started-by-keepvip
	if [[ ! -f $marker ]]; then
		answers || clean_rules # leftovers of an earlier daemon; a running one keeps its rules
		return 0
	fi
	stop_started "$marker"
	ip link del keepvipkind0 2>/dev/null || true
	clean_rules
}

case ${1:-} in
ensure) ensure ;;
env) echo "DOCKER_HOST=$host" ;;
stop) stop ;;
*) die "usage: dockerd.sh ensure|env|stop" ;;
esac
