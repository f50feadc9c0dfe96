# The kind tier (hack/kind, tests/e2e): real kubelet, containerd, runc and
# kube-proxy in Docker containers, with a node image assembled here from
# Debian packages and Go modules (no registry: see docs/testing.md).
#   make kind-build   build or reuse the node image and kind (~7 min after the control
#                     plane's build, <1 s warm)
#   make kind-up      a cluster (1 control plane, 3 workers) on 198.51.100.0/25 with
#                     keepvip's image loaded and its chart installed; prints
#                     DOCKER_HOST=... and KUBECONFIG=... last. Again: reuses the
#                     cluster, rebuilds and reloads the image, upgrades the chart
#   make kind-down    remove the cluster, its network and the Docker daemon, by name
#   make e2e          the e2e tier (tests/e2e) on that cluster (made and removed
#                     by the session when kind-up did not leave one)
KIND_CTL := $(PY) -m keepvip_harness.kindctl

.PHONY: kind-build kind-up kind-down e2e

kind-build: controlplane-build
	hack/kind/build.sh build
	hack/kind/build.sh binaries >/dev/null  # kubectl, also when the image outlived the cache
	hack/image/kind.sh

kind-up: deps controlplane-build
	$(KIND_CTL) up

kind-down: deps
	$(KIND_CTL) down

e2e: deps kind-build
	KEEPVIP_REQUIRE_TIERS=$${KEEPVIP_REQUIRE_TIERS-e2e} $(PY) -m pytest -rs tests/e2e $(PYTEST_ARGS)
