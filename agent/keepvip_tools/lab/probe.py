"""The lab client: an HTTP GET to the VIP every few milliseconds, one line per attempt.

``python -m keepvip_tools.lab.probe HOST [--port 80] [--every 0.005] [--timeout 0.05] [--duration S]``

Each output line is ``<monotonic time> <node name or ->``: CLOCK_MONOTONIC is
shared by all network namespaces, so these times compare directly with the
moment the benchmark cut a link. A failed or timed-out attempt prints ``-``.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time


def get(host: str, port: int, timeout: float) -> str | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect((host, port))
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(512):
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    return body.decode(errors="replace").strip() or None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--every", type=float, default=0.005)
    p.add_argument("--timeout", type=float, default=0.05)
    p.add_argument("--duration", type=float, default=3600.0)
    args = p.parse_args(argv)
    end = time.monotonic() + args.duration
    while (start := time.monotonic()) < end:
        who = get(args.host, args.port, args.timeout)
        sys.stdout.write(f"{start:.6f} {who or '-'}\n")
        sys.stdout.flush()
        pause = args.every - (time.monotonic() - start)
        if pause > 0:
            time.sleep(pause)
    return 0


if __name__ == "__main__":
    sys.exit(main())
