"""A fleet whose names, labels, annotations, conditions, events, GPU samples, audit record and
usage history carry hostile text: zero-width joiners, bidi overrides and isolates, controls, ANSI
escapes, Rich markup, newlines and tabs, a 5 KB event reason. Served by the real backend app with
its alerts evaluated, for the console's tests and snapshots.

Each ``*_SHOWN`` is what the console's sanitizer leaves of the value next to it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from backend.audit.log import AuditLog
from backend.audit.store import AuditStore
from backend.conventions import GPU_PRODUCT_LABEL, MODEL_LABEL, TENANT_LABEL
from backend.cost.basis import CostBasis
from backend.db.engine import create_db_engine
from backend.db.migrate import upgrade
from backend.db.quota_usage import QuotaUsageHistory, QuotaUsageStore, UsageSample
from backend.schemas import AuditEntry
from tests.support import objects as k8s
from tests.support.alerts import Alerting
from tests.support.backend import FleetBackend
from tests.support.fleets import CREATED, H100, SAMPLED_AT, Fleet, generated_fleet

JOINED = "a\u200d" * 60  # 60 visible cells, 120 characters
BIDI = "\u202eevil\u202c\u2066iso\u2067\u2068\u2069\u200b\ufeff"
MARKUP = "\x1b[31m[bold]x[/]"  # an ANSI colour and Rich markup: both must stay characters
MARKUP_SHOWN = "[31m[bold]x[/]"
LITERAL = "[31m[bold]x"  # enough of it to tell that it was not interpreted, where cells clip
HOSTILE = f"{MARKUP}{JOINED}{BIDI}\x1b[2J\x9b\x07line1\n\n\tline2"
SHOWN = f"{MARKUP_SHOWN}{'a' * 60}eviliso[2Jline1 line2"  # what clean() leaves of it
TENANT = "x\u202e[bold]" + "n\u200d\nm"
TENANT_SHOWN = "x[bold]n m"
WORKLOAD = "wl\u2066/..\u2069"
WORKLOAD_SHOWN = "wl/.."
ISVC = "model-00001"
REASON = "R" * 4990 + "\u202eTHE\tEND"  # a 5 KB event reason
REASON_END = "RTHE END"
NODE = "gpu-node-0000"
PRICES = CostBasis.priced({"NVIDIA H100 80GB HBM3": 4.5}, sample_seconds=15.0)


def hostile_fleet() -> Fleet:
    """The first tenant's name; its Deployment's name, model, change-cause, stuck condition and
    events; its InferenceService's model and conditions; a node's GPU product; a GPU's pod: all
    hostile."""
    fleet = generated_fleet(tenants=3, workloads=6, nodes=2)
    cluster = fleet.cluster
    cluster["namespaces"][("", "team-a")]["metadata"]["labels"][TENANT_LABEL] = TENANT
    cluster["clusterqueues"][("", "cq-team-a")]["metadata"]["labels"][TENANT_LABEL] = TENANT
    workload = cluster["deployments"].pop(("team-a", "model-00000"))
    workload["metadata"]["name"] = WORKLOAD
    workload["metadata"]["labels"][MODEL_LABEL] = HOSTILE
    workload["metadata"]["annotations"] = {"kubernetes.io/change-cause": HOSTILE, HOSTILE: REASON}
    workload["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": HOSTILE,
        }
    ]
    cluster["deployments"][("team-a", WORKLOAD)] = workload
    template = workload["spec"]["template"]
    for revision, cause in ((1, REASON), (2, HOSTILE)):
        rs = k8s.replica_set(
            f"rs-{revision}",
            "team-a",
            CREATED,
            WORKLOAD,
            template,
            revision=revision,
            change_cause=cause,
        )
        cluster.setdefault("replicasets", {})[("team-a", f"rs-{revision}")] = rs
    isvc = cluster["inferenceservices"][("team-a", ISVC)]
    isvc["metadata"]["labels"][MODEL_LABEL] = HOSTILE
    isvc["status"]["conditions"] = [{"type": "Ready", "status": "False", "message": HOSTILE}]
    events = cluster.setdefault("events", {})
    for name, kind, involved in (("e1", "Deployment", WORKLOAD), ("e2", "InferenceService", ISVC)):
        events[("team-a", name)] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": "team-a", "creationTimestamp": CREATED},
            "involvedObject": {"kind": kind, "namespace": "team-a", "name": involved},
            "type": "Warning",
            "reason": REASON,
            "message": HOSTILE,
            "lastTimestamp": CREATED,
        }
    cluster["nodes"][("", "gpu-node-0001")]["metadata"]["labels"][GPU_PRODUCT_LABEL] = HOSTILE
    uuid, sample = next((u, s) for u, s in fleet.samples.items() if s.pod and s.node == NODE)
    fleet.samples[uuid] = replace(sample, pod=HOSTILE, namespace="team-a")
    return fleet


async def hostile_backend(tmp_path: Path) -> tuple[FleetBackend, Alerting]:
    """``hostile_fleet()`` served with its alerts evaluated, an audit log whose record has a
    hostile actor, target and 5 KB reason, and an hour of priced GPU usage for the tenant."""
    fleet = hostile_fleet()
    fake = FleetBackend(fleet)
    alerting = Alerting(fake, fleet, tmp_path)
    await alerting.evaluate(0)

    url = f"sqlite:///{tmp_path / 'opsconsole.db'}"
    upgrade(url)
    store = AuditStore(create_db_engine(url))
    store.append(
        AuditEntry.model_validate(
            {
                "change_id": "c1",
                "stage": "intent",
                "actor": HOSTILE,
                "role": "admin",
                "action": "rollout.undo",
                "target": f"deployment/team-a/{WORKLOAD}",
                "tenants": [TENANT],
                "reason": HOSTILE + REASON,
                "parameters": {"to_revision": HOSTILE},
                "before": {"change-cause": HOSTILE},
                "after": {"change-cause": REASON},
            }
        )
    )
    fake.source.audit = AuditLog(store)

    history = QuotaUsageHistory(QuotaUsageStore(create_db_engine(url)), 90, 1.0, interval=300)
    for k in range(13):
        await history.record([UsageSample(TENANT, H100, 6, 3, 0)], now=SAMPLED_AT - 3600 + 300 * k)
    fake.source.quota_usage = history
    fake.source.cost_basis = PRICES
    return fake, alerting
