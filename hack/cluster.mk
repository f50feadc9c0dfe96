# The control-plane tier (tests/cluster): a real Kubernetes control plane
# built from source (hack/controlplane/build.sh) and run on loopback by the
# test harness (tests/harness/keepvip_harness/controlplane.py).
#   make controlplane-build   build or reuse the pinned binaries (~11 min cold, <1 s warm)
#   make cluster-up           start one in the background; prints its KUBECONFIG
#   make cluster-down         stop it (by the pids it recorded) and remove its state
#   make test-cluster         run the cluster tier (starts its own control plane,
#                             or reuses the one from cluster-up via KEEPVIP_CLUSTER_DIR)
CLUSTER_DIR ?= $(or $(XDG_RUNTIME_DIR),/tmp)/keepvip-cluster

.PHONY: controlplane-build controlplane-clean cluster-deps cluster-up cluster-down test-cluster

controlplane-build:
	@command -v go >/dev/null || { echo "controlplane-build needs Go >= 1.26 on PATH" >&2; exit 1; }
	hack/controlplane/build.sh build

# Removes the binaries and the Go module and build caches of this tier.
controlplane-clean:
	hack/controlplane/build.sh clean

# The harness makes its certificates with the openssl command; the kube-proxy
# stand-in (servicenet) writes NAT rules with /usr/sbin/iptables.
cluster-deps: deps
	@command -v openssl >/dev/null || (apt-get update -qq && apt-get install -y -qq openssl)
	@test -x /usr/sbin/iptables || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables)

cluster-up: cluster-deps controlplane-build
	$(PY) -m keepvip_harness.controlplane up --state-dir $(CLUSTER_DIR)
	@echo "pytest can reuse it: KEEPVIP_CLUSTER_DIR=$(CLUSTER_DIR) $(PY) -m pytest tests/cluster"

cluster-down:
	$(PY) -m keepvip_harness.controlplane down --state-dir $(CLUSTER_DIR)

test-cluster: cluster-deps controlplane-build
	$(PY) -m pytest -m cluster $(PYTEST_ARGS)
