"""The console over an in-process fleet whose GPU rows change on demand.

``terminal_bench --rows`` runs this in a pty to measure what one refresh writes when k rows of a
list changed: the parent writes k to the control file, and the k first rows of the GPU list get
new telemetry (utilization, temperature, power: what a telemetry round changes) before the
console's next refresh. Nothing else changes, and the console's clock stands still, so every
byte written after a change is that refresh's. Usage::

    python -m bench.changing_console CONTROL_FILE
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from backend.fleet.model import build_fleet_model
from opsconsole.app import OpsConsoleApp
from opsconsole.widgets.virtual_table import VirtualTable
from tests.support.backend import FleetBackend
from tests.support.console import make_app
from tests.support.fleets import SAMPLED_AT, Fleet, generated_fleet

NODES, GPUS_PER_NODE = 8, 8  # 64 GPUs: more rows than a 40-line terminal shows
REFRESH_SECONDS = 1.0


def change_rows(app: OpsConsoleApp, fleet: Fleet, fake: FleetBackend, rows: int) -> None:
    """New telemetry for the GPUs on the first ``rows`` rows of the GPU list on screen."""
    table = app.screen.query_one(VirtualTable)
    uuids = {item.uuid for r in range(rows) if (item := table.item_at(r)) is not None}
    for uuid in uuids:
        sample = fleet.samples[uuid]
        busy = (sample.utilization or 0.0) < 50  # alternate, so that every call is a change
        fleet.samples[uuid] = replace(
            sample,
            utilization=(sample.utilization or 0.0) + (50 if busy else -50),
            temperature_c=(sample.temperature_c or 40.0) + (20 if busy else -20),
            power_watts=(sample.power_watts or 100.0) + (300 if busy else -300),
        )
    fake.source.model = build_fleet_model(fleet.cluster, fleet.telemetry(), now=SAMPLED_AT)


def watch(control: Path, app: OpsConsoleApp, fleet: Fleet, fake: FleetBackend) -> None:
    """Apply each number written to ``control`` (a thread: the app owns the event loop)."""
    seen = control.stat().st_mtime_ns
    while True:
        time.sleep(0.05)
        if (mtime := control.stat().st_mtime_ns) != seen:
            seen = mtime
            app.call_from_thread(change_rows, app, fleet, fake, int(control.read_text()))


def main(argv: list[str]) -> int:
    control = Path(argv[0])
    fleet = generated_fleet(nodes=NODES, gpus_per_node=GPUS_PER_NODE)
    fake = FleetBackend(fleet)
    app = make_app(fake, refresh_interval=REFRESH_SECONDS)
    threading.Thread(target=watch, args=(control, app, fleet, fake), daemon=True).start()
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
