#!/usr/bin/env bash
# Builds kind's node image here, offline: no registry, no release download.
#
# `kind build node-image` fetches a base image, release tarballs and
# container images, none of which these machines can reach. This assembles
# the same image the way kind's own base-image and node-image builds do
# (images/base/Dockerfile, pkg/build/nodeimage in sigs.k8s.io/kind), from
# pieces that build here:
#   - userspace: Debian (debootstrap) with systemd, iptables, nftables,
#     conntrack and Debian's CNI plugins (ptp, bridge, host-local, portmap);
#     bookworm, because its systemd 252 still boots on a cgroup v1 host
#   - kind's images/base/files (entrypoint, systemd units, kubelet drop-ins),
#     from the kind module (versions.env: KIND_VERSION)
#   - kubelet, kubeadm, kubectl (and kube-proxy for its image) from the same
#     k8s.io/kubernetes version, Go module cache and build cache as the
#     control-plane tier (hack/controlplane), so the compile is shared
#   - containerd 2 and runc from the Go module proxy (versions.env)
#   - the images kubeadm asks for, made here with `docker import` and
#     preloaded into the node's containerd: kube-apiserver, -controller-manager,
#     -scheduler (the control-plane tier's binaries), etcd (its pinned etcd,
#     tagged with that version: the kind config sets kubeadm's etcd imageTag),
#     pause (compiled from the Kubernetes module's build/pause/linux/pause.c)
#     and kube-proxy (on the node's Debian userspace, for iptables and conntrack)
#
# Cached by a content key (this script, the pins, the wrapper modules): the
# image is keepvip-kind-node:<kubernetes version>-<key> in the kind tier's
# Docker daemon (hack/kind/dockerd.sh); a second run finds it and returns at
# once. Binaries are cached by their own key under
#   ${XDG_CACHE_HOME:-$HOME/.cache}/keepvip/kind/<key>/bin
# and the Debian userspace as a tarball keyed by its recipe. Go builds take
# the control-plane tier's lock, so two builds never race on one cache.
#
# Usage:
#   build.sh [build]   build what is missing; print the node image reference
#   build.sh image     print the node image reference (no build)
#   build.sh bin-dir   print the binaries' directory
#   build.sh pin       rewrite the wrapper modules from the pins
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cp_dir=$repo/hack/controlplane
# shellcheck source=../controlplane/versions.env
source "$cp_dir/versions.env"
# shellcheck source=versions.env
source "$here/versions.env"

# Bump when the recipe of the binaries changes (flags, package list).
RECIPE=1
PAUSE_VERSION=3.10.2
MIRROR=${KEEPVIP_BASE_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${KEEPVIP_BASE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# What kind's base image installs (images/base/Dockerfile), less the storage
# packages nothing here uses, plus Debian's CNI plugins (kindnetd cannot be
# built from the Go module proxy) and the libseccomp runc links against.
PACKAGES=systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,containernetworking-plugins

cache=${XDG_CACHE_HOME:-$HOME/.cache}/keepvip/kind
# The control-plane tier's Go caches and lock, shared on purpose.
go_cache=${XDG_CACHE_HOME:-$HOME/.cache}/keepvip/controlplane

log() { echo "kind/build.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

bin_key() {
	{
		echo "recipe=$RECIPE pause=$PAUSE_VERSION"
		grep -hE '^[A-Z_]+=' "$cp_dir/versions.env" "$here/versions.env"
		cat "$here"/{kubernetes,containerd,runc}/go.{mod,sum}
	} | sha256sum | cut -c1-12
}

image_key() {
	{
		bin_key
		cat "${BASH_SOURCE[0]}"
		echo "$MIRROR $SECURITY_MIRROR $PACKAGES"
	} | sha256sum | cut -c1-12
}

rootfs_key() {
	{
		echo "$NODE_SUITE $MIRROR $SECURITY_MIRROR $PACKAGES $(dpkg --print-architecture)"
		sed -n '/^# ---- rootfs recipe/,/^# ---- end of rootfs recipe/p' "${BASH_SOURCE[0]}"
	} | sha256sum | cut -c1-12
}

image_ref() { echo "keepvip-kind-node:${KUBERNETES_VERSION}-$(image_key)"; }
bin_dir() { echo "$cache/bin-$(bin_key)"; }

go_env() {
	export GOMODCACHE="$go_cache/go/mod" GOCACHE="$go_cache/go/build"
	export GOTOOLCHAIN=local GOWORK=off GOFLAGS="-buildvcs=false -mod=readonly"
	command -v go >/dev/null || die "go is not installed (Go >= 1.26 builds the node's binaries)"
}

# The kind tier's daemon; if this call starts it, it stops it again on exit
# (whoever needs it next, kind-up or the e2e tier, starts it again).
work="" build_ctr="" started_daemon=""
cleanup() {
	[[ -n $build_ctr ]] && "$DOCKER" rm -f -v "$build_ctr" >/dev/null 2>&1
	[[ -n $work ]] && rm -rf "$work"
	[[ -n $started_daemon ]] && "$here/dockerd.sh" stop
	true
}
docker_env() {
	local line
	line=$("$here/dockerd.sh" env)
	/usr/bin/docker -H "${line#DOCKER_HOST=}" info >/dev/null 2>&1 || started_daemon=1
	line=$("$here/dockerd.sh" ensure)
	export "${line?}"
	DOCKER=/usr/bin/docker
	trap cleanup EXIT
}

# ---------------------------------------------------------------- pin

pin() {
	go_env
	export GOFLAGS="-buildvcs=false -mod=mod"
	# The node binaries come from the control-plane tier's Kubernetes wrapper:
	# the same requires and replaces, only the tool list differs. `go mod tidy`
	# adds what the node binaries need without moving what is already there.
	{
		echo "// Generated by hack/kind/build.sh pin from hack/controlplane/kubernetes/go.mod; do not edit."
		sed -e '1d' -e 's#^module .*#module keepvip.invalid/hack/kind/kubernetes#' -e '/^tool (/,/^)/d' \
			"$cp_dir/kubernetes/go.mod"
		printf 'tool (\n'
		printf '\tk8s.io/kubernetes/cmd/%s\n' kubelet kubeadm kubectl kube-proxy
		printf ')\n'
	} >"$here/kubernetes/go.mod.new"
	mv "$here/kubernetes/go.mod.new" "$here/kubernetes/go.mod"
	cp "$cp_dir/kubernetes/go.sum" "$here/kubernetes/go.sum"
	(cd "$here/kubernetes" && go mod tidy)
	local spec dir mod ver
	for spec in \
		"containerd github.com/containerd/containerd/v2 $CONTAINERD_VERSION cmd/containerd cmd/ctr cmd/containerd-shim-runc-v2" \
		"runc github.com/opencontainers/runc $RUNC_VERSION ."; do
		read -r dir mod ver tools <<<"$spec"
		mkdir -p "$here/$dir"
		{
			echo "// Generated by hack/kind/build.sh pin from versions.env; do not edit."
			echo "module keepvip.invalid/hack/kind/$dir"
			echo
			echo "go 1.26.0"
			echo
			echo "require $mod $ver"
			echo
			echo "tool ("
			for t in $tools; do
				[[ $t == . ]] && printf '\t%s\n' "$mod" || printf '\t%s/%s\n' "$mod" "$t"
			done
			echo ")"
		} >"$here/$dir/go.mod"
		rm -f "$here/$dir/go.sum"
		(cd "$here/$dir" && go mod tidy)
	done
	log "pinned; node image would be $(image_ref)"
}

check_pins() {
	grep -qE "k8s.io/kubernetes $KUBERNETES_VERSION( |\$)" "$here/kubernetes/go.mod" ||
		die "kubernetes/go.mod does not pin $KUBERNETES_VERSION; run: $0 pin"
	grep -qE "github.com/containerd/containerd/v2 $CONTAINERD_VERSION( |\$)" "$here/containerd/go.mod" ||
		die "containerd/go.mod does not pin $CONTAINERD_VERSION; run: $0 pin"
	grep -qE "github.com/opencontainers/runc $RUNC_VERSION( |\$)" "$here/runc/go.mod" ||
		die "runc/go.mod does not pin $RUNC_VERSION; run: $0 pin"
}

# ---------------------------------------------------------------- binaries

go_build() { # wrapper-dir name package cgo tags ldflags
	local dir=$1 name=$2 pkg=$3 cgo=$4 tags=$5 ldflags=$6 out
	out=$(bin_dir)
	[[ -x $out/$name ]] && return 0
	local start=$SECONDS
	log "building $name ($pkg)"
	(cd "$here/$dir" && CGO_ENABLED=$cgo nice -n 10 go build -trimpath -tags "$tags" \
		-ldflags "-s -w $ldflags" -o "$out/$name.tmp" "$pkg")
	mv "$out/$name.tmp" "$out/$name"
	echo "$name $((SECONDS - start))s" >>"$out/../build-times-$(bin_key).txt"
}

binaries() {
	go_env
	check_pins
	local out
	out=$(bin_dir)
	[[ -f $out/.complete ]] && return 0
	mkdir -p "$out" "$go_cache"
	exec 9>"$go_cache/.build.lock"
	flock 9
	[[ -f $out/.complete ]] && return 0
	local start=$SECONDS kv="k8s.io/component-base/version" cv="k8s.io/client-go/pkg/version"
	local minor=${KUBERNETES_VERSION#v1.} k8s_ld="" p
	minor=${minor%%.*}
	# As hack/controlplane/build.sh: what upstream's hack/lib/version.sh stamps.
	for p in $kv $cv; do
		k8s_ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
	done
	for p in kubelet kubeadm kubectl kube-proxy; do
		go_build kubernetes "$p" "k8s.io/kubernetes/cmd/$p" 0 "" "$k8s_ld"
	done
	# containerd: static, without the snapshotters kind leaves out too.
	local ctd=github.com/containerd/containerd/v2
	for p in containerd ctr containerd-shim-runc-v2; do
		go_build containerd "$p" "$ctd/cmd/$p" 0 "no_btrfs no_devmapper no_zfs no_aufs" \
			"-X $ctd/version.Version=$CONTAINERD_VERSION -X $ctd/version.Package=$ctd"
	done
	# runc needs cgo for seccomp (libseccomp-dev here, libseccomp2 in the node).
	if ! dpkg -s libseccomp-dev >/dev/null 2>&1 || ! command -v gcc >/dev/null; then
		log "installing libseccomp-dev and gcc (runc links libseccomp)"
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libseccomp-dev gcc libc6-dev pkg-config >&2
	fi
	go_build runc runc github.com/opencontainers/runc 1 "seccomp urfave_cli_no_docs" \
		"-X main.version=${RUNC_VERSION#v}"
	# pause: one C file in the Kubernetes module, static, as build/pause/Makefile does.
	if [[ ! -x $out/pause ]]; then
		local k8s_dir
		k8s_dir=$(cd "$here/kubernetes" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
		gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-keepvip" \
			-o "$out/pause.tmp" "$k8s_dir/build/pause/linux/pause.c"
		strip "$out/pause.tmp"
		mv "$out/pause.tmp" "$out/pause"
	fi
	touch "$out/.complete"
	log "node binaries built in $((SECONDS - start))s"
}

# ---------------------------------------------------------------- rootfs

# ---- rootfs recipe (the lines up to the end marker are hashed into its key)
rootfs() { # prints the path of the cached userspace tarball
	local tarball
	tarball="$cache/rootfs-$NODE_SUITE-$(rootfs_key).tar"
	if [[ -f $tarball ]]; then
		echo "$tarball"
		return
	fi
	[[ $(id -u) == 0 ]] || die "debootstrap needs root"
	command -v debootstrap >/dev/null || {
		log "installing debootstrap"
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
	}
	mkdir -p "$cache"
	local root start=$SECONDS
	root=$(mktemp -d "${TMPDIR:-/tmp}/keepvip-kind-rootfs.XXXXXX")
	log "debootstrap $NODE_SUITE with $PACKAGES (a minute or two)"
	if ! debootstrap --variant=minbase --include="$PACKAGES" "$NODE_SUITE" "$root" "$MIRROR" >"$root.log" 2>&1; then
		tail -20 "$root.log" >&2
		rm -rf "$root" "$root.log"
		die "debootstrap failed"
	fi
	rm -f "$root.log"
	# What kind's base image does after installing its packages: no units
	# but the ones it enables, no kmsg in the journal, systemd as init.
	find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
	rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
		"$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
		"$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
	echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
	ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
	# Slim: no docs, man pages, locales or apt lists.
	rm -rf "$root"/usr/share/{doc,man,info,locale}/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*
	: >"$root/etc/machine-id"
	tar --numeric-owner --xattrs -C "$root" -cf "$tarball.tmp" .
	rm -rf "$root"
	mv "$tarball.tmp" "$tarball"
	log "userspace built in $((SECONDS - start))s"
	echo "$tarball"
}
# ---- end of rootfs recipe

# ---------------------------------------------------------------- images

# One image from a directory, tagged as kubeadm asks for it.
import_dir() { # dir ref entrypoint-json
	tar --numeric-owner -C "$1" -c . | "$DOCKER" import \
		--change "ENTRYPOINT $3" \
		--change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
		- "$2" >/dev/null
}

node_image() {
	local ref bins tarball start=$SECONDS
	ref=$(image_ref)
	docker_env
	if "$DOCKER" image inspect "$ref" >/dev/null 2>&1; then
		echo "$ref"
		return
	fi
	# debootstrap waits on the network and the disk, the Go builds on the CPU:
	# on a cold machine they overlap (about 90 s saved).
	local rootfs_out rootfs_pid
	rootfs_out=$(mktemp)
	rootfs >"$rootfs_out" &
	rootfs_pid=$!
	binaries
	bins=$(bin_dir)
	"$cp_dir/build.sh" build >/dev/null
	local cp_bins
	cp_bins=$("$cp_dir/build.sh" bin-dir)
	wait "$rootfs_pid" || die "the node's userspace (debootstrap) failed"
	tarball=$(cat "$rootfs_out")
	rm -f "$rootfs_out"
	local kind_dir
	kind_dir=$(cd "$here/kubernetes" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" |
		sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[[ -d $kind_dir/images/base/files ]] || die "no images/base/files in sigs.k8s.io/kind@$KIND_VERSION"
	work=$(mktemp -d "${TMPDIR:-/tmp}/keepvip-kind-node.XXXXXX")
	mkdir "$work/root"
	tar -C "$work/root" -xf "$tarball"
	local root=$work/root files=$kind_dir/images/base/files
	log "assembling $ref"

	# kind's base image files (COPY lines of images/base/Dockerfile).
	install -m 0755 "$files"/usr/local/bin/* "$root/usr/local/bin/"
	mkdir -p "$root/kind/bin" "$root/LICENSES" "$root/etc/containerd" "$root/etc/kubernetes/manifests"
	install -m 0644 "$files"/kind/README.txt "$root/kind/" 2>/dev/null || true
	install -m 0755 "$files"/kind/bin/* "$root/kind/bin/"
	install -m 0644 "$files"/LICENSES/* "$root/LICENSES/"
	install -m 0644 "$files"/etc/crictl.yaml "$root/etc/"
	install -m 0644 "$files"/etc/default/* "$root/etc/default/"
	install -m 0644 "$files"/etc/sysctl.d/* "$root/etc/sysctl.d/"
	install -m 0644 "$files"/etc/systemd/system/*.service "$files"/etc/systemd/system/*.slice "$root/etc/systemd/system/"
	mkdir -p "$root/etc/systemd/system/kubelet.service.d"
	install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$root/etc/systemd/system/kubelet.service.d/"
	# This machine's bounding set lacks CAP_SYS_RESOURCE: nothing may lower an
	# oom_score_adj, and systemd fails a unit whose OOMScoreAdjust it cannot set.
	sed -i '/^OOMScoreAdjust=/d' "$root/etc/systemd/system/containerd.service"
	# containerd's CRI config: kind's, with the pause this build makes, the
	# oom_score_adj restriction (kind sets it only under user namespaces), and
	# no fuse-overlayfs proxy (rootless only; not built here).
	sed -e "s#registry.k8s.io/pause:[0-9.]*#registry.k8s.io/pause:$PAUSE_VERSION#" \
		-e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' \
		-e '/^\[proxy_plugins\]/,/^  address = /d' \
		"$files/etc/containerd/config.toml" >"$root/etc/containerd/config.toml"
	grep -q "restrict_oom_score_adj = true" "$root/etc/containerd/config.toml" || die "containerd config: restrict_oom_score_adj not set"
	grep -q "pause:$PAUSE_VERSION" "$root/etc/containerd/config.toml" || die "containerd config: sandbox image not set"
	for unit in kubelet.service containerd.service undo-mount-hacks.service; do
		ln -sf "/etc/systemd/system/$unit" "$root/etc/systemd/system/multi-user.target.wants/$unit" 2>/dev/null ||
			{ mkdir -p "$root/etc/systemd/system/multi-user.target.wants" && ln -sf "/etc/systemd/system/$unit" "$root/etc/systemd/system/multi-user.target.wants/$unit"; }
	done
	ln -sf /dev/null "$root/etc/systemd/system/systemd-binfmt.service"
	# Debian's CNI plugins where containerd looks for them.
	mkdir -p "$root/opt/cni"
	ln -sfn /usr/lib/cni "$root/opt/cni/bin"
	mkdir -p "$root/etc/cni/net.d"

	# Binaries (pkg/build/nodeimage: /usr/bin for Kubernetes; the base image's places for the runtime).
	install -m 0755 "$bins"/{kubelet,kubeadm,kubectl} "$root/usr/bin/"
	install -m 0755 "$bins"/{containerd,ctr,containerd-shim-runc-v2} "$root/usr/local/bin/"
	install -m 0755 "$bins/runc" "$root/usr/local/sbin/runc"
	"$bins/ctr" oci spec |
		jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
		jq 'del(.process.rlimits)' >"$root/etc/containerd/cri-base.json"
	echo -n "$KUBERNETES_VERSION" >"$root/kind/version"

	# The component images, under the references kubeadm asks for.
	local etcd_tag=${ETCD_VERSION#v}-0 img=$work/img refs=()
	for p in kube-apiserver kube-controller-manager kube-scheduler; do
		rm -rf "$img" && mkdir -p "$img/usr/local/bin" "$img/tmp" "$img/etc"
		install -m 0755 "$cp_bins/$p" "$img/usr/local/bin/"
		echo 'root:x:0:0:root:/root:/sbin/nologin' >"$img/etc/passwd"
		import_dir "$img" "registry.k8s.io/$p:$KUBERNETES_VERSION" "[\"/usr/local/bin/$p\"]"
		refs+=("registry.k8s.io/$p:$KUBERNETES_VERSION")
	done
	rm -rf "$img" && mkdir -p "$img/usr/local/bin" "$img/tmp" "$img/etc" "$img/var/lib/etcd"
	install -m 0755 "$cp_bins/etcd" "$img/usr/local/bin/"
	echo 'root:x:0:0:root:/root:/sbin/nologin' >"$img/etc/passwd"
	import_dir "$img" "registry.k8s.io/etcd:$etcd_tag" '["/usr/local/bin/etcd"]'
	refs+=("registry.k8s.io/etcd:$etcd_tag")
	rm -rf "$img" && mkdir -p "$img"
	install -m 0755 "$bins/pause" "$img/pause"
	import_dir "$img" "registry.k8s.io/pause:$PAUSE_VERSION" '["/pause"]'
	refs+=("registry.k8s.io/pause:$PAUSE_VERSION")
	# kube-proxy on the node's own Debian userspace (iptables, nftables, conntrack).
	rm -rf "$img" && mkdir -p "$img"
	tar -C "$img" -xf "$tarball"
	rm -rf "$img"/usr/lib/systemd "$img"/lib/systemd
	install -m 0755 "$bins/kube-proxy" "$img/usr/local/bin/"
	import_dir "$img" "registry.k8s.io/kube-proxy:$KUBERNETES_VERSION" '["/usr/local/bin/kube-proxy"]'
	refs+=("registry.k8s.io/kube-proxy:$KUBERNETES_VERSION")
	rm -rf "$img"
	"$DOCKER" save "${refs[@]}" -o "$work/images.tar"
	"$DOCKER" rmi "${refs[@]}" >/dev/null
	printf '%s\n' "${refs[@]}" >"$root/kind/images"

	# The node image, then its containerd preloaded (as kind's node-image
	# build does: containerd started in a build container, `ctr import`).
	local stage="keepvip-kind-node:stage-$(image_key)"
	tar --numeric-owner --xattrs -C "$root" -c . | "$DOCKER" import - "$stage" >/dev/null
	rm -rf "$root"
	build_ctr=$("$DOCKER" run -d --privileged --entrypoint /bin/sleep "$stage" infinity)
	"$DOCKER" cp "$work/images.tar" "$build_ctr:/images.tar"
	"$DOCKER" exec "$build_ctr" bash -euc '
		mkdir -p /run/containerd
		containerd >/tmp/containerd.log 2>&1 &
		for _ in $(seq 1 100); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done
		ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
			--all-platforms --no-unpack --digests /images.tar >/dev/null
		ctr --namespace=k8s.io images list -q | grep -v "^sha256:"
		kill %1; wait || true
		rm -f /images.tar /tmp/containerd.log
	' >&2
	"$DOCKER" commit "$build_ctr" "$stage-committed" >/dev/null
	"$DOCKER" rm -f -v "$build_ctr" >/dev/null
	build_ctr=""
	# The image's metadata, as kind's base image has it (`docker commit` cannot set
	# STOPSIGNAL): systemd knows it is in a container, and stops on SIGRTMIN+3.
	printf '%s\n' "FROM $stage-committed" \
		'ENV container=docker' \
		'STOPSIGNAL SIGRTMIN+3' \
		"LABEL org.opencontainers.image.description=\"kind node $KUBERNETES_VERSION for keepvip, by hack/kind/build.sh\"" \
		'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' |
		DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$ref" - >/dev/null
	"$DOCKER" rmi "$stage-committed" "$stage" >/dev/null
	log "$ref built in $((SECONDS - start))s"
	# Older node images of this script, unless a cluster's nodes still run them
	# (Docker refuses to remove those): about 1 GB each.
	local old
	for old in $("$DOCKER" images keepvip-kind-node --format '{{.Repository}}:{{.Tag}}'); do
		[[ $old == "$ref" ]] || "$DOCKER" rmi "$old" >/dev/null 2>&1 || true
	done
	echo "$ref"
}

case ${1:-build} in
build) node_image ;;
image) image_ref ;;
bin-dir) bin_dir ;;
binaries) binaries && bin_dir ;;
rootfs) rootfs ;;
pin) pin ;;
*) die "unknown command ${1}; see the header of $0" ;;
esac
