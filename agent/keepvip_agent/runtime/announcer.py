"""Send gratuitous ARP and unsolicited NA frames on one interface (AF_PACKET)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from ipaddress import IPv4Interface, IPv6Interface

from keepvip_agent.vrrp.frames import gratuitous_arp, unsolicited_na

logger = logging.getLogger(__name__)
ETH_P_ALL = 0x0003


class Announcer:
    def __init__(self, ifname: str, mac: bytes) -> None:
        self.ifname = ifname
        self.mac = mac
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._sock.setblocking(False)
        self._sock.bind((ifname, 0))

    def announce(self, addresses: Iterable[IPv4Interface | IPv6Interface]) -> int:
        """Send one frame per address; return how many went out."""
        sent = 0
        for a in addresses:
            frame = (
                gratuitous_arp(self.mac, a.ip) if a.version == 4 else unsolicited_na(self.mac, a.ip)
            )
            try:
                self._sock.send(frame)
                sent += 1
            except OSError as exc:
                logger.warning("announce %s on %s failed: %s", a.ip, self.ifname, exc)
        return sent

    def close(self) -> None:
        self._sock.close()
