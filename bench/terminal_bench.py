"""Bytes an idle console writes to its terminal, per screen, measured through a real pty.

Over SSH through a bastion host every byte the console writes is sent; an idle console should
send almost nothing. This starts the real ``opsconsole`` in a pseudo-terminal (120×40, xterm)
against a running backend, lets each screen settle, then counts what the console writes while
nobody touches a key. Usage::

    python -m bench.terminal_bench --backend http://127.0.0.1:8080 [--window 30]

Prints bytes per second per screen and writes ``bench/results/terminal.json``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "terminal.json"
SCREENS = [("overview", ""), ("tenants", "2"), ("workloads", "3"), ("gpus", "4")]
COLUMNS, LINES = 120, 40


def _read_for(fd: int, seconds: float) -> int:
    """Bytes the console writes in ``seconds``."""
    count = 0
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                count += len(os.read(fd, 65536))
            except OSError:  # the console exited
                break
    return count


def _spawn(backend: str) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the console, as an operator would start it
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-m", "opsconsole", "--backend", backend])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    return pid, fd


def measure(backend: str, window: float, settle: float) -> dict[str, float]:
    pid, fd = _spawn(backend)
    rates: dict[str, float] = {}
    try:
        _read_for(fd, settle)  # start-up, first data, the first telemetry round
        for screen, key in SCREENS:
            if key:
                os.write(fd, key.encode())
                _read_for(fd, settle / 2)
            rates[screen] = _read_for(fd, window) / window
            print(f"  {screen:10s} {rates[screen]:8.0f} B/s idle", flush=True)
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--window", type=float, default=30.0, help="seconds counted per screen")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds before counting")
    args = parser.parse_args(argv)
    rates = measure(args.backend, args.window, args.settle)
    RESULTS.parent.mkdir(exist_ok=True)
    result = {"size": [COLUMNS, LINES], "window_s": args.window, "bytes_per_s": rates}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
