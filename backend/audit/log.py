"""The audit log as the backend's services use it: async, group-committed, never losing an outcome.

``record`` appends and returns the stored record, or raises ``AuditUnavailable``: the change path
calls it for an intent and refuses the change when it raises (fail closed). Concurrent calls are
written together in one transaction (group commit), so the log keeps up with many writers at one
durable commit per batch. ``record_outcome`` never raises: an outcome that cannot be written is
kept in memory and retried until the database takes it, and ``backlog`` says how many wait, so
``/readyz`` can report it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from backend.audit.store import AuditStore
from backend.schemas import AuditEntry, AuditFilter, AuditRecord, ChainHead, ChainVerification

log = logging.getLogger("opsconsole.audit")

MAX_BATCH = 500


class HeadStore(Protocol):
    """Where the chain's head is kept outside the database (see ``backend.changes.head``)."""

    def write(self, head: ChainHead) -> None: ...

    def read(self) -> ChainHead | None: ...


class AuditUnavailable(Exception):
    """The audit log could not be written; the message says why."""


@dataclass
class _Pending:
    entry: AuditEntry
    done: asyncio.Future[AuditRecord] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class AuditLog:
    """Appends to an ``AuditStore`` from async code; one writer task batches the appends."""

    def __init__(
        self,
        store: AuditStore,
        head: HeadStore | None = None,
        retry_interval: float = 2.0,
        verify_interval: float = 30.0,
        full_verify_every: int = 20,
    ) -> None:
        """The chain is checked every ``verify_interval`` seconds: the new records each time,
        the whole chain every ``full_verify_every`` rounds (and at start)."""
        self.store = store
        self.head = head
        self.head_error: str | None = None
        self.verify_interval = verify_interval
        self.full_verify_every = full_verify_every
        self.chain: ChainVerification | None = None
        self._verify_soon = asyncio.Event()  # a change was recorded: check the new records now
        self._index_soon = asyncio.Event()  # records were appended: add them to the text index
        self.retry_interval = retry_interval
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._backlog: list[AuditEntry] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.last_error: str | None = None

    @property
    def backlog(self) -> int:
        """Outcomes waiting to be written."""
        return len(self._backlog)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="audit-writer"),
            asyncio.create_task(self._retry_loop(), name="audit-retry"),
            asyncio.create_task(self._verify_loop(), name="audit-verify"),
        ]
        if self.store.indexes_text_behind:
            self._index_soon.set()  # records appended while no backend ran
            self._tasks.append(asyncio.create_task(self._index_loop(), name="audit-index"))

    async def stop(self) -> None:
        """Stop the tasks after one last attempt to write the backlog."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._flush_backlog()

    async def record(self, entry: AuditEntry) -> AuditRecord:
        """Append ``entry`` durably; ``AuditUnavailable`` if the database refused it."""
        if not self._tasks:
            return await self._append_now(entry)
        pending = _Pending(entry)
        await self._queue.put(pending)
        return await pending.done

    async def record_outcome(self, entry: AuditEntry) -> AuditRecord | None:
        """Append an outcome and publish the new head; if the append fails, keep the outcome
        for the retry loop and return None."""
        try:
            stored = await self.record(entry)
            await self.publish_head()
            self._verify_soon.set()  # the chain's state follows the log (new records only)
            return stored
        except AuditUnavailable:
            self._backlog.append(entry)
            log.error(
                "outcome of change %s kept in memory until the database is back", entry.change_id
            )
            return None

    async def _append_now(self, entry: AuditEntry) -> AuditRecord:
        try:
            [stored] = await asyncio.to_thread(self.store.append_many, [entry])
        except Exception as exc:
            raise self._unavailable(exc) from exc
        return stored

    def _unavailable(self, exc: Exception) -> AuditUnavailable:
        self.last_error = (
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
        return AuditUnavailable(f"the audit log cannot be written ({self.last_error})")

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                stored = await asyncio.to_thread(self.store.append_many, [p.entry for p in batch])
            except Exception as exc:  # every caller of the batch learns why
                error = self._unavailable(exc)
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_exception(error)
                continue
            self.last_error = None
            self._index_soon.set()
            for pending, record in zip(batch, stored, strict=True):
                if not pending.done.done():
                    pending.done.set_result(record)

    async def _index_loop(self) -> None:
        """Add appended records to the free-text index behind the appends, a batch per
        transaction, so that an append does not wait for its indexing (a search reads the
        records not yet indexed without the index)."""
        while True:
            await self._index_soon.wait()
            self._index_soon.clear()
            try:
                while await asyncio.to_thread(self.store.index_text):
                    pass
            except Exception:  # the database may be down; the next append tries again
                log.exception("indexing the audit log's text failed")

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_interval)
            await self._flush_backlog()

    async def _flush_backlog(self) -> None:
        if not self._backlog:
            return
        waiting = list(self._backlog)
        try:
            await asyncio.to_thread(self.store.append_many, waiting)
        except Exception as exc:
            self._unavailable(exc)
            return
        del self._backlog[: len(waiting)]
        self.last_error = None
        self._index_soon.set()
        log.info("wrote %d outcome(s) kept in memory", len(waiting))
        await self.publish_head()

    # -- the head outside the database -----------------------------------------------------------
    async def publish_head(self) -> None:
        """Write the chain's head outside the database; a failure is kept for ``/readyz``."""
        if self.head is None:
            return
        try:
            head = await asyncio.to_thread(self.store.head)
            if head is not None:
                await asyncio.to_thread(self.head.write, head)
        except Exception as exc:
            self.head_error = f"{exc.__class__.__name__}: {exc}"
            log.error("writing the audit head outside the database failed: %s", self.head_error)
        else:
            self.head_error = None

    # -- reads -----------------------------------------------------------------------------------
    async def search(
        self,
        where: AuditFilter,
        limit: int,
        cursor: int | None = None,
        oldest_first: bool = False,
        scope: frozenset[str] | None = None,
    ) -> tuple[list[AuditRecord], int | None]:
        return await asyncio.to_thread(self.store.search, where, limit, cursor, oldest_first, scope)

    async def get(self, seq: int) -> AuditRecord | None:
        return await asyncio.to_thread(self.store.get, seq)

    async def verify(self, start: ChainHead | None = None) -> ChainVerification:
        """The chain from record 1 (or on from ``start``, verified before), then its end compared
        with the head kept outside. The result is kept as ``chain``."""
        result = await asyncio.to_thread(self.store.verify, 20_000, start)
        result = await self._compare_head(result)
        self.chain = result
        return result

    async def _verify_loop(self) -> None:
        """The whole chain at start and every ``full_verify_every`` intervals; in between, only
        the records added since the last check (each interval, and soon after every change)."""
        full_every = self.verify_interval * self.full_verify_every
        last_full = float("-inf")
        while True:
            known = self.chain
            full = known is None or not known.ok or time.monotonic() - last_full >= full_every
            try:
                await self.verify(None if full or known is None else known.head)
                if full:
                    last_full = time.monotonic()
            except Exception:  # the database may be down; the next round tries again
                log.exception("verifying the audit chain failed")
            with contextlib.suppress(
                TimeoutError
            ):  # asyncio.timeout keeps a cancel: wait_for may not
                async with asyncio.timeout(self.verify_interval):
                    await self._verify_soon.wait()
            self._verify_soon.clear()

    async def _compare_head(self, result: ChainVerification) -> ChainVerification:
        if self.head is None:
            return result
        try:
            external = await asyncio.to_thread(self.head.read)
        except Exception as exc:
            result.external_head_error = f"the head outside the database is unreadable: {exc}"
            return result
        result.external_head = external
        if external is None or not result.ok:
            return result
        return await asyncio.to_thread(compare_with_head, self.store, result, external)


def compare_with_head(
    store: AuditStore, result: ChainVerification, external: ChainHead
) -> ChainVerification:
    """Truncation and a rewritten end show here: the database must still hold the record the
    external head names, with the same hash."""
    verified = result.head.seq if result.head else 0
    if external.seq > verified:
        result.ok = False
        result.broken_at = verified + 1
        result.problem = (
            f"records #{verified + 1} to #{external.seq} are missing: the database ends at "
            f"#{verified} but the head kept outside it is #{external.seq}"
        )
        return result
    record = store.get(external.seq)
    if record is None or record.hash != external.hash:
        result.ok = False
        result.broken_at = external.seq
        result.problem = f"record #{external.seq} differs from the head kept outside the database"
    return result
