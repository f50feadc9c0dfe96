"""pyroute2 without its package ``__init__``: only the parts the agent uses, about 4.5 MiB less.

pyroute2's ``__init__`` imports every netlink family it supports (NDB with
sqlite3, IPDB, nftables, nl80211, WireGuard, plan9, ...): some 70 modules
and about 4.5 MiB of a node agent's resident memory (measured: the agent's
imports 51.1 -> 46.5 MiB VmRSS), out of the 100 MiB per node that issue 12
allows, for nothing the agent calls. Importing a submodule runs the package
``__init__`` first; so here the package module is made from its spec without
running it, and only the submodules the agent imports load.

Anything else in the process that asks the package itself for a name
(``from pyroute2 import IPRoute``: the lab, the tests) then runs the real
``__init__`` on that same module object (a PEP 562 module ``__getattr__``), so
it gets the whole package as always. If pyroute2 was imported before this
module, nothing changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any


def _lean_package() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)

    def whole_package(name: str) -> Any:
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:
            # ``from pyroute2 import config`` inside pyroute2: a submodule, no more.
            return importlib.import_module(f"pyroute2.{name}")
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    package.__dict__["__getattr__"] = whole_package
    sys.modules["pyroute2"] = package


_lean_package()

from pyroute2.iproute.linux import AsyncIPRoute  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

__all__ = ["AsyncIPRoute", "NetlinkError"]
