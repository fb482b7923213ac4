"""How the console may reach a backend: TLS verified against a CA, plain HTTP only where safe.

Every request carries the operator's bearer token, so a backend on another host must be reached
over https with its certificate verified (the system's CAs, or ``--ca-file`` for a private CA).
Plain http is allowed to a loopback address (the embedded backend, an ``ssh -L`` tunnel) and
elsewhere only when the operator says ``--insecure``.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import httpx


class TransportRefused(Exception):
    """The backend URL or TLS settings are not safe or not usable; the message says why."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback address."""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_backend_url(url: str, *, insecure: bool) -> None:
    """Refuse a URL that is not http(s), and plain http to another host unless ``insecure``."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise TransportRefused(f"invalid backend URL {url!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise TransportRefused(f"invalid backend URL {url!r}: use https://HOST[:PORT]")
    if parsed.scheme == "http" and not insecure and not is_loopback(parsed.host):
        raise TransportRefused(
            f"refusing plain http to {parsed.host}: the token and the fleet's data would cross "
            "the network unencrypted; use https:// (with --ca-file for a private CA), "
            "or pass --insecure if this network is trusted"
        )


def tls_verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    """What httpx verifies a backend's certificate with: the CA in ``ca_file``, or the system's
    CAs (``True``). Verification is never switched off."""
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise TransportRefused(f"cannot use --ca-file {ca_file}: {exc}") from exc
