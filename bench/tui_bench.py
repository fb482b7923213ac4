"""TUI latency benchmark: scroll and filter repaint, and the first frame with data.

Runs the real console headless with Textual's pilot (``App.run_test``) and times, from the key
press, until the compositor has produced the frame showing the result (the ANSI rendering of
that frame is included; writing it to a terminal is not). Usage::

    python -m bench.tui_bench --backend http://127.0.0.1:8080      # a backend on the large fleet
    python -m bench.tui_bench --synthetic                          # in-process, 20,000 rows
    python -m bench.tui_bench --backend URL --only-filter --lists gpus --presses 100

Prints a table and writes ``bench/results/tui.json``. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from opsconsole.app import OpsConsoleApp
from opsconsole.launch import freeze_startup_objects
from opsconsole.screens.gpus import GpusScreen
from opsconsole.screens.listing import ListScreen
from opsconsole.screens.overview import OverviewScreen
from opsconsole.screens.workloads import WorkloadsScreen
from opsconsole.settings import ConsoleSettings

RESULTS = Path(__file__).parent / "results" / "tui.json"
LISTS: dict[str, tuple[str, type[ListScreen]]] = {
    "workloads": ("3", WorkloadsScreen),
    "gpus": ("4", GpusScreen),
}
SIZE = (120, 40)
DEADLINE = 30.0  # seconds any single measurement may take before the run is declared broken


class FrameClock:
    """Wraps ``App._display`` to time the first frame that shows what a measurement waits for.

    A frame is composed from the widgets' state at that moment, so the first frame for which
    ``ready()`` holds is the frame that shows the result.
    """

    def __init__(self, app: OpsConsoleApp) -> None:
        self.ready: dict[str, Callable[[], bool]] = {}
        self.hits: dict[str, tuple[float, float]] = {}  # name -> (perf_counter, process_time)
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            if renderable is not None:
                render = getattr(renderable, "render_segments", None)
                if render is not None:
                    render(app.console)  # what a real terminal would be sent
                for name, ready in self.ready.items():
                    if name not in self.hits and ready():
                        self.hits[name] = (time.perf_counter(), time.process_time())
            original(screen, renderable)

        # Wrapping the private method is the point: it is where a frame is composed.
        app._display = display  # type: ignore[method-assign]

    def expect(self, **ready: Callable[[], bool]) -> None:
        """What the next frames should show, by name; set before the key is pressed."""
        self.ready = ready
        self.hits = {}


def make_app(
    url: str, transport: httpx.AsyncBaseTransport | None, token: str | None
) -> OpsConsoleApp:
    settings = ConsoleSettings(
        backend=url, operator="bench", token=token, refresh_interval=3600.0, request_timeout=10.0
    )
    return OpsConsoleApp(settings, backend_url=url, transport=transport)


async def until(pilot: Any, condition: Callable[[], bool]) -> None:
    """Yield to the app until ``condition`` holds (tight loop: latency, not politeness)."""
    deadline = time.perf_counter() + DEADLINE
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the console did not get there in time")
        await pilot.pause(0.001)


def rows_ready(screen: ListScreen) -> bool:
    """The table knows its total and every visible row is loaded (no placeholder on screen)."""
    table = screen.table
    if table.total is None:
        return False
    top = round(table.scroll_offset.y)
    last = min(table.total, top + table._rows_height())
    return all(table.item_at(row) is not None for row in range(top, last))


def cursor_on(screen: ListScreen, row: int) -> bool:
    return screen.table.cursor == row


def settled_on(screen: ListScreen, row: int) -> bool:
    """The cursor on ``row`` and every visible row loaded."""
    return cursor_on(screen, row) and rows_ready(screen)


def filtered_by(screen: ListScreen, query: str) -> bool:
    """The list filtered by ``query`` and every visible row loaded."""
    return (screen.table.query_text or "") == query and rows_ready(screen)


class Sample(NamedTuple):
    wall: float  # seconds from the key press to the frame
    cpu: float  # CPU seconds this process spent meanwhile (independent of other load)


async def framed(
    pilot: Any, frames: FrameClock, start: float, start_cpu: float, name: str = "done"
) -> Sample:
    """Time from ``start`` to the first frame showing what ``frames`` expects as ``name``."""
    await until(pilot, lambda: name in frames.hits)
    wall, cpu = frames.hits[name]
    return Sample(wall - start, cpu - start_cpu)


def overview_ready(app: OpsConsoleApp) -> bool:
    screen = app.screen
    return isinstance(screen, OverviewScreen) and screen.data is not None


async def first_frame(
    url: str, transport_factory: Callable[[], Any], token: str | None, runs: int
) -> list[Sample]:
    """App start to the overview drawn with data, ``runs`` times (a fresh app each time)."""
    times = []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        app = make_app(url, transport_factory(), token)
        frames = FrameClock(app)
        frames.expect(done=partial(overview_ready, app))
        async with app.run_test(size=SIZE) as pilot:
            times.append(await framed(pilot, frames, start, start_cpu))
    return times


async def list_latencies(
    url: str,
    transport: Any,
    token: str | None,
    key: str,
    screen_type: type[ListScreen],
    presses: int,
    scroll: bool = True,
) -> tuple[int, dict[str, list[Sample]]]:
    """Scroll (pagedown, down; unless ``scroll`` is false) and filter keystrokes on one list
    screen."""
    app = make_app(url, transport, token)
    frames = FrameClock(app)
    out: dict[str, list[Sample]] = {"pagedown": [], "pagedown_data": [], "down": [], "filter": []}
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(key)
        await until(pilot, lambda: isinstance(app.screen, screen_type))
        screen = app.screen
        assert isinstance(screen, ListScreen)
        await until(pilot, lambda: rows_ready(screen))
        table = screen.table
        rows = table.total or 0
        for _ in range(presses if scroll else 0):
            target = min((table.total or 1) - 1, table.cursor + table._rows_height())
            frames.expect(
                done=partial(cursor_on, screen, target),
                data=partial(settled_on, screen, target),
            )
            start, start_cpu = time.perf_counter(), time.process_time()
            await pilot.press("pagedown")
            out["pagedown"].append(await framed(pilot, frames, start, start_cpu))
            out["pagedown_data"].append(await framed(pilot, frames, start, start_cpu, "data"))
        for _ in range(presses if scroll else 0):
            frames.expect(done=partial(cursor_on, screen, table.cursor + 1))
            start, start_cpu = time.perf_counter(), time.process_time()
            await pilot.press("down")
            out["down"].append(await framed(pilot, frames, start, start_cpu))
        await pilot.press("home", "slash")
        typed = ""
        for char in filter_text(screen_type, presses):
            typed += char
            await asyncio.sleep(0.12)  # typing pace: each keystroke sends its own query
            query = typed.strip()
            frames.expect(done=partial(filtered_by, screen, query))
            start, start_cpu = time.perf_counter(), time.process_time()
            await pilot.press(char)
            out["filter"].append(await framed(pilot, frames, start, start_cpu))
            if len(typed) >= 12:
                await pilot.press(*["backspace"] * len(typed))
                typed = ""
                await until(pilot, lambda: table.query_text is None and rows_ready(screen))
    return rows, out


def filter_text(screen_type: type[ListScreen], count: int) -> str:
    """Keystrokes that narrow the list step by step, repeated to ``count`` characters."""
    word = "gpu-node-01" if screen_type is GpusScreen else "model-01"
    return (word * (count // len(word) + 1))[:count]


def import_seconds() -> float:
    """How long the console's imports take in a fresh interpreter (part of "from the command")."""
    code = (
        "import time; t = time.perf_counter(); import opsconsole.app, opsconsole.screens.overview;"
        " print(time.perf_counter() - t)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip())


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def summary(samples: list[Sample]) -> dict[str, float]:
    wall = [s.wall for s in samples]
    cpu = [s.cpu for s in samples]
    return {
        "median_ms": statistics.median(wall) * 1000,
        "p95_ms": p95(wall) * 1000,
        "cpu_median_ms": statistics.median(cpu) * 1000,
        "n": len(samples),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.synthetic:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.support.backend import FleetBackend

        fake = FleetBackend.generated(
            tenants=40, workloads=args.rows, nodes=args.rows // 8, gpus_per_node=8
        )
        url = "http://fake-backend"  # a name the fake backend answers to
        token: str | None = fake.token

        def transport_factory() -> Any:
            return fake.transport()
    else:
        url = args.backend
        token = ConsoleSettings().token

        def transport_factory() -> Any:
            return None

    freeze_startup_objects()  # as ``opsconsole`` does before it runs the app
    metrics: dict[str, dict[str, float]] = {}
    rows: dict[str, int] = {}
    if not args.only_filter:
        first = await first_frame(url, transport_factory, token, args.starts)
        metrics["first frame with data (overview, in-process)"] = summary(first)
        imports = [Sample(import_seconds(), 0.0) for _ in range(3)]
        metrics["console imports (fresh interpreter)"] = summary(imports)
    for name in args.lists.split(","):
        key, screen_type = LISTS[name]
        rows[name], found = await list_latencies(
            url, transport_factory(), token, key, screen_type, args.presses, not args.only_filter
        )
        if not args.only_filter:
            metrics[f"{name}: pagedown repaint"] = summary(found["pagedown"])
            metrics[f"{name}: pagedown until rows loaded"] = summary(found["pagedown_data"])
            metrics[f"{name}: down repaint"] = summary(found["down"])
        metrics[f"{name}: filter keystroke until filtered rows drawn"] = summary(found["filter"])
    return {
        "backend": "synthetic (real app, in-process fixture fleet)" if args.synthetic else url,
        "terminal": f"{SIZE[0]}x{SIZE[1]}",
        "rows": rows,
        "metrics": metrics,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"backend: {result['backend']}  terminal: {result['terminal']}  rows: {result['rows']}")
    print(f"{'measurement':56} {'median ms':>10} {'p95 ms':>8} {'cpu ms':>7} {'n':>3}")
    for name, m in result["metrics"].items():
        print(
            f"{name:56} {m['median_ms']:10.1f} {m['p95_ms']:8.1f} {m['cpu_median_ms']:7.1f}"
            f" {m['n']:3d}"
        )
    print("cpu ms: CPU time of the console's process meanwhile (the in-process fake included")
    print("with --synthetic); wall times include waiting for the backend and for other load.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tui_bench", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--backend", help="URL of a running backend (e.g. on the large fleet)")
    source.add_argument("--synthetic", action="store_true", help="in-process fake backend")
    parser.add_argument("--rows", type=int, default=20_000, help="synthetic rows per list")
    parser.add_argument("--presses", type=int, default=30, help="key presses per measurement")
    parser.add_argument("--starts", type=int, default=5, help="app starts for the first frame")
    parser.add_argument(
        "--lists", default="workloads,gpus", help="comma-separated: " + ", ".join(LISTS)
    )
    parser.add_argument(
        "--only-filter", action="store_true", help="only the filter keystrokes (no start, scroll)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
