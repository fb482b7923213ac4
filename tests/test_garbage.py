"""The backend's schedule for the cyclic garbage collector (backend.garbage)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from backend.garbage import FleetGarbage


class Cycle:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def collector() -> Iterator[None]:
    """The suite's process as it was: collector enabled, nothing frozen."""
    was_enabled = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.collect()
        if not was_enabled:
            gc.disable()


async def test_the_first_model_resumes_collection_paused_for_the_first_sync(
    collector: None,
) -> None:
    frozen = gc.get_freeze_count()  # the suite's console tests freeze their start-up objects
    garbage = FleetGarbage(freeze=False)
    garbage.pause()
    assert not gc.isenabled()
    garbage.after_model()
    assert gc.isenabled()
    garbage.after_model()  # a second model does not enable it again, or freeze anything
    assert gc.isenabled() and gc.get_freeze_count() == frozen


async def test_the_first_model_after_the_pause_freezes_without_walking_the_fleet(
    collector: None,
) -> None:
    # Everything the first sync allocated is young; a young collection would walk all of it.
    garbage = FleetGarbage()
    garbage.pause()
    dead = Cycle()
    ref = weakref.ref(dead)
    del dead
    garbage.after_model()
    assert gc.isenabled()
    gc.collect()
    assert ref() is not None, "frozen as it was, so later collections skip it"
    gc.unfreeze()
    gc.collect()  # what the occasional full collection does
    assert ref() is None


def test_after_a_model_young_cycles_are_collected_and_the_living_frozen(collector: None) -> None:
    now = [0.0]
    garbage = FleetGarbage(full_interval=600.0, clock=lambda: now[0])
    gc.collect()
    alive = Cycle()
    dead = Cycle()
    del dead
    garbage.after_model()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    assert not any(isinstance(o, Cycle) and o is not alive for o in gc.get_objects())
    assert garbage.full_collections == 0

    old = Cycle()
    garbage.after_model()  # frozen now, though it becomes garbage below
    del old
    assert sum(isinstance(o, Cycle) for o in gc.get_objects()) == 0  # frozen: not tracked
    now[0] = 599.0
    garbage.after_model()
    assert garbage.full_collections == 0
    now[0] = 600.0
    garbage.after_model()  # everything, unfrozen: the old cycle is collected
    assert garbage.full_collections == 1
    gc.unfreeze()
    assert [o for o in gc.get_objects() if isinstance(o, Cycle)] == [alive]
