"""The console's settings: defaults, then a TOML config file, then ``OPSCONSOLE_*`` variables.

The config file lives in the XDG config directory (``~/.config/opsconsole/config.toml`` on Linux,
via platformdirs), so that an operator on a bastion host sets the backend URL once.
"""

from __future__ import annotations

import getpass
from pathlib import Path

from platformdirs import user_config_dir
from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def config_path() -> Path:
    """Where the console reads its config file; looked up on every load (tests move it)."""
    return Path(user_config_dir("opsconsole")) / "config.toml"


def _default_operator() -> str:
    """Who is at the keyboard: the login name, or "operator" where there is none."""
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (some containers)
        return "operator"


class ConsoleSettings(BaseSettings):
    """What the console needs to know to start; keys are the same in the TOML file."""

    model_config = SettingsConfigDict(env_prefix="OPSCONSOLE_", extra="ignore")

    backend: str | None = Field(None, description="Backend URL; None = embedded sandbox.")
    operator: str = Field(default_factory=_default_operator)
    token: str | None = Field(None, description="The operator's bearer token for the backend.")
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
            TomlConfigSettingsSource(settings_cls, toml_file=config_path()),
        )
