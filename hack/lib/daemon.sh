# Sourced by hack/image/dockerd.sh and hack/kind/dockerd.sh: stopping a daemon
# only if this repo's scripts started it (its pid is in a marker file they wrote).

# stop_started MARKER: TERM the pid in MARKER, KILL it after 30 s, remove MARKER.
# Nothing happens without the marker: a daemon someone else runs is left alone.
stop_started() {
	local marker=$1 pid
	[[ -f $marker ]] || return 0
	pid=$(cat "$marker")
	if kill -0 "$pid" 2>/dev/null; then
		log "stopping the dockerd this script started (pid $pid)"
		kill -TERM "$pid"
		for _ in $(seq 1 60); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
	fi
	rm -f "$marker"
}
