"""The agent loads only the pyroute2 parts it uses; whoever asks for the whole package gets it.

In a fresh interpreter (the point is what gets imported, so not this test
process, where other tests have imported pyroute2 already).
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import keepvip_agent.runtime.agent
lean = sorted(m for m in sys.modules if m.startswith("pyroute2"))
from pyroute2 import IPRoute, NDB
import pyroute2
print(json.dumps({
    "lean": lean,
    "whole": sorted(m for m in sys.modules if m.startswith("pyroute2")),
    "same_class": IPRoute is sys.modules["pyroute2.iproute.linux"].IPRoute,
    "version": pyroute2.__version__,
}))
"""


def test_the_agent_imports_no_pyroute2_family_it_does_not_use() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    got = json.loads(out.stdout)
    assert "pyroute2.iproute.linux" in got["lean"]
    assert not any(
        m.startswith(("pyroute2.ndb", "pyroute2.ipdb", "pyroute2.plan9")) for m in got["lean"]
    )
    assert "pyroute2.ndb.main" in got["whole"], "from pyroute2 import ... ran the real __init__"
    assert got["same_class"] and got["version"] not in ("", "unknown")
