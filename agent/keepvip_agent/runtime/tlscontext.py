"""The TLS client context of an https ``httpGet`` check, rebuilt only when its files change.

Verification is on unless the check says ``insecureSkipVerify: true``: the
certificate must chain to ``caFile`` (or the system's trust store) and carry
``serverName`` (or the URL's host). A check that trusted any certificate
would keep a node in the election while an impostor, or a different server
on that port, answered.

The design choice that is not obvious: a context is kept per check and
rebuilt when a file's size or modification time changes. Loading the
system's trust store costs milliseconds of CPU; doing that every second on
every node is waste, while kubeadm renews client certificates in place and
an operator may rotate the CA, so the files cannot be read once at start.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

from keepvip_api.model import HTTPGetCheck


class TLSSetupError(Exception):
    """A file the check names cannot be read or is not what it should be (PEM CA, cert, key)."""


def _stamp(path: str | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TLSSetupError(f"{path}: {exc.strerror or exc}") from None
    return (st.st_mtime_ns, st.st_size)


def build_context(check: HTTPGetCheck) -> ssl.SSLContext:
    """A client context for ``check`` (an https URL), read from its files now."""
    if check.insecure_skip_verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        try:
            context = ssl.create_default_context(cafile=check.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TLSSetupError(f"caFile {check.ca_file}: {_reason(exc)}") from None
        if check.ca_file is not None and not context.get_ca_certs():
            raise TLSSetupError(f"caFile {check.ca_file}: holds no CA certificate")
    if check.client_cert_file is not None:
        try:
            context.load_cert_chain(check.client_cert_file, check.client_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TLSSetupError(
                f"clientCertFile {check.client_cert_file} / clientKeyFile "
                f"{check.client_key_file}: {_reason(exc)}"
            ) from None
    return context


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror or str(exc)


@dataclass
class _Cached:
    stamps: tuple[tuple[int, int] | None, ...]
    context: ssl.SSLContext


class TLSContexts:
    """One check's context, rebuilt when caFile, clientCertFile or clientKeyFile changes."""

    def __init__(self, check: HTTPGetCheck) -> None:
        self._check = check
        self._cached: _Cached | None = None

    def get(self) -> ssl.SSLContext:
        c = self._check
        stamps = tuple(_stamp(p) for p in (c.ca_file, c.client_cert_file, c.client_key_file))
        if self._cached is None or self._cached.stamps != stamps:
            self._cached = _Cached(stamps, build_context(c))
        return self._cached.context
