#!/usr/bin/env bash
# Renders the kubectl install bundle, deploy/keepvip.yaml, from the Helm chart:
# a Namespace, the CRD and `helm template` of the chart with its default values
# (release "keepvip" in namespace "keepvip-system"). tests/unit/test_chart.py
# keeps the checked-in file equal to this output; run `make bundle` after
# changing the chart or the CRD, and commit the result.
#
# Usage: bundle.sh [OUTPUT]   (default: stdout)
# Helm: $HELM, else the control-plane tier's build (make controlplane-build), else helm on PATH.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NAMESPACE=keepvip-system
RELEASE=keepvip
# The chart's minimum; helm template without a cluster must be told a version.
KUBE_VERSION=1.31.0

helm=${HELM:-}
if [[ -z $helm ]]; then
	bin_dir=$("$repo/hack/controlplane/build.sh" bin-dir 2>/dev/null || true)
	if [[ -n $bin_dir && -x $bin_dir/helm ]]; then
		helm=$bin_dir/helm
	else
		helm=$(command -v helm) || {
			echo "bundle.sh: no helm (set HELM, or run make controlplane-build)" >&2
			exit 1
		}
	fi
fi

# Helm's own state goes to a throwaway directory, not to the user's.
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT

render() {
	cat <<HEADER
# keepvip: the VirtualIP CRD and the operator, for \`kubectl apply --server-side -f\`.
# Generated from charts/keepvip by hack/image/bundle.sh (helm template with the
# chart's default values, release "$RELEASE", namespace "$NAMESPACE"). Do not edit:
# change the chart, then run \`make bundle\`.
---
apiVersion: v1
kind: Namespace
metadata:
  name: $NAMESPACE
  labels:
    # The agents run in the VirtualIPs' namespaces; this one holds the operator only.
    pod-security.kubernetes.io/enforce: restricted
HEADER
	HELM_CACHE_HOME=$home/cache HELM_CONFIG_HOME=$home/config HELM_DATA_HOME=$home/data \
		"$helm" template "$RELEASE" "$repo/charts/keepvip" --namespace "$NAMESPACE" \
		--include-crds --kube-version "$KUBE_VERSION"
}

if (($#)); then
	render >"$1.tmp"
	mv "$1.tmp" "$1"
else
	render
fi
