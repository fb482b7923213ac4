"""``opsconsole serve --tls-cert --tls-key``: HTTPS with a certificate from a CA made here."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from backend.main import RunningBackend, main, settings_from_args
from backend.sandbox.server import Sandbox
from opsconsole.cli import build_parser
from tests.support.tls import Certificates, make_certificates
from tests.support.tokens import admin_headers
from tests.test_service import settings_for


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A private CA and a certificate for localhost and 127.0.0.1 signed by it."""
    return make_certificates(tmp_path_factory.mktemp("pki"))


async def test_the_backend_serves_https_with_the_given_certificate(
    pki: Certificates, tmp_path: Path
) -> None:
    async with Sandbox(fleet="empty") as sandbox:
        kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        settings = settings_for(kubeconfig, tmp_path, tls_cert=pki.cert, tls_key=pki.key)
        headers = admin_headers(settings.database_url)
        async with RunningBackend(settings) as url:
            assert url.startswith("https://127.0.0.1:")
            trusted = ssl.create_default_context(cafile=str(pki.ca))
            async with httpx.AsyncClient(base_url=url, verify=trusted, headers=headers) as http:
                assert (await http.get("/healthz")).status_code == 200
                assert (await http.get("/api/v1/whoami")).json()["role"] == "admin"
            async with httpx.AsyncClient(base_url=url) as untrusting:  # the system's CAs only
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await untrusting.get("/healthz")
            plain = url.replace("https://", "http://")
            async with httpx.AsyncClient(base_url=plain, headers=headers) as http:
                with pytest.raises(httpx.HTTPError):
                    await http.get("/api/v1/whoami")


def test_serve_takes_the_certificate_flags(
    pki: Certificates, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = str(pki.cert), str(pki.key)
    args = build_parser().parse_args(["serve", "--tls-cert", cert, "--tls-key", key])
    settings = settings_from_args(args)
    assert (settings.tls_cert, settings.tls_key) == (Path(cert), Path(key))
    assert main(build_parser().parse_args(["serve", "--tls-cert", cert])) == 2
    assert "tls_cert and tls_key go together" in capsys.readouterr().err
