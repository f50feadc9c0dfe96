"""Per-advert CPU of authHMAC in the agent's own code: sign and verify, against the unsigned path.

``python benchmarks/hmac_cost.py [--number 20000] [--runs 5]``. No root, no lab:
the codec and :class:`~keepvip_agent.vrrp.authstate.AdvertAuth` as the runner
calls them (one IPv4 address, VRRPv3), timed with ``timeit`` in process CPU
time; each line is the median of ``--runs`` runs of ``--number`` adverts. The receiver verifies in
monotonic mode so that pre-signed adverts stay fresh however long the run
takes (the time window's check is one comparison before the HMAC). The
end-to-end cost (two agents, 1 and 256 instances at 100 ms, keepalived side by
side) is ``resources.py --hmac``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from ipaddress import IPv4Address

from keepvip_agent.vrrp.authstate import AdvertAuth, AuthSettings, Keyring
from keepvip_agent.vrrp.packet import Advertisement, decode, finish, unsummed

KEY = bytes(range(32))
SRC, DST = IPv4Address("192.0.2.11"), IPv4Address("224.0.0.18")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--number", type=int, default=20000)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    adv = Advertisement(3, 51, 150, 10, (IPv4Address("192.0.2.50"),))
    sender = AdvertAuth(3, 51, AuthSettings(), Keyring({1: KEY}, 1))
    receiver = AdvertAuth(3, 51, AuthSettings(time_mode=False), Keyring({1: KEY}, 1))
    pdu = unsummed(adv, SRC)
    plain = finish(pdu, SRC, DST)
    signed = iter(
        [
            finish(pdu, SRC, DST, sender.seal(pdu, SRC, time.time()))
            for _ in range(args.number * args.runs)
        ]
    )

    def receive_signed() -> None:
        got = decode(next(signed), SRC, DST)
        receiver.check(got.pdu, got.trailer, SRC, time.time())

    cases: list[tuple[str, Callable[[], object]]] = [
        ("send, unsigned (checksum)", lambda: finish(pdu, SRC, DST)),
        ("send, signed (sequence, HMAC, checksum)", lambda: finish(
            pdu, SRC, DST, sender.seal(pdu, SRC, time.time()))),
        ("receive, unsigned (decode)", lambda: decode(plain, SRC, DST)),
        ("receive, signed (decode, HMAC, replay mark)", receive_signed),
    ]  # fmt: skip
    for name, fn in cases:
        timer = timeit.Timer(fn, timer=time.process_time)  # CPU time: other load does not count
        runs = [timer.timeit(number=args.number) / args.number * 1e6 for _ in range(args.runs)]
        print(
            f"{name:45} {statistics.median(runs):6.2f} us  "
            f"(runs: {', '.join(f'{r:.2f}' for r in runs)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
