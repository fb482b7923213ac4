"""How the console and its commands reach a backend: where the token comes from, the config
file's permission check, plain http refused to other hosts, and TLS verified against a private
CA made in the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.app import OpsConsoleApp
from opsconsole.cli import main
from opsconsole.client import BackendClient, BackendUnavailable
from opsconsole.settings import ConfigFileExposed, ConsoleSettings, config_path
from tests.support.console import screen_text, wait_for
from tests.support.tls import Certificates, make_certificates, tls_backend


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for name in ("BACKEND", "TOKEN", "CA_FILE", "INSECURE", "READ_ONLY"):
        monkeypatch.delenv(f"OPSCONSOLE_{name}", raising=False)
    return tmp_path


def write_config(text: str, mode: int) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("pki"))


# -- the token and the config file ---------------------------------------------------------------


def test_the_token_comes_from_the_argument_the_environment_or_the_config_file(
    config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ConsoleSettings().token is None
    write_config('token = "from-file"\n', 0o600)
    assert ConsoleSettings().token == "from-file"
    monkeypatch.setenv("OPSCONSOLE_TOKEN", "from-env")
    assert ConsoleSettings().token == "from-env"
    assert ConsoleSettings(token="from-argument").token == "from-argument"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_config_file_with_a_token_that_others_may_read_is_refused(
    config_home: Path, mode: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config('backend = "https://ops.example"\ntoken = "secret"\n', mode)
    with pytest.raises(ConfigFileExposed, match="chmod 600"):
        ConsoleSettings()
    assert main([]) == 2  # the console refuses to start, and says why and how to fix it
    err = capsys.readouterr().err
    assert f"the config file {path} holds a token but others may read it (mode {mode:04o})" in err
    assert f"chmod 600 {path}" in err
    assert "secret" not in err
    # The commands that reach the backend read the same file, and refuse it the same way.
    assert main(["rollout", "history", "a/deploy/b"]) == 2
    assert f"chmod 600 {path}" in capsys.readouterr().err
    assert main(["audit", "verify"]) == 2
    assert f"chmod 600 {path}" in capsys.readouterr().err


def test_a_private_config_file_or_one_without_a_token_is_accepted(config_home: Path) -> None:
    path = write_config('backend = "https://ops.example"\ntoken = "secret"\n', 0o600)
    assert ConsoleSettings().token == "secret"
    path.chmod(0o400)
    assert ConsoleSettings().token == "secret"
    write_config('backend = "https://ops.example"\n', 0o644)
    assert ConsoleSettings().backend == "https://ops.example"


# -- plain http ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://ops.example:8080", "http://10.0.0.5:8080", "http://[2001:db8::1]:8080"]
)
def test_plain_http_to_another_host_is_refused_unless_insecure(
    config_home: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--backend", url]) == 2
    err = capsys.readouterr().err
    assert "refusing plain http to" in err and "--insecure" in err and "https://" in err
    assert main(["rollout", "--backend", url, "history", "a/deploy/b"]) == 2
    assert "refusing plain http to" in capsys.readouterr().err
    assert main(["audit", "--backend", url, "verify"]) == 2
    assert "refusing plain http to" in capsys.readouterr().err
    # Told --insecure, the console goes on (to find that the test has no terminal).
    assert main(["--backend", url, "--insecure"]) == 2
    assert "needs a terminal" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9", "https://ops.example"]
)
def test_loopback_http_and_https_are_allowed(
    config_home: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--backend", url]) == 2
    assert "needs a terminal" in capsys.readouterr().err


def test_a_url_that_is_not_http_is_refused(
    config_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--backend", "ftp://ops.example"]) == 2
    assert "invalid backend URL" in capsys.readouterr().err


# -- TLS with a private CA -----------------------------------------------------------------------


@pytest.fixture
def served(certificates: Certificates) -> Iterator:
    with tls_backend(certificates) as stand_in:
        yield stand_in


async def test_the_client_verifies_the_backend_against_the_ca_file(
    certificates: Certificates, served
) -> None:
    client = BackendClient(served.url, ca_file=certificates.ca, token="t0k")
    try:
        info = await client.info()
        identity = await client.whoami()
    finally:
        await client.aclose()
    assert info.version == "tls-test"
    assert identity is not None and (identity.operator, identity.role) == ("tess", "admin")
    assert served.headers[-1]["authorization"] == "Bearer t0k"


async def test_without_the_ca_file_the_certificate_is_not_trusted(served) -> None:
    client = BackendClient(served.url, token="t0k")
    try:
        with pytest.raises(BackendUnavailable, match="backend certificate not trusted") as caught:
            await client.info()
    finally:
        await client.aclose()
    assert "--ca-file" in caught.value.message
    assert served.headers == []  # the token never left


def test_the_commands_take_the_ca_file_and_the_token(
    config_home: Path, certificates: Certificates, served, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["audit", "--backend", served.url, "--token", "cli-token"]
    assert main([*args, "--ca-file", str(certificates.ca), "verify"]) == 0
    assert capsys.readouterr().out.startswith("verified 0 records")
    assert served.headers[-1]["authorization"] == "Bearer cli-token"
    # Before the subcommand, too; and without the CA, refused.
    before = ["--token", "cli-token", "--ca-file", str(certificates.ca)]
    assert main([*before, "audit", "--backend", served.url, "verify"]) == 0
    capsys.readouterr()
    count = len(served.headers)
    assert main([*args, "verify"]) == 1
    assert "backend certificate not trusted" in capsys.readouterr().err
    assert len(served.headers) == count


def test_an_unusable_ca_file_is_refused_with_its_name(
    config_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    assert main(["--backend", "https://ops.example", "--ca-file", str(missing)]) == 2
    assert f"cannot use --ca-file {missing}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("with_ca", "shown"),
    [(True, "op tess admin"), (False, "backend certificate not trusted")],
)
async def test_the_console_connects_with_the_ca_file_and_says_why_not_without(
    config_home: Path, certificates: Certificates, served, with_ca: bool, shown: str
) -> None:
    settings = ConsoleSettings(
        backend=served.url,
        operator="alice",
        token="t0k",
        ca_file=certificates.ca if with_ca else None,
        refresh_interval=60.0,
    )
    app = OpsConsoleApp(settings, backend_url=served.url)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: shown in screen_text(app), shown)
        assert ("● connected" in screen_text(app)) is with_ca
