#!/usr/bin/env bash
# Prints the path of a kind binary for the e2e tier, building the pinned
# version from source through the Go module proxy if it is not there yet
# (no release download: these machines reach only package registries).
#
#   kind.sh          print the binary's path (building it once, ~1 min)
#   kind.sh image    print the node image that kind version defaults to (no build)
#
# Cached in ${XDG_CACHE_HOME:-$HOME/.cache}/keepvip/kind/<version>/ with its own
# Go module and build caches. KIND=/path/to/kind uses that binary instead.
set -euo pipefail

# The pin lives with the rest of the kind tier's (hack/kind/versions.env).
# shellcheck source=../kind/versions.env
source "$(dirname "${BASH_SOURCE[0]}")/../kind/versions.env"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/keepvip/kind
bin=$cache/$KIND_VERSION/kind

die() {
	echo "image/kind.sh: $*" >&2
	exit 1
}

ensure() {
	if [[ -n ${KIND:-} ]]; then
		echo "$KIND"
		return
	fi
	if [[ ! -x $bin ]]; then
		command -v go >/dev/null || die "kind is not built and Go is missing to build it"
		echo "image/kind.sh: building kind $KIND_VERSION (go install)" >&2
		GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOTOOLCHAIN=local GOFLAGS=-mod=mod \
			GOBIN=$cache/$KIND_VERSION CGO_ENABLED=0 \
			nice -n 10 go install "sigs.k8s.io/kind@$KIND_VERSION" >&2
	fi
	echo "$bin"
}

# The node image this kind version creates clusters from (with its digest),
# read from kind's source: the module is downloaded, nothing is built.
node_image() {
	local dir
	command -v go >/dev/null || die "Go is missing to look up kind's node image"
	dir=$(GOMODCACHE=$cache/go/mod GOTOOLCHAIN=local GOFLAGS=-mod=mod \
		go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	sed -n 's/^const Image = "\(.*\)"$/\1/p' "$dir/pkg/apis/config/defaults/image.go" | grep . ||
		die "no default node image found in kind $KIND_VERSION"
}

case ${1:-} in
"") ensure ;;
image) node_image ;;
*) die "usage: kind.sh [image]" ;;
esac
