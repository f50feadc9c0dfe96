"""Where the checkout is: the harness reads crds/, hack/ and charts/ from it.

The harness is installed editable (``make deps``), so its modules stay in
``tests/harness/keepvip_harness/`` and the checkout is three folders up.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CRDS = REPO / "crds"
