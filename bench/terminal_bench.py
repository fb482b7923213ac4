"""Bytes the console writes to its terminal, measured through a real pty (120×40, xterm).

Over SSH through a bastion host every byte the console writes is sent; an idle console should
send almost nothing, and a refresh should cost what it changed. Two measurements:

- **Idle**, per screen: the real ``opsconsole`` against a running backend; each screen settles,
  then what it writes while nobody touches a key is counted (``--backend``).
- **k rows changed**: the console over an in-process fleet (``bench/changing_console.py``) on the
  GPU list; k of its visible rows get new telemetry, and what the next refresh writes is counted,
  for several k (no backend needed; ``--no-rows`` leaves it out).

Usage::

    python -m bench.terminal_bench --backend http://127.0.0.1:8080 [--window 30]
    python -m bench.terminal_bench                      # k rows changed only

Prints bytes per second per screen, bytes per refresh per k, and writes
``bench/results/terminal.json``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

from bench.changing_console import REFRESH_SECONDS

RESULTS = Path(__file__).parent / "results" / "terminal.json"
SCREENS = [("overview", ""), ("tenants", "2"), ("workloads", "3"), ("gpus", "4")]
COLUMNS, LINES = 120, 40
ROWS_CHANGED = [0, 1, 2, 4, 8, 16, 32]  # 32: nearly every row of the GPU list on screen


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


def _read_until_quiet(fd: int, limit: float, quiet: float = 2.0) -> None:
    """Read until the console has drawn something and then written nothing for ``quiet``
    seconds (at most ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    drawn = False
    while time.monotonic() < deadline:
        written = _read_for(fd, quiet)
        if drawn and not written:
            return
        drawn = drawn or written > 0


def _spawn(*module: str) -> tuple[int, int]:
    """``python -m *module`` in a new pty of the benchmark's size."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the console, as an operator would start it
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-m", *module])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    return pid, fd


def measure(backend: str, window: float, settle: float) -> dict[str, float]:
    pid, fd = _spawn("opsconsole", "--backend", backend)
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


def measure_rows(settle: float, repeats: int) -> dict[int, list[int]]:
    """Bytes written by the refresh after k rows of the GPU list changed, ``repeats`` times
    for each k in ``ROWS_CHANGED`` (k = 0: an identical refresh)."""
    written: dict[int, list[int]] = {k: [] for k in ROWS_CHANGED}
    with tempfile.TemporaryDirectory() as workdir:
        control = Path(workdir) / "rows"
        control.write_text("0")
        pid, fd = _spawn("bench.changing_console", str(control))
        try:
            _read_until_quiet(fd, 3 * settle)  # started (slow on a loaded machine), drawn
            os.write(fd, b"4")  # the GPU list
            _read_until_quiet(fd, settle)
            for _ in range(repeats):
                for rows in ROWS_CHANGED:
                    control.write_text(str(rows))
                    written[rows].append(_read_for(fd, 3 * REFRESH_SECONDS))
        finally:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    for rows, counts in written.items():
        median = statistics.median(counts)
        per_row = f"{median / rows:6.0f} B/row" if rows else ""
        print(f"  {rows:3d} rows changed {median:8.0f} B  {per_row}", flush=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", help="measure the idle console against this backend")
    parser.add_argument("--window", type=float, default=30.0, help="seconds counted per screen")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds before counting")
    parser.add_argument("--no-rows", action="store_true", help="skip the k-rows measurement")
    parser.add_argument("--repeats", type=int, default=3, help="refreshes measured per k")
    args = parser.parse_args(argv)
    result: dict[str, object] = {"size": [COLUMNS, LINES]}
    if args.backend:
        print("idle, bytes per second per screen:")
        result["window_s"] = args.window
        result["bytes_per_s"] = measure(args.backend, args.window, args.settle)
    if not args.no_rows:
        print("one refresh of the GPU list after k rows changed (bench/changing_console.py):")
        rows = measure_rows(args.settle, args.repeats)
        result["refresh_bytes_by_rows_changed"] = {str(k): v for k, v in rows.items()}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
