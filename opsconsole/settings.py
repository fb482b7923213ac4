"""The console's settings: defaults, then a TOML config file, then ``OPSCONSOLE_*`` variables.

The config file lives in the XDG config directory (``~/.config/opsconsole/config.toml`` on Linux,
via platformdirs), so that an operator on a bastion host sets the backend URL once. It may hold
the operator's token; then it must be readable by its owner alone (mode 0600), as ssh demands of
a private key, or the console refuses to start: a token others can read is a token others can use.
"""

from __future__ import annotations

import getpass
import os
import stat
from pathlib import Path
from typing import Any

from platformdirs import user_config_dir
from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class SettingsError(Exception):
    """Settings the console cannot start with; the message says what to fix."""


class ConfigFileExposed(SettingsError):
    """The config file holds a token but its group or others may read it."""


def config_path() -> Path:
    """Where the console reads its config file; looked up on every load (tests move it)."""
    return Path(user_config_dir("opsconsole")) / "config.toml"


def _default_operator() -> str:
    """Who is at the keyboard: the login name, or "operator" where there is none."""
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        return "operator"


class _ConfigFile(TomlConfigSettingsSource):
    """The TOML config file, refused when it holds a token and is not private to its owner."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        data = super()._read_file(file_path)
        if "token" in data:
            mode = stat.S_IMODE(os.stat(file_path).st_mode)
            if mode & 0o077:
                raise ConfigFileExposed(
                    f"the config file {file_path} holds a token but others may read it "
                    f"(mode {mode:04o}); make it private to you: chmod 600 {file_path}"
                )
        return data


class ConsoleSettings(BaseSettings):
    """What the console needs to know to start; keys are the same in the TOML file."""

    model_config = SettingsConfigDict(env_prefix="OPSCONSOLE_", extra="ignore")

    backend: str | None = Field(None, description="Backend URL; None = embedded sandbox.")
    operator: str = Field(default_factory=_default_operator)
    token: str | None = Field(None, description="The operator's bearer token for the backend.")
    ca_file: Path | None = Field(None, description="CA bundle that signs the backend's cert.")
    insecure: bool = Field(False, description="Allow plain http to a non-loopback backend.")
    read_only: bool = Field(False, description="Offer no action that changes anything.")
    theme: str = "opsconsole-dark"
    refresh_interval: float = Field(2.0, gt=0)
    request_timeout: float = Field(5.0, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments win over the environment, which wins over the config file."""
        return (
            init_settings,
            env_settings,
            _ConfigFile(settings_cls, toml_file=config_path()),
        )


def load_settings(**arguments: Any) -> ConsoleSettings:
    """The settings with the command line's values on top (``None`` = not given), or a
    ``SettingsError`` whose message is meant for the operator."""
    given = {key: value for key, value in arguments.items() if value is not None}
    try:
        return ConsoleSettings(**given)
    except ValidationError as exc:
        raise SettingsError(f"invalid settings (environment or config file): {exc}") from exc
