"""How the console and its commands reach a backend: URL, token and TLS settings from the
command line, the environment or the config file, checked before anything is sent.

The console and the commands that talk to the backend (``rollout``, ``audit``) take the same
``--token``, ``--ca-file`` and ``--insecure`` and apply the same rules, so an operator learns
them once. In a subcommand they may also be given before it (``opsconsole --token T rollout ...``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from opsconsole.client import BackendClient
from opsconsole.settings import ConsoleSettings, SettingsError, load_settings
from opsconsole.transport import TransportRefused, check_backend_url


class AccessRefused(Exception):
    """The settings do not let the console reach a backend safely; the message says why."""


def add_arguments(parser: argparse.ArgumentParser, *, in_subcommand: bool = False) -> None:
    """``--token``, ``--ca-file``, ``--insecure``; a subcommand's do not reset the top level's."""
    unset = argparse.SUPPRESS if in_subcommand else None
    parser.add_argument(
        "--token",
        default=unset,
        help="bearer token for the backend (env OPSCONSOLE_TOKEN, or token in the config file, "
        "which must then be mode 0600)",
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        default=unset,
        help="CA certificate(s) that sign the backend's TLS certificate (a private CA)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=unset,
        help="allow plain http to a backend on another host (token and data unencrypted)",
    )


def settings_for(args: argparse.Namespace) -> ConsoleSettings:
    """The settings with what the command line gave on top."""
    try:
        return load_settings(
            backend=getattr(args, "backend", None),
            token=getattr(args, "token", None),
            ca_file=getattr(args, "ca_file", None),
            insecure=getattr(args, "insecure", None),
            read_only=getattr(args, "read_only", None),
        )
    except SettingsError as exc:
        raise AccessRefused(str(exc)) from exc


def check_backend(settings: ConsoleSettings, url: str) -> None:
    """Refuse ``url`` when plain http would carry the token to another host."""
    try:
        check_backend_url(url, insecure=settings.insecure)
    except TransportRefused as exc:
        raise AccessRefused(str(exc)) from exc


def command_client(args: argparse.Namespace, *, timeout: float) -> BackendClient:
    """A client for a command (``rollout``, ``audit``): the backend must be given, and safe."""
    settings = settings_for(args)
    if not settings.backend:
        raise AccessRefused("no backend: pass --backend or set OPSCONSOLE_BACKEND")
    check_backend(settings, settings.backend)
    try:
        return BackendClient(
            settings.backend,
            timeout=timeout,
            token=settings.token,
            ca_file=settings.ca_file,
            operator=settings.operator,
            ssh_client=os.environ.get("SSH_CONNECTION"),  # the audit log records from where
        )
    except TransportRefused as exc:
        raise AccessRefused(str(exc)) from exc
