"""Cost showback and idle GPUs: the arithmetic against hand-computed figures, ``GET
/api/v1/cost`` through the real app over the detail fleet (scoped by the token's tenants), and
``opsconsole cost`` in each output format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import pytest

from backend.cost.basis import CostBasis
from backend.cost.idle import idle_gpus, idle_run
from backend.cost.showback import cost_report
from backend.db.quota_usage import GpuHours
from backend.schemas import CostReport, Gpu, QuotaMode, QuotaRow
from backend.settings import Settings
from opsconsole import cost_cli
from opsconsole.cli import main as cli
from opsconsole.client import BackendClient
from tests.conftest import LiveCluster
from tests.support.backend import FleetBackend
from tests.support.cost import A100, PRICES, costed_fleet
from tests.support.fleets import H100
from tests.support.tokens import bearer


def gpu(tenant: str, model: str, history: list[float | None], idle: bool = True) -> Gpu:
    return Gpu(
        node="n1", index=0, uuid=f"u{len(history)}", model=model, tenant=tenant,
        allocated=True, idle=idle, history=history,
    )  # fmt: skip


def quota_row(tenant: str, model: str) -> QuotaRow:
    return QuotaRow(
        tenant=tenant, system=QuotaMode.KUEUE, gpu_model=model, namespaces=[], nominal=8
    )


# -- arithmetic ---------------------------------------------------------------------------------


def test_cost_is_gpu_hours_times_price_and_an_unpriced_model_has_no_cost() -> None:
    hours = {
        ("team-a", H100): GpuHours(samples=5, allocated=2.0, busy=1.0),
        ("team-b", A100): GpuHours(samples=1, allocated=0.25, busy=0.0),
        ("team-c", H100): GpuHours(samples=3, allocated=0.0, busy=0.0),  # held nothing
    }
    report = cost_report("24h", hours, [], PRICES, None)
    by_key = {(r.tenant, r.gpu_model): r for r in report.items}
    a = by_key[("team-a", H100)]
    assert (a.gpu_hours, a.busy_gpu_hours, a.efficiency, a.price_per_hour, a.cost) == (
        2.0, 1.0, 50.0, 4.5, 9.0,
    )  # fmt: skip
    b = by_key[("team-b", A100)]
    assert (b.gpu_hours, b.efficiency, b.price_per_hour, b.cost) == (0.25, 0.0, None, None)
    c = by_key[("team-c", H100)]
    assert (c.gpu_hours, c.efficiency, c.cost) == (0.0, None, 0.0)  # 0 allocated: no efficiency
    tenants = {t.tenant: t for t in report.tenants}
    assert (tenants["team-b"].cost, tenants["team-b"].unpriced_gpu_hours) == (None, 0.25)
    assert [t.tenant for t in report.tenants] == ["team-a", "team-b", "team-c"]
    assert (report.gpu_hours, report.cost, report.unpriced_gpu_hours) == (2.25, 9.0, 0.25)


def test_idle_gpus_count_their_idle_run_and_cost_per_day() -> None:
    assert idle_run([50.0, 2.0, None, 1.0, 3.0], threshold=5.0) == 2  # a gap ends the run
    gpus = [
        gpu("team-a", H100, [50.0, 2.0, 1.0, 3.0]),  # idle for the last 3 samples
        gpu("team-a", H100, [1.0] * 5),  # idle for the whole history
        gpu("team-b", A100, [0.0] * 2),
    ]
    rows = [quota_row("team-a", "NVIDIA-H100-80GB-HBM3")]
    idle = {(i.tenant, i.gpu_model): i for i in idle_gpus(gpus, rows, 5.0, PRICES)}
    a = idle[("team-a", H100)]
    # All of them idle at least 3 × 15 s; 2 GPUs × 4.5 × 24 h.
    assert (a.gpus, a.idle_seconds, a.idle_at_least, a.cost_per_day) == (2, 45.0, False, 216.0)
    assert a.quota_model == "NVIDIA-H100-80GB-HBM3"
    b = idle[("team-b", A100)]
    assert (b.idle_seconds, b.idle_at_least, b.cost_per_day, b.quota_model) == (
        30.0, True, None, None,
    )  # fmt: skip
    report = cost_report("7d", {}, list(idle.values()), PRICES, None)
    assert (report.idle_gpus, report.idle_cost_per_day) == (3, 216.0)


# -- the API --------------------------------------------------------------------------------------


@pytest.fixture
async def fake(tmp_path: Path) -> FleetBackend:
    return await costed_fleet(tmp_path)


def client(fake: FleetBackend, token: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=fake.app)
    return httpx.AsyncClient(transport=transport, base_url="http://fake", headers=bearer(token))


async def test_cost_api_answers_each_window_and_refuses_others(fake: FleetBackend) -> None:
    async with client(fake, fake.token) as http:
        day = CostReport.model_validate((await http.get("/api/v1/cost")).json())
        week = CostReport.model_validate((await http.get("/api/v1/cost?since=7d")).json())
        month = CostReport.model_validate((await http.get("/api/v1/cost?since=30d")).json())
        refused = await http.get("/api/v1/cost?since=1y")
    assert refused.status_code == 422
    rows = {(r.tenant, r.gpu_model): r for r in day.items}
    # 12 intervals of 300 s (the newest recording counts nothing yet).
    assert rows[("team-a", H100)].gpu_hours == 6.0
    assert (rows[("team-a", H100)].cost, rows[("team-a", H100)].efficiency) == (27.0, 50.0)
    assert (rows[("team-b", A100)].gpu_hours, rows[("team-b", A100)].cost) == (2.0, None)
    assert week.items == day.items and week.since == "7d"
    month_a = {(r.tenant, r.gpu_model): r for r in month.items}[("team-a", H100)]
    assert (month_a.gpu_hours, month_a.cost) == (9.0, 40.5)  # + 36 GPUs × 300 s
    assert day.history_updated is not None and day.unpriced_gpu_hours == 2.0
    # team-a's idle H100 (h100-node-02 GPU 4) is shown with what it costs a day.
    [idle] = [i for i in day.idle if i.tenant == "team-a"]
    assert (idle.gpu_model, idle.gpus, idle.cost_per_day) == (H100, 1, 108.0)


async def test_cost_api_is_scoped_by_the_tokens_tenants(fake: FleetBackend) -> None:
    token = fake.issue("bea", "viewer", frozenset({"team-b"}))
    async with client(fake, token) as http:
        report = CostReport.model_validate((await http.get("/api/v1/cost")).json())
    assert {r.tenant for r in report.items} == {"team-b"}
    assert {t.tenant for t in report.tenants} == {"team-b"}
    assert report.idle == [] and report.cost is None and report.gpu_hours == 2.0


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture
def cost_cli_on(fake: FleetBackend, monkeypatch: pytest.MonkeyPatch) -> FleetBackend:
    """``opsconsole cost`` reaches the fake backend (its transport) with the admin's token."""

    def command_client(_args: object, *, timeout: float) -> BackendClient:
        return BackendClient(
            "http://fake", transport=fake.transport(), token=fake.token, timeout=timeout
        )

    monkeypatch.setattr(cost_cli.access, "command_client", command_client)
    return fake


def test_cli_prints_a_table_with_totals_and_idle_gpus(
    cost_cli_on: FleetBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["cost", "--backend", "http://fake", "--since", "7d"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "TENANT", "GPU-MODEL", "GPU-HOURS", "BUSY-HOURS", "EFFICIENCY", "PRICE/H", "COST",
    ]  # fmt: skip
    assert lines[1].split() == ["team-a", H100, "6.00", "3.00", "50.00%", "4.50", "27.00"]
    assert lines[2].split() == ["team-b", A100, "2.00", "2.00", "100.00%", "-", "no", "price"]
    assert lines[3].split() == ["TOTAL", "8.00", "27.00", "(+2.00", "GPU-h", "unpriced)"]
    assert "idle GPUs now:" in "\n".join(lines)
    assert any(line.split()[:3] == ["team-a", H100, "1"] for line in lines)


def test_cli_writes_csv_with_empty_cells_for_unknown_cost(
    cost_cli_on: FleetBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["cost", "--backend", "http://fake", "--output", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["tenant"], r["cost"], r["price_per_hour"]) for r in rows] == [
        ("team-a", "27.0", "4.5"),
        ("team-b", "", ""),
    ]
    assert rows[0]["gpu_hours"] == "6.0" and rows[0]["efficiency"] == "50.0"


def test_cli_writes_the_whole_report_as_json(
    cost_cli_on: FleetBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["cost", "--backend", "http://fake", "--since", "30d", "--output", "json"]) == 0
    report = CostReport.model_validate(json.loads(capsys.readouterr().out))
    assert report.since == "30d" and report.cost == 40.5


def test_cli_without_a_backend_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["cost", "--output", "csv"]) == 2
    assert "no backend" in capsys.readouterr().err


def test_prices_come_from_the_environment_in_either_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCONSOLE_GPU_PRICES", "NVIDIA-H100-80GB-HBM3=4.5, *=2")
    basis = CostBasis.from_settings(Settings())
    assert (basis.price("NVIDIA H100 80GB HBM3"), basis.price("*"), basis.price(A100)) == (
        4.5, 2.0, None,
    )  # fmt: skip
    monkeypatch.setenv("OPSCONSOLE_GPU_PRICES", '{"NVIDIA-L4": 0.8}')
    assert Settings().gpu_prices == {"NVIDIA-L4": 0.8}
    for bad in ("h100", "h100=-1"):
        monkeypatch.setenv("OPSCONSOLE_GPU_PRICES", bad)
        with pytest.raises(ValueError, match="gpu_prices"):
            Settings()


def test_the_backend_serves_cost_from_its_usage_history(live_cluster: LiveCluster) -> None:
    """The assembled backend on the demo sandbox: a row per tenant and quota from its first
    recording (which counts no time yet, and was taken with the telemetry in), no prices set, and
    the idle GPUs its telemetry sees."""
    headers = bearer(live_cluster.token)
    with httpx.Client(base_url=live_cluster.backend_url, headers=headers, timeout=30) as http:
        report = CostReport.model_validate(http.get("/api/v1/cost?since=30d").json())
        quotas = http.get("/api/v1/quotas").json()["items"]
        overview = http.get("/api/v1/overview").json()
    assert report.history_updated is not None
    assert {(r.tenant, r.gpu_model) for r in report.items} == {
        (q["tenant"], q["gpu_model"]) for q in quotas
    }
    assert all(r.samples == 1 and r.gpu_hours == 0.0 and r.cost is None for r in report.items)
    assert report.idle_gpus == overview["totals"]["gpus_idle"] > 0
    assert all(i.cost_per_day is None for i in report.idle)
    # A GPU held without a quota of its model (borrowed through the cohort) has no quota to cut.
    assert {i.quota_model for i in report.idle} >= {None, "NVIDIA-H100-80GB-HBM3"}
    # The first recording waited for the telemetry: busy = held GPUs that are not idle.
    assert all(q["usage_24h"]["busy_peak"] == q["allocated"] - q["idle"] for q in quotas)
