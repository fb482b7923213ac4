"""Starting the console: against a given backend, or with an embedded sandbox and backend.

With no backend configured, ``opsconsole`` runs ``opsconsole sandbox`` and ``opsconsole serve`` as
child processes of its own and points the console at them, so that a newcomer sees a living fleet
with one command. The console appears at once and says what is happening (starting the sandbox,
then the backend, then syncing) until the first data arrives: the children start in a background
thread while the first frame is drawn. A child that exits is reported with the last line it wrote
(its own error message); each child writes to its own log file.

The embedded backend authenticates like any other, and needs no setup: before it starts, the
launcher makes the local user its admin with ``opsconsole token create`` on the backend's own
new database (a command, since the console may not import the backend), and gives the console
that token.

Children never outlive the console: they are terminated on exit and on Ctrl-C, and on Linux they
also receive SIGTERM from the kernel if the console dies abruptly (the terminal goes away).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from platformdirs import user_state_dir

from opsconsole.connection import Startup

# Hourly prices of the sandbox's GPU models, so that the demo shows costs; a backend deployed on
# a real cluster has none until its operator sets OPSCONSOLE_GPU_PRICES.
DEMO_GPU_PRICES = "NVIDIA-H100-80GB-HBM3=4.5,NVIDIA-A100-SXM4-80GB=2.5,NVIDIA-L40S=1.2"

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGTERM when the console process dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the child binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedCluster:
    """A sandbox and a backend running as child processes, for the console's default mode."""

    def __init__(self, fleet: str = "demo", seed: int = 1, operator: str = "operator") -> None:
        """``operator``: who becomes the embedded backend's admin (the local user)."""
        self.fleet = fleet
        self.seed = seed
        self.operator = operator
        self.workdir = Path(tempfile.mkdtemp(prefix="opsconsole-"))
        self.kubeconfig = self.workdir / "kubeconfig"
        # The sandbox is new every time: so is the backend's database (audit log, tokens).
        self.database_url = f"sqlite:///{self.workdir / 'opsconsole.db'}"
        self.token: str | None = None  # the admin token, once made
        self.backend_port = free_port()
        self.backend_url = f"http://127.0.0.1:{self.backend_port}"
        self.log_dir = Path(user_state_dir("opsconsole"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.stage = "starting the sandbox"
        self.error: str | None = None
        self._children: list[subprocess.Popen[bytes]] = []
        self._logs: dict[int, Path] = {}  # child pid -> its log file
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Start the children in a background thread; returns at once."""
        self._thread = threading.Thread(target=self._start_children, daemon=True)
        self._thread.start()

    def progress(self) -> Startup:
        """What the embedded cluster is doing, or why it failed (the console's banner)."""
        return Startup(self.stage, self.error, self.token)

    def _spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        path = self.log_dir / f"embedded-{args[0]}.log"
        log = open(path, "wb")  # noqa: SIM115 - the child owns it for its lifetime
        child = subprocess.Popen(
            [sys.executable, "-m", "opsconsole", *args],
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            start_new_session=True,  # Ctrl-C in the terminal goes to the console, not to them
        )
        log.close()
        self._children.append(child)
        self._logs[child.pid] = path
        return child

    def _failed(self, what: str, child: subprocess.Popen[bytes]) -> str:
        """``the embedded backend exited (code 1): OSError: [Errno 98] …; log: <path>``."""
        path = self._logs[child.pid]
        code = child.poll()
        status = "did not start in time" if code is None else f"exited (code {code})"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        return f"the embedded {what} {status}" + (f": {last}" if last else "") + f"; log: {path}"

    def _make_admin_token(self) -> str | None:
        """The local user's admin token for the new database, or ``None`` with ``error`` set.
        The token is not logged; the command's own messages are."""
        path = self.log_dir / "embedded-token.log"
        command = ["token", "create", "--database", self.database_url]
        command += ["--operator", self.operator, "--role", "admin", "--output", "json"]
        try:
            done = subprocess.run(
                [sys.executable, "-m", "opsconsole", *command],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.error = f"the embedded token command failed: {exc}"
            return None
        path.write_text(done.stderr)
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        last = f": {lines[-1]}" if lines else ""
        if done.returncode != 0:
            self.error = f"the embedded token command exited (code {done.returncode}){last}"
            self.error += f"; log: {path}"
            return None
        try:
            token = json.loads(done.stdout)["token"]
        except (ValueError, KeyError, TypeError):
            self.error = f"the embedded token command printed no token; log: {path}"
            return None
        return str(token)

    def _start_children(self) -> None:
        sandbox = self._spawn(
            "sandbox",
            "--fleet",
            self.fleet,
            "--seed",
            str(self.seed),
            "--port",
            "0",
            "--kubeconfig-out",
            str(self.kubeconfig),
        )
        self.token = self._make_admin_token()  # while the sandbox starts
        if self.token is None:
            return
        deadline = time.monotonic() + 120
        while not self.kubeconfig.exists():
            if self._stopping.is_set():
                return
            if sandbox.poll() is not None or time.monotonic() > deadline:
                self.error = self._failed("sandbox", sandbox)
                return
            time.sleep(0.05)
        self.stage = "starting the backend"
        backend = self._spawn(
            "serve",
            "--kubeconfig",
            str(self.kubeconfig),
            "--port",
            str(self.backend_port),
            env={
                "OPSCONSOLE_DATABASE_URL": self.database_url,
                "OPSCONSOLE_GPU_PRICES": os.environ.get("OPSCONSOLE_GPU_PRICES", DEMO_GPU_PRICES),
            },
        )
        # PR_SET_PDEATHSIG fires when the *thread* that forked a child ends, not the process:
        # this thread must live as long as the children should. It watches them meanwhile.
        while not self._stopping.wait(0.2):
            for what, child in (("sandbox", sandbox), ("backend", backend)):
                if child.poll() is not None and not self._stopping.is_set():
                    self.error = self._failed(what, child)
                    self._stopping.wait()
                    return

    def stop(self) -> None:
        """Terminate the children (SIGTERM, then SIGKILL after a grace period)."""
        self._stopping.set()
        for child in self._children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 5
        for child in self._children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()  # reaped: gone when stop() returns
        shutil.rmtree(self.workdir, ignore_errors=True)  # kubeconfig and the sandbox's database


def freeze_startup_objects() -> None:
    """Move what exists now (mostly the modules, classes and functions of the imports: three
    quarters of the console's objects) out of the garbage collector's reach.

    They live as long as the process, yet every full collection walked them all: a pause of tens
    of milliseconds that fell on a keystroke's repaint every hundred or so keystrokes."""
    gc.freeze()


def run_console(args: argparse.Namespace) -> int:
    """``opsconsole`` without a subcommand: the TUI, embedded cluster included when needed."""
    from opsconsole.access import AccessRefused, check_backend, settings_for
    from opsconsole.app import OpsConsoleApp
    from opsconsole.transport import TransportRefused, tls_verify

    try:
        settings = settings_for(args)
        if settings.backend:
            check_backend(settings, settings.backend)
        tls_verify(settings.ca_file)
    except (AccessRefused, TransportRefused) as exc:
        print(f"opsconsole: {exc}", file=sys.stderr)
        return 2
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(
            "opsconsole: the console needs a terminal (stdin and stdout must be a tty); "
            "run it from a terminal, or use 'opsconsole serve' / 'opsconsole sandbox'",
            file=sys.stderr,
        )
        return 2
    backend_url = settings.backend
    embedded: EmbeddedCluster | None = None
    if not backend_url:
        fleet, seed = args.fleet or "demo", args.seed or 1
        embedded = EmbeddedCluster(fleet=fleet, seed=seed, operator=settings.operator)
        embedded.start()
        backend_url = embedded.backend_url
        settings = settings.model_copy(update={"token": None})  # the embedded one's comes later
    previous_hup = signal.getsignal(signal.SIGHUP)
    if embedded is not None:

        def hang_up(*_: object) -> None:
            """The terminal went away: stop the children before we go."""
            embedded.stop()
            os._exit(129)

        signal.signal(signal.SIGHUP, hang_up)
    try:
        app = OpsConsoleApp(
            settings,
            backend_url=backend_url,
            sandbox=embedded is not None,
            startup=embedded.progress if embedded is not None else None,
        )
        freeze_startup_objects()
        app.run()
        return app.return_code or 0
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGHUP, previous_hup)
        if embedded is not None:
            embedded.stop()
