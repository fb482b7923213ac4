"""Short per-GPU utilization history for sparklines: one ring buffer per GPU."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class UtilizationHistory:
    """The last ``length`` utilization values of each GPU, oldest first (None = no data).

    Each buffer's immutable copy is made when the buffer changes (``append``), not all at once
    when a round is frozen: a round's appends are spread over turns of the backend's event loop,
    and ``freeze`` is then a single copy of a dict."""

    def __init__(self, length: int = 60) -> None:
        if length < 1:
            raise ValueError("history length must be at least 1")
        self.length = length
        self._buffers: dict[str, deque[float | None]] = {}
        self._frozen: dict[str, tuple[float | None, ...]] = {}

    def append(self, uuid: str, value: float | None) -> None:
        """Record one round's value; the oldest falls off once the buffer is full."""
        buffer = self._buffers.get(uuid)
        if buffer is None:
            buffer = self._buffers[uuid] = deque(maxlen=self.length)
        buffer.append(value)
        self._frozen[uuid] = tuple(buffer)

    def retain(self, uuids: Iterable[str]) -> None:
        """Forget GPUs not in ``uuids`` (gone from the fleet), so memory stays bounded."""
        keep = set(uuids)
        for uuid in [uuid for uuid in self._buffers if uuid not in keep]:
            del self._buffers[uuid]
            del self._frozen[uuid]

    def freeze(self) -> dict[str, tuple[float | None, ...]]:
        """An immutable copy for a snapshot (taken once per round, not per read)."""
        return dict(self._frozen)

    def __len__(self) -> int:
        return len(self._buffers)
