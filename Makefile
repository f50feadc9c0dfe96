# keepvip developer entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: deps lint test test-unit test-netns lab bench clean

# System packages the tiers need: iproute2 for namespaces, keepalived for the
# interoperability tests and the benchmark, systemd's systemd-analyze for the unit test
# of `keepvip systemd-unit` (a Debian machine has it; a minimal container may not).
# Installed only when missing.
deps: $(VENV)/.installed
	@command -v ip >/dev/null || (apt-get update -qq && apt-get install -y -qq iproute2)
	@command -v systemd-analyze >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd)
	@command -v keepalived >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends keepalived)

# keepvip, and next to it the test harness (tests/harness: what tests and
# benchmarks share; its own distribution, so it never ships in keepvip or the image).
# The agent's receive thread is a C extension (agent/keepvip_agent/runtime/_rxwatch.c,
# built in place by the editable install): gcc and the Python headers must be here.
$(VENV)/.installed: pyproject.toml tests/harness/pyproject.toml agent/keepvip_agent/runtime/_rxwatch.c
	@command -v gcc >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev)
	@python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
		|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-dev)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,kubernetes]'
	$(PY) -c 'import keepvip_agent.runtime._rxwatch'
	$(PY) -m pip install -q -e tests/harness
	touch $@

lint: deps
	ruff check .
	ruff format --check .
	mypy
	lint-imports

# Every tier this machine can run; KEEPVIP_REQUIRE_TIERS turns a tier's skip into a
# failure, so CI cannot pass by skipping. The control plane is built from source
# on first use (about 11 minutes cold, cached afterwards), and so is the kind node
# image for the e2e tier (see docs/testing.md).
test: lint cluster-deps controlplane-build kind-build
	KEEPVIP_REQUIRE_TIERS=$${KEEPVIP_REQUIRE_TIERS-unit,netns,cluster,image,e2e} $(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-unit: deps
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-netns: deps
	$(PY) -m pytest -m netns $(PYTEST_ARGS)

# The lab demo: 3 agents and a client in network namespaces (root).
lab: deps
	$(VENV)/bin/keepvip lab

# Benchmarks (not tests; never gate CI): results and commands in benchmarks/results/.
bench: deps controlplane-build
	$(PY) benchmarks/failover.py
	$(PY) benchmarks/resources.py
	$(PY) benchmarks/cluster.py
	$(PY) benchmarks/cluster_scale.py

clean:
	rm -rf $(VENV) build *.egg-info

-include hack/*.mk
