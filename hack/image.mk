# The image and what is delivered with it (hack/image).
#   make image        build the image ($(IMAGE)) the CI way: Docker from Debian if missing,
#                     a debootstrap base cached by content key, the host's CA bundle for pip
#   make test-image   the image tier (tests/image): entry points, two agent containers failing over
#   make bundle       regenerate deploy/keepvip.yaml from charts/keepvip (commit the result)
#   make image-lock   re-pin the image's Python packages (hack/image/constraints.txt)
IMAGE ?= keepvip:dev

.PHONY: image test-image bundle image-lock

image:
	hack/image/build.sh --tag $(IMAGE)

test-image: deps
	KEEPVIP_REQUIRE_TIERS=$${KEEPVIP_REQUIRE_TIERS-image} $(PY) -m pytest -rs tests/image $(PYTEST_ARGS)

bundle: controlplane-build
	hack/image/bundle.sh deploy/keepvip.yaml

# The RBAC tables of docs/security.md, from what the chart and the operator render.
.PHONY: rbac-docs
rbac-docs: deps
	$(PY) -m keepvip_harness.rbacdoc --write

image-lock: deps
	PY=$(PY) hack/image/lock.sh
