"""Console settings: defaults, the XDG config file, and OPSCONSOLE_* variables over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole.settings import ConsoleSettings, config_path


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    for name in ("BACKEND", "OPERATOR", "THEME", "REFRESH_INTERVAL", "REQUEST_TIMEOUT"):
        monkeypatch.delenv(f"OPSCONSOLE_{name}", raising=False)
    return tmp_path


def test_defaults_without_a_config_file(config_home: Path) -> None:
    settings = ConsoleSettings()
    assert settings.backend is None  # embedded sandbox
    assert settings.operator  # the login name
    assert settings.refresh_interval == 2.0 and settings.request_timeout == 5.0


def test_config_file_then_environment(config_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = config_path()
    assert path == config_home / "opsconsole" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('backend = "http://ops:8080"\noperator = "carol"\nrefresh_interval = 3\n')
    settings = ConsoleSettings()
    assert (settings.backend, settings.operator, settings.refresh_interval) == (
        "http://ops:8080",
        "carol",
        3.0,
    )
    monkeypatch.setenv("OPSCONSOLE_BACKEND", "http://env:9000")
    assert ConsoleSettings().backend == "http://env:9000"
    assert ConsoleSettings(backend="http://arg").backend == "http://arg"


def test_invalid_values_are_refused(config_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCONSOLE_REQUEST_TIMEOUT", "0")
    with pytest.raises(ValueError, match="request_timeout"):
        ConsoleSettings()
