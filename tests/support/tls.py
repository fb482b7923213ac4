"""A private CA and a backend stand-in served over TLS, for the console's transport tests.

The CA and the server certificate (for ``localhost`` and ``127.0.0.1``) are made with the
``openssl`` command, as an operator would make them. The stand-in answers the few routes the
tests call with wire models, and records the requests' headers; it runs in a thread of its own,
so that both async tests and commands that start their own event loop can call it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.http_server import ServedApp, bind_socket
from backend.schemas import BackendInfo, ChainVerification, DataFreshness

SERVER_EXTENSIONS = """\
subjectAltName = DNS:localhost, IP:127.0.0.1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the private CA's certificate (what --ca-file takes)
    cert: Path  # the server's certificate, signed by the CA
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> Certificates:
    """A CA, and a server certificate for localhost signed by it."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=opsconsole test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=directory)  # fmt: skip
    (directory / "server.ext").write_text(SERVER_EXTENSIONS)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2",
             "-extfile", "server.ext", cwd=directory)  # fmt: skip
    return Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")


@dataclass
class StandIn:
    """What the stand-in backend answers and what it was sent."""

    url: str = ""
    headers: list[dict[str, str]] = field(default_factory=list)

    def answers(self) -> dict[str, bytes]:
        info = BackendInfo(
            version="tls-test",
            cluster_server="https://cluster:6443",
            telemetry_mode="off",
            freshness=DataFreshness(synced=True),
        )
        whoami = {"operator": "tess", "role": "admin", "tenants": None}
        return {
            "/api/v1/info": info.model_dump_json().encode(),
            "/api/v1/whoami": json.dumps(whoami).encode(),
            "/api/v1/audit/verify": ChainVerification(ok=True, records=0)
            .model_dump_json()
            .encode(),
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """A bare ASGI app: the routes above, 404 elsewhere."""
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.headers.append({"path": scope["path"], **headers})
        body = self.answers().get(scope["path"])
        status = 200 if body is not None else 404
        body = body if body is not None else b'{"detail": "not found"}'
        head = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})


@contextmanager
def tls_backend(certificates: Certificates) -> Iterator[StandIn]:
    """The stand-in served over TLS on a free port of 127.0.0.1 until the block ends."""
    stand_in = StandIn()
    served = ServedApp(
        stand_in, ssl_certfile=str(certificates.cert), ssl_keyfile=str(certificates.key)
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        sock = bind_socket("127.0.0.1", 0)
        url = asyncio.run_coroutine_threadsafe(served.start(sock), loop).result(30)
        stand_in.url = url.replace("http://", "https://")
        yield stand_in
    finally:
        asyncio.run_coroutine_threadsafe(served.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
