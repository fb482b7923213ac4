"""``GET /api/v1/cost`` answers what the current model and usage recording say: the answers that
requests asked of a model are rendered for the next one before it is served, and a recording
replaces them, so a poll never reads an earlier model's or recording's figures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from backend.cost import answers
from backend.cost.answers import cost_json, prerender_cost
from backend.cputime import spent
from backend.db.quota_usage import UsageSample
from backend.fleet.model import FleetModel, build_fleet_model
from backend.schemas import CostReport
from tests.support.backend import FleetBackend
from tests.support.cost import A100, costed_fleet
from tests.support.detail_fleet import NOW, detail_fleet
from tests.support.fleets import H100
from tests.support.tokens import bearer


def client(fake: FleetBackend) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=fake.app)
    return httpx.AsyncClient(
        transport=transport, base_url="http://fake", headers=bearer(fake.token)
    )


async def report(http: httpx.AsyncClient, since: str) -> CostReport:
    answer = await http.get(f"/api/v1/cost?since={since}")
    assert answer.status_code == 200, answer.text
    return CostReport.model_validate_json(answer.content)


def team_a_h100_busy() -> FleetModel:
    """The detail fleet with team-a's idle H100 (h100-node-02 GPU 4) busy."""
    fleet = detail_fleet()
    uuid = next(u for u, s in fleet.samples.items() if s.node == "h100-node-02" and s.gpu == 4)
    fleet.samples[uuid] = replace(fleet.samples[uuid], utilization=90.0)
    fleet.history[uuid] = [*fleet.history[uuid][1:], 90.0]
    return build_fleet_model(fleet.cluster, fleet.telemetry(), now=NOW)


async def test_a_new_recording_changes_the_answer(tmp_path: Path) -> None:
    fake = await costed_fleet(tmp_path)
    history = fake.source.quota_usage
    assert history is not None
    async with client(fake) as http:
        before = await report(http, "24h")
        samples = [UsageSample("team-a", H100, 6, 3, 0), UsageSample("team-b", A100, 2, 2, 0)]
        await history.record(samples, now=NOW + 300)
        after = await report(http, "24h")
    assert before.history_updated is not None and after.history_updated is not None
    assert after.history_updated.timestamp() == NOW + 300
    rows = {(r.tenant, r.gpu_model): r.gpu_hours for r in after.items}
    assert (before.gpu_hours, rows[("team-a", H100)]) == (8.0, 6.5)  # one more interval


async def test_the_next_model_serves_what_was_asked_of_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = await costed_fleet(tmp_path)
    source = fake.source
    first = source.model
    assert first is not None
    async with client(fake) as http:
        week = await report(http, "7d")
    assert [(i.tenant, i.gpus) for i in week.idle] == [("team-a", 1)]
    second = team_a_h100_busy()
    cpu = spent()["cost"]
    prerender_cost(second, source.quota_usage, source.cost_basis, first)
    assert spent()["cost"] > cpu  # rendering is counted as cost's CPU on /metrics
    fresh = cost_json(team_a_h100_busy(), source.quota_usage, source.cost_basis, None, "7d")

    def unexpected(*_: object) -> CostReport:
        raise AssertionError("rendered on request")

    monkeypatch.setattr(answers, "cost_report", unexpected)
    source.model = second
    async with client(fake) as http:
        served = await http.get("/api/v1/cost?since=7d")
    assert served.content == fresh  # rendered before the request, from the new model
    assert CostReport.model_validate_json(served.content).idle == []
    with pytest.raises(AssertionError, match="on request"):  # no request asked for 30 d
        cost_json(second, source.quota_usage, source.cost_basis, None, "30d")
