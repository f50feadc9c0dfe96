#!/usr/bin/env bash
# A Docker daemon for the image build and the image and e2e tiers: installed
# from Debian (docker.io) if missing, started in the background if none
# answers, and stopped again only by whoever started it.
#
#   dockerd.sh ensure   print "running" (a daemon already answered) or
#                       "started" (this call started one, pid in the state dir)
#   dockerd.sh stop     stop the daemon this script started; nothing otherwise
#   dockerd.sh client   print the path of a docker client that can build with
#                       BuildKit (`docker buildx`, or a 20.10 client's built-in)
#
# State (pid file, log) is in ${KEEPVIP_DOCKERD_DIR:-${XDG_RUNTIME_DIR:-/tmp}/keepvip-dockerd}.
set -euo pipefail
# shellcheck source=../lib/daemon.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/daemon.sh"

state=${KEEPVIP_DOCKERD_DIR:-${XDG_RUNTIME_DIR:-/tmp}/keepvip-dockerd}

log() { echo "image/dockerd.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# The client to talk to the daemon with; any client answers `info`.
any_client() {
	command -v docker || { [[ -x /usr/bin/docker ]] && echo /usr/bin/docker; } || true
}

answers() {
	local c
	c=$(any_client)
	[[ -n $c ]] && timeout 10 "$c" info >/dev/null 2>&1
}

install_engine() {
	[[ $(id -u) == 0 ]] || die "installing docker.io needs root"
	log "installing docker.io from Debian"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		docker.io iptables >&2
}

ensure() {
	if answers; then
		echo running
		return
	fi
	command -v dockerd >/dev/null || install_engine
	command -v dockerd >/dev/null || die "dockerd is still missing after installing docker.io"
	[[ -n $(any_client) ]] || install_engine
	mkdir -p "$state"
	log "starting dockerd (log: $state/dockerd.log)"
	# setsid: the daemon outlives this shell; its pid file says who started it.
	setsid dockerd --pidfile "$state/dockerd.pid" >"$state/dockerd.log" 2>&1 </dev/null &
	echo $! >"$state/started-by-keepvip"
	for _ in $(seq 1 120); do
		if answers; then
			echo started
			return
		fi
		kill -0 "$(cat "$state/started-by-keepvip")" 2>/dev/null || break
		sleep 0.5
	done
	tail -20 "$state/dockerd.log" >&2 || true
	die "dockerd did not answer within 60 s"
}

stop() {
	stop_started "$state/started-by-keepvip"
}

# A client that builds with BuildKit, needed for the build's optional secret.
# Docker >= 23 builds with BuildKit only through the buildx plugin; 20.10
# (Debian bookworm's docker.io) has BuildKit built in (DOCKER_BUILDKIT=1).
client() {
	local c major
	for c in $(type -ap docker) /usr/bin/docker; do
		[[ -x $c ]] || continue
		if "$c" buildx version >/dev/null 2>&1; then
			echo "$c buildx"
			return
		fi
		major=$("$c" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)
		if [[ $major =~ ^[0-9]+$ ]] && ((major >= 18 && major < 23)); then
			echo "$c builtin"
			return
		fi
	done
	die "no docker client can build with BuildKit: install the buildx plugin (docker-buildx) or docker.io 20.10"
}

case ${1:-} in
ensure) ensure ;;
stop) stop ;;
client) client ;;
*) die "usage: dockerd.sh ensure|stop|client" ;;
esac
