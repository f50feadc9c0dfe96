"""The agent's own rtnetlink paths on a real kernel: link read, batched renewals, echo filter.

Run inside a lab node's namespace in one Python process: the link reader
against what ``ip`` shows, a renewal batch with one refused entry, the copies a purge finds, and the
BPF filter that keeps our own renewals' notifications from waking the agent
while everybody else's still arrive.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from keepvip_tools.lab.topology import Lab

CODE = """
import asyncio, json, subprocess, sys
from ipaddress import ip_address, ip_interface
from keepvip_agent.runtime.linkread import LinkReader
from keepvip_agent.runtime.rtnl import AddressWriter, LinkEvents

OURS, FOREIGN = ip_interface("198.51.100.201/32"), ip_interface("198.51.100.203/32")

async def main():
    writer, seen = AddressWriter(), []
    events = LinkEvents(asyncio.get_running_loop(), lambda i, n, a: seen.append(str(a)), writer.portid)
    reader = LinkReader()
    index = reader.read("eth0", 4).index
    items = [(index, OURS, 30), (index + 1000, ip_interface("198.51.100.202/32"), 30)]
    failed = writer.renew(items)
    failed += writer.renew(items)  # a renewal of the one that exists
    subprocess.run(["ip", "addr", "add", str(FOREIGN), "dev", "eth0"], check=True)
    subprocess.run(["ip", "-6", "addr", "add", "2001:db8::77/64", "dev", "eth0", "nodad"], check=True)
    wanted = [OURS.ip, FOREIGN.ip, ip_address("2001:db8::77"), ip_address("198.51.100.250")]
    copies = sorted((i, p, str(a)) for i, p, a in reader.copies(wanted))
    await asyncio.sleep(0.3)
    link = reader.read("eth0", 4, {OURS.ip.packed})
    other = reader.read("eth0", 4, {ip_address(sys.argv[1]).packed})
    six = reader.read("eth0", 6)
    print(json.dumps({
        "failed": [(n, e.errno) for n, e in failed],
        "seen": seen,
        "link": [link.index, link.mac.hex(), link.up, str(link.primary_v4)],
        "other": str(other.primary_v4),
        "six": str(six.link_local_v6),
        "missing": reader.read("nonesuch", 4),
        "copies": copies,
    }))
    events.close()

asyncio.run(main())
"""


@pytest.mark.nodes(1)
def test_link_read_batched_renewal_and_the_echo_filter(lab: Lab) -> None:
    ns = lab.node_ns(1)
    out = json.loads(lab.exec(ns, sys.executable, "-c", CODE, str(lab.node_v4(1))))
    assert out["failed"] == [[1, 19], [1, 19]]  # ENODEV for the unknown interface, each time
    # Our own renewals never reached the event socket; someone else's address did.
    assert "198.51.100.201" not in out["seen"] and "198.51.100.203" in out["seen"]
    shown = lab.ip(ns, "-o", "link", "show", "eth0")
    index, mac, up, primary = out["link"]
    assert shown.startswith(f"{index}: eth0") and mac in shown.replace(":", "") and up
    assert primary == str(lab.node_v4(1))
    # Excluding an address (as the port excludes its VIPs) gives the next primary one.
    assert out["other"] == "198.51.100.201"
    assert out["six"].startswith("fe80::") and out["missing"] is None
    # What a starting instance purges: every copy of its addresses, with index and prefix.
    assert sorted(map(tuple, out["copies"])) == sorted(
        [(index, 32, "198.51.100.201"), (index, 32, "198.51.100.203"), (index, 64, "2001:db8::77")]
    )
    line = lab.ip(ns, "-o", "addr", "show", "dev", "eth0", "to", "198.51.100.201/32")
    lifetime = re.search(r"valid_lft (\d+)sec", line)
    assert lifetime and int(lifetime.group(1)) <= 30, line
