"""keepvip's test harness: the machinery the tests and the benchmarks share.

Not a test suite and not shipped: a distribution of its own
(``tests/harness/pyproject.toml``), installed editable by ``make deps``, so a
test module imports the harness, never another test module, and a benchmark
needs no ``sys.path`` edit. Fixtures stay in the tiers' ``conftest.py`` files;
what is here is plain code they (and the benchmarks) call.

By tier:

* netns (real kernel): :mod:`.agentlab` starts agents in a
  ``keepvip_tools.lab`` topology and reads what they publish; :mod:`.vrrpwire`
  crafts and sniffs VRRP packets inside a namespace.
* cluster (a real control plane): :mod:`.controlplane` (with :mod:`.pki`,
  :mod:`.procs`, :mod:`.rest` and ``kwok-stages.yaml``) builds and runs it;
  :mod:`.podlauncher` (with :mod:`.podworker`, :mod:`.podenv`, :mod:`.nsnet`)
  runs labelled pods for real in node namespaces; :mod:`.servicenet` stands in
  for kube-proxy; :mod:`.kubeapi` holds the API helpers (waiting, server-side
  apply, the CRDs, VirtualIPs of a namespace); :mod:`.operatorrun` runs the
  operator in-process; :mod:`.clusterlab` deploys agents and an app into lab
  namespaces; :mod:`.appservice` is the app's Service and a watch on its
  EndpointSlices.
* unit: :mod:`.fakekube`, the recording fake of the operator's API adapter.
* image and e2e: :mod:`.dockerctl` (a daemon, the image, a ledger of what a
  test made), :mod:`.kindctl` (a kind cluster), :mod:`.kindsuite` (the e2e
  session's workload and how to read the client's probe).

:mod:`.tiers` says whether a tier can run and skips it with the reason, or
fails it when ``KEEPVIP_REQUIRE_TIERS`` names it.

Paths to the checkout (``crds/``, ``hack/``) come from :mod:`.paths`: the
harness works from an editable install of the checkout it lives in.
"""
