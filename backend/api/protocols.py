"""What the HTTP API needs of whatever it serves, as structural types.

The API never imports the backend's runtime: ``backend.service.Backend`` satisfies these
protocols, and so does the tests' in-memory source, so the same routes serve both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from backend.fleet.model import FleetModel
from backend.schemas import BackendInfo, DataFreshness


class FleetSource(Protocol):
    """What the ``/api/v1`` fleet routes read: the current model and how fresh its data is."""

    @property
    def model(self) -> FleetModel | None:
        """None until the first model is built (the routes answer 503 meanwhile)."""
        ...

    def freshness(self) -> DataFreshness: ...


class ModelBuilds(Protocol):
    """How the fleet model's rebuilds went."""

    @property
    def builds(self) -> int: ...

    @property
    def last_duration(self) -> float: ...


class ServedSource(FleetSource, Protocol):
    """Everything the app serves: the fleet, ``/info``, ``/readyz`` and ``/metrics``."""

    @property
    def model_stats(self) -> ModelBuilds: ...

    def info(self) -> BackendInfo: ...

    def not_ready_reason(self) -> str | None:
        """None when ready to answer; otherwise why not (``/readyz`` answers 503 with it)."""
        ...

    def object_counts(self) -> Mapping[str, int]:
        """Cached cluster objects per kind."""
        ...
