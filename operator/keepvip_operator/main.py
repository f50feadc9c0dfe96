"""``keepvip-operator``: run the kopf operator with settings from the command line and environment.

Standalone (one replica) unless ``--peering-name`` names a kopf peering
object; see handlers.py for what several replicas still need.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

import kopf

from keepvip_operator import handlers
from keepvip_operator.settings import OperatorSettings, parse

logger = logging.getLogger(__name__)
# Event handlers that only poke the resync loop run on every watch event (agents'
# heartbeats included); kopf logs each success at INFO, which would drown the log.
QUIET_HANDLERS = ("virtualip_event", "agent_pod_event", "agent_daemonset_event")


class _QuietPokes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(text == f"Handler {h!r} succeeded." for h in QUIET_HANDLERS)


def operator_args(settings: OperatorSettings) -> dict[str, Any]:
    """The arguments of ``kopf.run``/``kopf.operator`` for these settings (with a fresh registry)."""
    registry = kopf.OperatorRegistry()
    ctx = handlers.Context.create(settings)
    handlers.register(registry, ctx)
    namespaced = bool(settings.watch_namespaces)
    return {
        "registry": registry,
        "settings": handlers.kopf_settings(settings),
        "standalone": settings.peering_name is None,
        "peering_name": settings.peering_name,
        "clusterwide": not namespaced,
        "namespaces": list(settings.watch_namespaces),
        "liveness_endpoint": settings.liveness_endpoint,
        "memo": kopf.Memo(context=ctx),
    }


async def run(
    settings: OperatorSettings,
    *,
    stop_flag: Any = None,
    ready_flag: Any = None,
) -> None:
    """Run until ``stop_flag`` (an asyncio or threading Event/Future) is set; for embedding and tests."""
    await kopf.operator(**operator_args(settings), stop_flag=stop_flag, ready_flag=ready_flag)


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse(argv)
    level = settings.log_level
    kopf.configure(debug=level == "debug", quiet=level in ("warning", "error"))
    if level != "debug":
        logging.getLogger("kopf.objects").addFilter(_QuietPokes())
    logger.info(
        "keepvip-operator: agent image %s, watching %s",
        settings.agent_image,
        ", ".join(settings.watch_namespaces) or "all namespaces",
    )
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
