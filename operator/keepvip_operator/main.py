"""``keepvip-operator``: entry point (the kopf operator is being written)."""

from __future__ import annotations

import sys


def main() -> int:
    print("keepvip-operator: not implemented yet", file=sys.stderr)
    return 1
