#!/usr/bin/env bash
# The CI build of the keepvip image, on a machine with no container registry.
#
# 1. A Docker daemon: docker.io from Debian if missing, dockerd started if none
#    answers (and stopped at the end only if this script started it).
# 2. The base: built from Debian packages by base.sh (debootstrap + docker
#    import), cached by a content key; passed as --build-arg BASE.
# 3. The image, from the unchanged top-level Dockerfile. The host's CA bundle
#    goes in as the BuildKit secret `pip-ca`, which the Dockerfile uses for
#    pip when it is there: these machines reach PyPI through a proxy that the
#    host's bundle trusts. A user with ordinary internet access builds with a
#    plain `docker build .` and no secret.
#
# Usage: build.sh [--tag NAME:TAG] [--no-base]
#   --tag      image reference (default keepvip:dev)
#   --no-base  build FROM the Dockerfile's default base (needs a registry)
# Prints the image reference on stdout; progress goes to stderr.
# Environment: KEEPVIP_PIP_CA (default /etc/ssl/certs/ca-certificates.crt;
# empty for none), KEEPVIP_KEEP_DOCKERD=1 leaves a daemon it started running.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
tag=keepvip:dev
use_base=1
while (($#)); do
	case $1 in
	--tag)
		tag=$2
		shift 2
		;;
	--no-base)
		use_base=0
		shift
		;;
	*)
		echo "usage: build.sh [--tag NAME:TAG] [--no-base]" >&2
		exit 2
		;;
	esac
done

log() { echo "image/build.sh: $*" >&2; }

daemon=$("$here/dockerd.sh" ensure)
if [[ $daemon == started && ${KEEPVIP_KEEP_DOCKERD:-} != 1 ]]; then
	trap '"$here/dockerd.sh" stop' EXIT
fi
client=$("$here/dockerd.sh" client)
read -r docker mode <<<"$client"
export DOCKER=$docker

args=()
if ((use_base)); then
	base=$("$here/base.sh")
	args+=(--build-arg "BASE=$base")
fi
ca=${KEEPVIP_PIP_CA-/etc/ssl/certs/ca-certificates.crt}
if [[ -n $ca && -s $ca ]]; then
	args+=(--secret "id=pip-ca,src=$ca")
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -1)
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $revision != unknown && -n $(git -C "$repo" status --porcelain -- agent operator pyproject.toml Dockerfile 2>/dev/null) ]]; then
	revision+=-dirty
fi
args+=(
	--build-arg "VERSION=$version"
	--build-arg "REVISION=$revision"
	--build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	--tag "$tag"
)

started=$(date +%s)
log "building $tag (BuildKit: $mode)"
if [[ $mode == buildx ]]; then
	"$docker" buildx build --load "${args[@]}" "$repo" >&2
else
	DOCKER_BUILDKIT=1 "$docker" build --progress=plain "${args[@]}" "$repo" >&2
fi
size=$("$docker" image inspect --format '{{.Size}}' "$tag")
log "$tag built in $(($(date +%s) - started)) s, $((size / 1000000)) MB"
echo "$tag"
