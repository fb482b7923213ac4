"""The sandbox's controller manager: routes store changes to controllers, one dirty queue.

Like kube-controller-manager's informers and work queues, but synchronous: the store calls
``_on_change`` for every write; the manager records ``(type, namespace, name)`` in an ordered,
de-duplicated dirty queue (plus the controlling owner: pod -> ReplicaSet/Job, ReplicaSet ->
Deployment) and ``reconcile_all`` drains it, calling every controller that watches the type.
``start`` runs that drain and the controllers' time-based ``tick`` in a background task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator

from backend.sandbox.clock import Clock
from backend.sandbox.controllers.base import (
    Controller,
    ControllerContext,
    GpuAllocator,
    OwnerIndex,
    controller_ref,
)
from backend.sandbox.controllers.deployments import DeploymentController
from backend.sandbox.controllers.jobs import JobController
from backend.sandbox.controllers.kserve import InferenceServiceController
from backend.sandbox.controllers.kueue import KueueController
from backend.sandbox.controllers.podstatus import PodStatusController
from backend.sandbox.controllers.quota import ResourceQuotaController
from backend.sandbox.controllers.replicasets import ReplicaSetController
from backend.sandbox.controllers.scheduler import Scheduler
from backend.sandbox.store import (
    EVENT,
    POD,
    REPLICA_SET,
    ResourceType,
    Store,
    WatchEvent,
)

log = logging.getLogger(__name__)
TICK_SECONDS = 0.5
WAKE_DELAY = 0.01
SETTLE_HORIZON = 3600.0
# A drain that goes on this long is a controller fighting another: stop and say so.
MAX_RECONCILES_PER_DRAIN = 5_000_000
_OWNER_KINDS = frozenset({"ReplicaSet", "Job", "Deployment"})

__all__ = ["Controllers", "GpuAllocator", "manager_for"]
# The manager listening to each store: a fleet builder drives that one rather than starting a
# second manager that would react to the same changes.
_MANAGERS: weakref.WeakKeyDictionary[Store, Controllers] = weakref.WeakKeyDictionary()


def manager_for(store: Store) -> Controllers | None:
    """The active ``Controllers`` of a store, if one was started."""
    return _MANAGERS.get(store)


class Controllers:
    """Every sandbox controller, fed by one listener on the store."""

    def __init__(self, store: Store, clock: Clock, settle_seconds: float, seed: int) -> None:
        self.store = store
        self.allocator = GpuAllocator()
        self.ctx = ControllerContext(
            store=store,
            clock=clock,
            settle_seconds=settle_seconds,
            rng=random.Random(seed),
            allocator=self.allocator,
            index=OwnerIndex(),
        )
        self.scheduler = Scheduler(self.ctx)
        self.controllers: list[Controller] = [
            DeploymentController(self.ctx),
            ReplicaSetController(self.ctx),
            JobController(self.ctx),
            self.scheduler,
            PodStatusController(self.ctx),
            KueueController(self.ctx),
            ResourceQuotaController(self.ctx),
            InferenceServiceController(self.ctx),
        ]
        # Keyed by kind name: hashing a str is much cheaper than hashing the ResourceType
        # dataclass, and this runs for every change of a 20,000-pod fleet.
        self._routes: dict[str, list[Controller]] = {}
        self._types: dict[str, ResourceType] = {}
        for controller in self.controllers:
            for rt in controller.watches:
                self._routes.setdefault(rt.kind, []).append(controller)
                self._types[rt.kind] = rt
        self._dirty: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._active = True
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._horizon = 0.0
        self._initial_sync()
        store.add_listener(self._on_change)
        _MANAGERS[store] = self

    # -- feeding the queue --------------------------------------------------------------------
    def _initial_sync(self) -> None:
        """Index and enqueue everything already stored, as informers' first list does.

        Nodes go first so that the scheduler knows the capacity before it sees pods.
        """
        order = sorted(self._routes, key=lambda kind: (kind != "Node", kind))
        for rt in (POD, REPLICA_SET):
            for obj in self.store.list(rt):
                self.ctx.index.observe(rt, "ADDED", obj)
        for kind in order:
            for obj in self.store.list(self._types[kind]):
                meta = obj["metadata"]
                self._dirty[(kind, meta.get("namespace", ""), meta["name"])] = None

    def _on_change(self, rt: ResourceType, event: WatchEvent) -> None:
        if not self._active or rt is EVENT:
            return
        obj = event.object
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        kind = rt.kind
        if kind in self._routes:
            self._dirty[(kind, namespace, meta["name"])] = None
            if self._wake is not None:
                self._wake.set()
        if rt is POD or rt is REPLICA_SET:
            self.ctx.index.observe(rt, event.type, obj)
            ref = controller_ref(obj)
            if ref is not None and ref.get("kind") in _OWNER_KINDS and ref["kind"] in self._routes:
                self._dirty[(ref["kind"], namespace, ref["name"])] = None

    def enqueue(self, rt: ResourceType, namespace: str, name: str) -> None:
        self._dirty[(rt.kind, namespace, name)] = None

    # -- draining -----------------------------------------------------------------------------
    def reconcile_all(self) -> None:
        """Drain the dirty queue (and pending scheduling retries) until nothing is left."""
        done = 0
        while True:
            while self._dirty:
                (kind, namespace, name), _ = self._dirty.popitem(last=False)
                rt = self._types[kind]
                for controller in self._routes[kind]:
                    try:
                        controller.reconcile(rt, namespace, name)
                    except Exception:
                        log.exception("reconciling %s %s/%s failed", rt.kind, namespace, name)
                done += 1
                if done > MAX_RECONCILES_PER_DRAIN:
                    log.error("controllers do not settle; %d keys left", len(self._dirty))
                    return
            if not self.scheduler.retry():
                return

    def settle(self, max_rounds: int = 50) -> None:
        """Drain and tick until nothing changes any more (fleet building, tests).

        Some work happens only in ``tick`` (Kueue admits once per tick), so draining alone does
        not reach the steady state. Ticks run "an hour later" in monotonic time, so that pods
        settle and periodic checks (progress deadlines, quota retries) are due.
        """
        for _ in range(max_rounds):
            before = self.store.resource_version
            self._horizon += SETTLE_HORIZON  # each round later than the last
            self.tick(time.monotonic() + self._horizon)
            if self.store.resource_version == before and not self._dirty:
                return

    @contextlib.contextmanager
    def building(self, clock: Clock, *, events: bool = True) -> Iterator[None]:
        """Run the controllers on another clock, settling at once (and optionally without
        events) while a fleet's history is built; restore everything afterwards."""
        ctx = self.ctx
        saved = (ctx.clock, ctx.settle_seconds, ctx.events_enabled)
        ctx.clock, ctx.settle_seconds, ctx.events_enabled = clock, 0.0, events
        try:
            yield
        finally:
            ctx.clock, ctx.settle_seconds, ctx.events_enabled = saved

    def tick(self, now: float | None = None) -> None:
        """Run the time-based part of every controller (``now``: monotonic seconds), then drain."""
        moment = time.monotonic() if now is None else now
        for controller in self.controllers:
            try:
                controller.tick(moment)
            except Exception:
                log.exception("tick of %s failed", type(controller).__name__)
        self.reconcile_all()

    async def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self.reconcile_all()
            self._task = asyncio.create_task(self._run(), name="sandbox-controllers")

    async def _run(self) -> None:
        """Reconcile soon after each change (a client's write shows its effects within
        milliseconds), and tick every ``TICK_SECONDS``."""
        wake = self._wake
        assert wake is not None
        next_tick = 0.0
        while True:
            now = time.monotonic()
            if now >= next_tick:
                self.tick(now)
                next_tick = now + TICK_SECONDS
            else:
                self.reconcile_all()
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.0, next_tick - time.monotonic()))
            await asyncio.sleep(WAKE_DELAY)  # let a burst of writes arrive together

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def close(self) -> None:
        """Stop listening to the store (a manager used only to build a fleet)."""
        self._active = False
        self._dirty.clear()
        if _MANAGERS.get(self.store) is self:
            del _MANAGERS[self.store]
