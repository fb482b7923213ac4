"""The ``opsconsole`` command: the console (default), ``serve`` (backend) and ``sandbox``.

Backend and sandbox modules are imported only inside their subcommands, so that the console
alone starts fast and needs nothing of the backend's dependencies on a bastion host. The
console's own modules are imported only outside ``serve``, so that the backend starts listing
the cluster without waiting for the console's client to load.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path


def _add_sandbox_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sandbox",
        help="run a local Kubernetes API and DCGM exporters serving a simulated GPU fleet",
    )
    p.add_argument("--fleet", choices=["demo", "large", "empty"], default="demo")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    p.add_argument("--kubeconfig-out", type=Path, help="write a kubeconfig for this sandbox here")
    p.add_argument(
        "--backend-kubeconfig-out",
        type=Path,
        help="write a kubeconfig with the backend's ServiceAccount token (deploy/rbac.yaml) here",
    )
    p.add_argument(
        "--frozen-time",
        type=datetime.fromisoformat,
        help="freeze the sandbox clock at this ISO time (reproducible screenshots)",
    )
    p.add_argument(
        "--settle-seconds",
        type=float,
        default=3.0,
        help="how long pods take to become ready (0 = at once)",
    )


def _add_serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the backend: watch the cluster and serve /api/v1")
    p.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: as kubectl finds it)")
    p.add_argument("--context", help="kubeconfig context (default: the current context)")
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default 8080)")
    p.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")


def _add_token_parser(sub: argparse._SubParsersAction) -> None:
    """The verbs are the backend's (they work on its database), imported only when used."""
    p = sub.add_parser(
        "token",
        help="create, list and revoke operators' API tokens (in the database directly)",
        add_help=False,
    )
    p.add_argument("token_args", nargs=argparse.REMAINDER, help="create | list | revoke ...")


def build_parser() -> argparse.ArgumentParser:
    from opsconsole import access, audit_cli, cost_cli, quota_cli, rollout_cli

    parser = argparse.ArgumentParser(
        prog="opsconsole",
        description="Operator console for a shared GPU platform on Kubernetes. With no "
        "subcommand it starts the console; with no --backend it also starts an embedded "
        "sandbox cluster and a backend on it.",
    )
    parser.add_argument(
        "--backend", help="URL of a running backend (env OPSCONSOLE_BACKEND); none = embedded"
    )
    access.add_arguments(parser)
    parser.add_argument(
        "--read-only",
        action="store_true",
        default=None,
        help="offer no action that changes anything; the console sends no change",
    )
    parser.add_argument("--fleet", choices=["demo", "large"], help="embedded sandbox fleet")
    parser.add_argument("--seed", type=int, help="embedded sandbox seed")
    sub = parser.add_subparsers(dest="command")
    _add_sandbox_parser(sub)
    _add_serve_parser(sub)
    _add_token_parser(sub)
    audit_cli.add_parser(sub)
    rollout_cli.add_parser(sub)
    quota_cli.add_parser(sub)
    cost_cli.add_parser(sub)
    return parser


def _token(argv: list[str]) -> int:
    from backend.identity.cli import main as token_main
    from backend.identity.cli import parser as token_parser

    return token_main(token_parser().parse_args(argv))


def _serve(argv: list[str]) -> int:
    # The backend's imports make some 200,000 objects, all kept for the life of the process:
    # collecting garbage among them while they are made cost those imports ~15 % more CPU.
    # Made, they are frozen out of the collections to come (see backend.garbage).
    gc.disable()
    try:
        from backend.main import main as serve_main
    finally:
        gc.freeze()
        gc.enable()

    parser = argparse.ArgumentParser(prog="opsconsole")
    _add_serve_parser(parser.add_subparsers(dest="command"))
    return serve_main(parser.parse_args(["serve", *argv]))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["token"]:  # its own parser, so that `token --help` is the verbs' help
        return _token(argv[1:])
    if argv[:1] == ["serve"]:  # the backend alone: none of the console's modules
        return _serve(argv[1:])
    from opsconsole import audit_cli, cost_cli, quota_cli, rollout_cli

    args = build_parser().parse_args(argv)
    if args.command == "token":
        return _token(args.token_args)
    if args.command == "sandbox":
        from backend.sandbox.server import main as sandbox_main

        return sandbox_main(args)
    if args.command == "audit":
        return audit_cli.run(args)
    if args.command == "rollout":
        return rollout_cli.run(args)
    if args.command == "quota":
        return quota_cli.run(args)
    if args.command == "cost":
        return cost_cli.run(args)
    if args.command == "serve":  # after the console's options
        from backend.main import main as serve_main

        return serve_main(args)
    from opsconsole.launch import run_console

    return run_console(args)


if __name__ == "__main__":
    sys.exit(main())
