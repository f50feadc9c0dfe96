#!/usr/bin/env bash
# Builds the image's base from Debian packages and prints its reference.
#
# No container registry is reachable on the CI machines, so the Dockerfile's
# default base (debian:bookworm-*-slim) cannot be pulled. This makes the
# equivalent from the Debian archive instead: `debootstrap --variant=minbase`
# of the same suite, slimmed the way the official slim images are (dpkg
# excludes docs, man pages and locales, also for every package installed
# later), imported with `docker import`, and passed to the Dockerfile as
# `--build-arg BASE=...`.
#
# Cached by a content key: the tag is keepvip-base:<suite>-<key>, where the
# key hashes this recipe (this file, suite, variant, mirror, architecture).
# If the daemon has that tag the build is skipped (well under a second);
# change the recipe (or pass --refresh) to rebuild. The key says which
# recipe made the image, not which package versions it holds: debootstrap
# takes the archive's current packages.
#
# Usage: base.sh [--refresh]   (needs root, a running Docker daemon, DOCKER=client)
set -euo pipefail

SUITE=${KEEPVIP_BASE_SUITE:-bookworm}
MIRROR=${KEEPVIP_BASE_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${KEEPVIP_BASE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DOCKER=${DOCKER:-docker}

log() { echo "image/base.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
key=$(
	{
		cat "${BASH_SOURCE[0]}"
		echo "$SUITE $MIRROR $SECURITY_MIRROR $arch"
	} | sha256sum | cut -c1-12
)
ref="keepvip-base:$SUITE-$key"

if [[ ${1:-} != --refresh ]] && "$DOCKER" image inspect "$ref" >/dev/null 2>&1; then
	echo "$ref"
	exit 0
fi

[[ $(id -u) == 0 ]] || die "debootstrap needs root"
if ! command -v debootstrap >/dev/null; then
	log "installing debootstrap"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/keepvip-base.XXXXXX")
trap 'rm -rf "$root"' EXIT
started=$(date +%s)
log "debootstrap --variant=minbase $SUITE from $MIRROR (about 30 s)"
debootstrap --variant=minbase --arch="$arch" "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 ||
	{
		tail -20 "$root.log" >&2
		rm -f "$root.log"
		die "debootstrap failed"
	}
rm -f "$root.log"

# What the official slim images do (docker-debian-artifacts): keep dpkg from
# installing docs, man pages and translations, now and in every later layer.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
# apt leaves no package cache or lists behind in image layers.
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::GzipIndexes "true"; Acquire::CompressionTypes::Order:: "gz";' \
	>"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
# The same sources as the official image: the release, its updates and security.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# Remove what the excludes would have kept out, and the bootstrap's leftovers.
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,info,groff,lintian,linda}/* \
	"$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* \
	"$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
find "$root" -xdev -name __pycache__ -type d -prune -exec rm -rf {} +
# A machine id is made per container, not baked into the image.
: >"$root/etc/machine-id"

tar --numeric-owner --xattrs -C "$root" -c . |
	"$DOCKER" import \
		--change 'CMD ["bash"]' \
		--change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase for keepvip, by hack/image/base.sh\"" \
		- "$ref" >/dev/null
log "$ref built in $(($(date +%s) - started)) s"
echo "$ref"
