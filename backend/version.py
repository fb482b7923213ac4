"""The distribution's version, as installed (``0+unknown`` from a bare checkout)."""

from __future__ import annotations

import importlib.metadata


def _installed_version() -> str:
    try:
        return importlib.metadata.version("opsconsole")
    except importlib.metadata.PackageNotFoundError:  # running from a bare checkout
        return "0+unknown"


VERSION = _installed_version()
