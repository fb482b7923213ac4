"""Requests before the fleet model (backend.reads_first): the model's worker pauses at its
``give_way`` points while requests are in flight, within a limit per point and a budget per model,
and the HTTP app counts the requests in flight.

The pauses run on a fake clock whose ``sleep`` advances it, so that the limits are checked
exactly, without timing anything.
"""

from __future__ import annotations

import sys
from collections import Counter

import httpx

from backend.api.app import create_app
from backend.fleet import build_fleet_model
from backend.fleet.model import update_fleet_model
from backend.reads_first import RequestsInFlight, give_way, in_turns
from tests.support.backend import InMemorySource
from tests.support.synthetic_fleet import FleetBuilder
from tests.support.tokens import bearer
from tests.test_fleet_incremental import NOW, everything


class FakeClock:
    """A monotonic clock that only ``sleep`` moves; ``answered_after`` polls, the request in
    flight is answered."""

    def __init__(self, requests: RequestsInFlight | None = None, answered_after: int = 0) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.callers: Counter[str] = Counter()
        self.requests = requests
        self.answered_after = answered_after

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps.append(seconds)
        self.callers[sys._getframe(3).f_code.co_name] += 1  # who called give_way
        if self.requests is not None and len(self.sleeps) == self.answered_after:
            self.requests.count -= 1


def _requests(clock: FakeClock, **limits: float) -> RequestsInFlight:
    requests = RequestsInFlight(clock=clock, sleep=clock.sleep, **limits)
    clock.requests = requests
    return requests


def test_a_pause_lasts_until_the_requests_in_flight_are_answered() -> None:
    clock = FakeClock(answered_after=3)
    requests = _requests(clock, point_limit=10.0, budget=10.0, poll=0.25)
    requests.count = 1
    with requests.giving_way():
        give_way()
        assert clock.sleeps == [0.25] * 3  # answered at the third look: no fourth
        give_way()  # nothing in flight now
    assert clock.sleeps == [0.25] * 3
    assert requests.paused_seconds == 0.75


def test_a_pause_is_bounded_at_each_point_and_in_each_model() -> None:
    clock = FakeClock()  # the request in flight is never answered
    requests = _requests(clock, point_limit=0.5, budget=1.25, poll=0.25)
    requests.count = 1
    with requests.giving_way():
        give_way()
        assert clock.now == 100.5  # the limit at one point
        give_way()
        give_way()  # what is left of the budget
        assert clock.now == 101.25
        give_way()  # the budget is spent: the model goes on
        assert clock.now == 101.25
    with requests.giving_way():  # the next model has its own budget
        give_way()
    assert clock.now == 101.75
    assert requests.paused_seconds == 1.75


def test_nothing_pauses_without_requests_or_outside_a_model() -> None:
    clock = FakeClock()
    requests = _requests(clock)
    with requests.giving_way():
        give_way()  # no request in flight
    requests.count = 1
    give_way()  # not within a model made by the backend (tests, benchmarks)
    assert clock.sleeps == []


def test_a_request_that_waits_for_the_model_does_not_hold_it_back() -> None:
    """A change's answer waits for the model made from its write: the model must not pause for
    the request that waits for it."""
    clock = FakeClock()
    requests = _requests(clock)
    requests.count = 1
    with requests.set_aside(), requests.giving_way():
        give_way()
    assert clock.sleeps == []
    assert requests.count == 1


def test_a_model_update_gives_way_between_its_stages_and_every_few_nodes() -> None:
    """A telemetry round over 40 nodes: the update pauses between its stages and among the
    nodes, and the model it makes is the one made without pauses."""
    builder = FleetBuilder(40, seed=4)
    cluster = builder.build(8)
    before, after = builder.telemetry(3), builder.telemetry(3)
    model = build_fleet_model(cluster, before, now=NOW)
    clock = FakeClock()  # a request stays in flight: every point pauses once
    requests = _requests(clock, point_limit=0.25, budget=1000.0, poll=0.25)
    requests.count = 1
    with requests.giving_way():
        updated = update_fleet_model(model, cluster, set(), after, now=NOW)
    # Between the four stages; among the 40 nodes, 16 at a time; around the GPU table.
    assert clock.callers == {"update_parts": 4, "update_nodes": 2, "__init__": 2}
    alone = update_fleet_model(model, cluster, set(), after, now=NOW)
    assert everything(updated) == everything(alone)
    clock.callers.clear()
    with requests.giving_way():
        build_fleet_model(cluster, after, now=NOW)
    # A whole build: among the nodes; around the GPU table and after the endpoints.
    assert clock.callers == {"build_parts": 2, "__init__": 3}


async def test_the_app_counts_the_requests_in_flight() -> None:
    """``/metrics`` shows itself in flight; every answer, refused ones too, leaves the count."""
    source = InMemorySource({}, None)
    token, _ = source.tokens.create("admin", "admin")
    requests = RequestsInFlight()
    app = create_app(source, requests=requests)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        assert (await http.get("/api/v1/tenants")).status_code == 401
        assert (await http.get("/api/v1/nope", headers=bearer(token))).status_code == 404
        metrics = (await http.get("/metrics", headers=bearer(token))).text
    assert "opsconsole_http_requests_in_flight 1.0" in metrics
    assert "opsconsole_model_paused_seconds_total 0.0" in metrics
    assert requests.count == 0


async def test_in_turns_gives_slices_of_the_size_asked_for() -> None:
    assert [list(s) async for s in in_turns(list(range(10)), 4)] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]
    nothing: list[int] = []
    assert [s async for s in in_turns(nothing, 4)] == []
