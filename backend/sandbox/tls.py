"""The sandbox's serving certificate: self-signed, made once per process with the ``openssl``
command, and handed to clients as the kubeconfig's ``certificate-authority-data``.

The sandbox serves HTTPS because kubectl (client-go's clientcmd) sends a kubeconfig's credentials
only to a server it reaches over TLS: over plain HTTP every kubectl request would be anonymous.
One certificate per process (and host name) lets a sandbox restarted on the same port keep
answering clients configured for the first one, as a real API server keeps its certificate.
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServingCert:
    certfile: Path
    keyfile: Path

    def pem(self) -> bytes:
        """The certificate, which is also the CA clients trust."""
        return self.certfile.read_bytes()


def _subject_alt_names(host: str) -> str:
    names = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    try:
        ipaddress.ip_address(host)
        names.append(f"IP:{host}")
    except ValueError:
        names.append(f"DNS:{host}")
    return ",".join(dict.fromkeys(names))


def serving_cert(host: str = "127.0.0.1") -> ServingCert:
    """A certificate for ``host`` (and the loopback names), valid for ten years."""
    return _make_cert(host)


@functools.cache  # keyed by the host as given: the default must not make a second one
def _make_cert(host: str) -> ServingCert:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the sandbox needs the openssl command to make its certificate")
    directory = Path(tempfile.mkdtemp(prefix="opsconsole-sandbox-tls-"))
    atexit.register(shutil.rmtree, directory, True)
    cert = ServingCert(directory / "tls.crt", directory / "tls.key")
    options = (
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 "
        f"-subj /CN=opsconsole-sandbox -addext subjectAltName={_subject_alt_names(host)}"
    )
    command = [openssl, *options.split(), "-keyout", str(cert.keyfile), "-out", str(cert.certfile)]
    subprocess.run(command, check=True, capture_output=True)
    return cert
