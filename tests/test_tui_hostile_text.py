"""Hostile Unicode in every field of every screen, at 80×24: nothing reaches the terminal that can
move the layout (format characters, controls, newlines, tabs), and long values are clipped.

Zero-width joiners and bidi overrides are measured as zero cells by Rich but drawn by terminals
(an 80-column row became 83 cells); a newline inside a cell breaks its row; a 5 KB event reason
widened its column for every row.
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace

from backend.conventions import MODEL_LABEL, TENANT_LABEL
from opsconsole.screens.gpus import GpusScreen
from opsconsole.screens.node_detail import NodeDetailScreen
from opsconsole.screens.tenant_detail import TenantDetailScreen
from opsconsole.screens.tenants import TenantsScreen
from opsconsole.screens.workload_detail import WorkloadDetailScreen
from opsconsole.screens.workloads import WorkloadsScreen
from tests.support.backend import FleetBackend
from tests.support.console import make_app, screen_text, wait_for
from tests.support.fleets import CREATED, generated_fleet

JOINED = "a\u200d" * 60  # 60 visible cells, 120 characters
BIDI = "\u202eevil\u202c\u2066iso\u2069\u200b\ufeff"
HOSTILE = f"t{JOINED}{BIDI}\x1b[2J\x9b\x07line1\n\n\tline2"
SHOWN = f"t{'a' * 60}eviliso[2Jline1 line2"  # what clean() leaves of it
TENANT = "x\u202e" + "n\u200d\nm"
TENANT_SHOWN = "xn m"
WORKLOAD = "wl\u2066/..\u2069"
WORKLOAD_SHOWN = "wl/.."
REASON = "R" * 5000


def hostile_backend() -> FleetBackend:
    """The first tenant, its first Deployment (name, model, change-cause, an event), a node's
    GPU (pod) all carry hostile text."""
    fleet = generated_fleet(tenants=3, workloads=6, nodes=2)
    cluster = fleet.cluster
    cluster["namespaces"][("", "team-a")]["metadata"]["labels"][TENANT_LABEL] = TENANT
    workload = cluster["deployments"].pop(("team-a", "model-00000"))
    workload["metadata"]["name"] = WORKLOAD
    workload["metadata"]["labels"][MODEL_LABEL] = HOSTILE
    workload["metadata"]["annotations"] = {"kubernetes.io/change-cause": HOSTILE}
    cluster["deployments"][("team-a", WORKLOAD)] = workload
    cluster.setdefault("events", {})[("team-a", "e1")] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e1", "namespace": "team-a", "creationTimestamp": CREATED},
        "involvedObject": {"kind": "Deployment", "namespace": "team-a", "name": WORKLOAD},
        "type": "Warning",
        "reason": REASON,
        "message": HOSTILE,
        "lastTimestamp": CREATED,
    }
    uuid, sample = next((u, s) for u, s in fleet.samples.items() if s.pod)
    fleet.samples[uuid] = replace(sample, pod=HOSTILE, namespace="team-a")
    return FleetBackend(fleet)


def assert_safe(text: str) -> None:
    """Nothing on screen that a terminal draws differently from Rich, or that moves the cursor."""
    bad = {ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf") and ch != "\n"}
    assert not bad, f"unsafe characters on screen: {sorted(map(hex, map(ord, bad)))}"
    assert "R" * 200 not in text  # the long reason is clipped


async def test_hostile_text_in_every_screen_at_80x24() -> None:
    fake = hostile_backend()
    app = make_app(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "team-b" in screen_text(app), "the overview")
        assert_safe(screen_text(app))

        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, TenantsScreen))
        await wait_for(pilot, lambda: TENANT_SHOWN in screen_text(app), "tenants")
        assert_safe(screen_text(app))

        await pilot.press("3")
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadsScreen))
        await wait_for(pilot, lambda: WORKLOAD_SHOWN in screen_text(app), "workloads")
        assert_safe(screen_text(app))

        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, GpusScreen))
        await wait_for(pilot, lambda: "ta" in screen_text(app), "gpus")
        assert_safe(screen_text(app))

        app.action_show_tenant(TENANT)
        await wait_for(pilot, lambda: isinstance(app.screen, TenantDetailScreen))
        await wait_for(pilot, lambda: WORKLOAD_SHOWN in screen_text(app), "tenant detail")
        assert_safe(screen_text(app))

        app.action_show_workload("team-a", "deployment", WORKLOAD)
        await wait_for(pilot, lambda: isinstance(app.screen, WorkloadDetailScreen))
        await wait_for(pilot, lambda: "RRRR" in screen_text(app), "workload detail")
        text = screen_text(app)
        assert_safe(text)
        assert "RRR…" in text  # clipped with an ellipsis, not widened
        assert "line1 line2" in text or SHOWN[:20] in text

        app.action_show_node("gpu-node-0000")
        await wait_for(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        await wait_for(pilot, lambda: "gpu-node-0000" in screen_text(app), "node detail")
        assert_safe(screen_text(app))
        assert app.is_running
