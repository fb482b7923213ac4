"""Watch streams: the store's change events as the API server sends them to one watcher.

A watch is newline-delimited JSON ``{"type", "object"}`` lines. It starts with either synthetic
``ADDED`` events for the current objects (no resourceVersion, or "0") or the changes after the
given resourceVersion (an ``ERROR`` event carrying the 410 Status when those are compacted), then
follows live changes until its timeout. With a selector, an object that stops matching is sent as
``DELETED`` and one that starts matching as ``ADDED``, as the API server's watch cache does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import orjson

from backend.sandbox.selectors import Predicate
from backend.sandbox.store import ApiError, ResourceType, Store, WatchEvent

JsonObject = dict[str, Any]
BATCH = 1000  # events per chunk, so that a burst is one write rather than thousands


def watch_line(event_type: str, obj: JsonObject) -> bytes:
    return orjson.dumps({"type": event_type, "object": obj}, option=orjson.OPT_APPEND_NEWLINE)


class WatchFilter:
    """Which events one watcher gets, remembering which objects it currently sees as matching.

    ``complete``: the watcher has seen every object's state (it started with the synthetic
    ``ADDED`` events), so an object it does not know did not match. After a resume from a
    resourceVersion that is unknown, and an object seen for the first time is taken to have
    matched before exactly when it matches now.
    """

    def __init__(
        self,
        namespace: str | None,
        pred: Predicate | None,
        complete: bool,
        transform: Callable[[JsonObject], JsonObject] | None = None,
    ) -> None:
        self.namespace = namespace
        self.pred = pred
        self.complete = complete
        self.known: dict[tuple[str, str], bool] = {}
        self.transform = transform  # e.g. into a one-row Table for kubectl

    def _line(self, event_type: str, obj: JsonObject) -> bytes:
        return watch_line(event_type, self.transform(obj) if self.transform else obj)

    def initial(self, objects: Iterable[JsonObject]) -> list[bytes]:
        lines = []
        for obj in objects:
            if self.pred is None or self.pred(obj):
                if self.pred is not None:
                    self.known[self._key(obj)] = True
                lines.append(self._line("ADDED", obj))
        return lines

    @staticmethod
    def _key(obj: JsonObject) -> tuple[str, str]:
        meta = obj["metadata"]
        return meta.get("namespace", ""), meta["name"]

    def translate(self, event: WatchEvent) -> bytes | None:
        """The line to send for a store event, or ``None`` when this watcher must not see it."""
        obj = event.object
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return None
        if self.pred is None:
            return self._line(event.type, obj)
        key = self._key(obj)
        now = self.pred(obj)
        was = self.known.get(key)
        if was is None:
            was = False if self.complete or event.type == "ADDED" else now
        if event.type == "DELETED":
            self.known.pop(key, None)
            return self._line("DELETED", obj) if was else None
        if now:
            self.known[key] = True
            return self._line("MODIFIED" if was else "ADDED", obj)
        if self.complete:
            self.known.pop(key, None)
        else:
            self.known[key] = False
        return self._line("DELETED", obj) if was else None


class WatchStream:
    """One watch request's response body (an async iterator of byte chunks)."""

    def __init__(
        self,
        store: Store,
        rt: ResourceType,
        namespace: str | None,
        pred: Predicate | None,
        from_rv: int | None,
        *,
        timeout: float,
        bookmark_seconds: float | None,
        send_initial_events: bool = False,
        transform: Callable[[JsonObject], JsonObject] | None = None,
    ) -> None:
        self.store = store
        self.rt = rt
        self.from_rv = from_rv
        self.timeout = timeout
        self.bookmark_seconds = bookmark_seconds
        # A streaming list (``sendInitialEvents=true``): the current objects, then a bookmark
        # annotated ``k8s.io/initial-events-end`` that tells the client the list is complete.
        self.send_initial_events = send_initial_events
        if send_initial_events:
            self.from_rv = None
        self.filter = WatchFilter(
            namespace, pred, complete=self.from_rv is None, transform=transform
        )

    def _replay(self) -> list[bytes]:
        if self.from_rv is None:
            return self.filter.initial(self.store.scan(self.rt, self.filter.namespace))
        lines = []
        for event in self.store.events_since(self.rt, self.from_rv):
            line = self.filter.translate(event)
            if line is not None:
                lines.append(line)
        return lines

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """Replay, then stream changes until the timeout, the client leaving or the server stopping.

        The queue is opened and the replay computed in the same synchronous step, so no change
        can fall between them; ``close_watch`` in ``finally`` runs however the stream ends (a
        client that goes away cancels this generator at its ``await``).
        """
        loop = asyncio.get_running_loop()
        queue = self.store.open_watch(self.rt)
        try:
            try:
                initial = self._replay()
                replayed_through = self.store.resource_version
            except ApiError as err:
                yield watch_line("ERROR", err.status())
                return
            for start in range(0, len(initial), BATCH):
                yield b"".join(initial[start : start + BATCH])
            if self.send_initial_events:
                end = {"k8s.io/initial-events-end": "true"}
                yield self._bookmark(replayed_through, end)
            deadline = loop.time() + self.timeout
            interval = self.bookmark_seconds
            next_bookmark = loop.time() + interval if interval else deadline
            while True:
                now = loop.time()
                if now >= deadline:
                    return
                try:
                    first = await asyncio.wait_for(
                        queue.get(), max(min(deadline, next_bookmark) - now, 0.001)
                    )
                except TimeoutError:
                    if interval and loop.time() >= next_bookmark:
                        next_bookmark = loop.time() + interval
                        yield self._bookmark(self.store.resource_version)
                    continue
                chunk, closed = self._drain(queue, first)
                if chunk:
                    yield chunk
                if closed:
                    return
        finally:
            self.store.close_watch(self.rt, queue)

    def _drain(
        self, queue: asyncio.Queue[WatchEvent | None], first: WatchEvent | None
    ) -> tuple[bytes, bool]:
        """Encode ``first`` and whatever else is already queued (up to ``BATCH`` events)."""
        lines: list[bytes] = []
        event = first
        count = 0
        while True:
            if event is None:
                return b"".join(lines), True
            line = self.filter.translate(event)
            if line is not None:
                lines.append(line)
            count += 1
            if count >= BATCH or queue.empty():
                return b"".join(lines), False
            event = queue.get_nowait()

    def _bookmark(self, resource_version: int, annotations: dict[str, str] | None = None) -> bytes:
        """A bookmark: every change up to ``resource_version`` has been sent."""
        meta: JsonObject = {"resourceVersion": str(resource_version)}
        if annotations:
            meta["annotations"] = annotations
        obj = {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": meta}
        return watch_line("BOOKMARK", obj)
