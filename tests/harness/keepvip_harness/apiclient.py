"""A Kubernetes API client that keeps asking through the VIP and logs who answered.

Run in the client's namespace: ``python -m keepvip_harness.apiclient
--kubeconfig FILE --out FILE [--every 0.05]``. It is the kubernetes Python
client (urllib3, keep-alive connections, the kubeconfig's CA and client
certificate), as a controller would use it, reading the ``default``
Namespace (a quorum read from etcd, so an answer means the whole API server
works). Retries are off, so every failure is seen.

One line per request: ``START END WHO``, monotonic seconds (CLOCK_MONOTONIC,
shared by every process on the machine) and the answering API server's name
(the CN of the serving certificate the TLS session saw, one per node), or
``- KIND`` for a failure: ``refused``, ``reset``, ``tls-reset`` (a handshake cut short),
``tls-verify`` (a certificate not trusted or without the VIP), ``tls`` (another TLS
failure), ``timeout``, ``http-NNN`` or another exception's name; the exception itself
goes to stderr. The last two fields are what
:func:`keepvip_harness.labdaemons.outage` reads (``START WHO``).
"""

from __future__ import annotations

import argparse
import ssl
import sys
import time
from pathlib import Path
from typing import Any

CN_PREFIX = "kube-apiserver-"


def _peer_name(resp: Any) -> str:
    """The serving certificate's CN minus the prefix, e.g. ``n1``, from the live connection."""
    conn = getattr(resp, "connection", None)
    sock = getattr(conn, "sock", None)
    if not isinstance(sock, ssl.SSLSocket):
        return "?"
    cert: dict[str, Any] = dict(sock.getpeercert() or {})
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value).removeprefix(CN_PREFIX)
    return "?"


def _kind(exc: BaseException) -> str:
    import urllib3.exceptions as u
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        return f"http-{exc.status}"
    reason: BaseException | None = getattr(exc, "reason", None)
    seen = [exc, *([reason] if reason is not None else [])]
    for e in seen:
        if isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e):
            return "tls-verify"
        if isinstance(e, u.SSLError | ssl.SSLError):
            # A handshake cut short by the peer (reset, EOF) is a connection error, not a
            # certificate problem.
            text = str(e).lower()
            if "reset" in text or "eof" in text:
                return "tls-reset"
            return "tls"
        # Before the timeouts: urllib3's NewConnectionError is a ConnectTimeoutError.
        if isinstance(e, u.NewConnectionError | ConnectionRefusedError):
            return "refused"
        if isinstance(e, u.ConnectTimeoutError | u.ReadTimeoutError | TimeoutError):
            return "timeout"
        if isinstance(e, u.ProtocolError | ConnectionResetError | BrokenPipeError):
            return "reset"
    return type(reason or exc).__name__


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--every", type=float, default=0.05, help="pause between requests (s)")
    p.add_argument("--connect-timeout", type=float, default=1.0)
    p.add_argument("--read-timeout", type=float, default=2.0)
    args = p.parse_args(argv)

    import urllib3
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=args.kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
    cfg.retries = urllib3.util.Retry(total=0, redirect=0, raise_on_redirect=True)
    api = client.CoreV1Api(client.ApiClient(cfg))
    timeout = (args.connect_timeout, args.read_timeout)
    with args.out.open("a", buffering=1) as out:
        while True:
            start = time.monotonic()
            try:
                # Unread (a urllib3 response), to see the TLS session before it is released.
                resp: Any = api.read_namespace(
                    "default", _preload_content=False, _request_timeout=timeout
                )
                who = _peer_name(resp)
                resp.read()
                resp.release_conn()
                result = who
            except Exception as exc:  # every failure is a data point
                result = f"- {_kind(exc)}"
                print(f"{start:.4f} {exc!r}", file=sys.stderr, flush=True)
            out.write(f"{start:.4f} {time.monotonic():.4f} {result}\n")
            time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
