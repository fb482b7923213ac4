"""A telemetry round brought into the fleet model a slice of GPUs at a time.

A round from the DCGM exporters can change every GPU of the fleet (the sandbox's do, and
utilization moves on real fleets too): updating the model with 8,000 GPUs at once costs most of
a whole build, and a cluster change that arrives meanwhile waits for it. ``step_towards`` moves
from the snapshot the model was built from towards the new round by at most ``limit`` GPUs (in
node order, so a node's GPUs move together), and each step is itself a snapshot: some GPUs from
the new round, the rest from the one before. The model built from it is still exactly the model
of its inputs, and a cluster change waits for one short step at most.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from backend.fleet.inputs import GpuSampleLike, TelemetryLike


@dataclass(frozen=True, slots=True)
class SteppedSnapshot:
    """Part of a round: the GPUs moved so far from the new round, the others from before.
    ``target`` is that round and ``remaining`` its GPUs not moved yet, in stepping order: the
    next step towards the same round takes them from here instead of comparing every GPU of
    the fleet again."""

    samples: Mapping[str, GpuSampleLike]
    history: Mapping[str, Sequence[float | None]]
    completed_at: float | None
    target: TelemetryLike | None = None
    remaining: Sequence[str] = ()


def step_towards(current: TelemetryLike, target: TelemetryLike, limit: int) -> TelemetryLike:
    """``target`` itself when at most ``limit`` GPUs read differently in ``current``; otherwise
    ``current`` with the first ``limit`` of those (by node, then uuid) as ``target`` has them."""
    if current is target:
        return target
    if isinstance(current, SteppedSnapshot) and current.target is target:
        differing = current.remaining
    else:
        differing = _differing(current, target)
    if len(differing) <= limit:
        return target
    old, new = current.samples, target.samples
    old_history, new_history = current.history, target.history
    samples, history = dict(old), dict(old_history)
    for uuid in differing[:limit]:
        sample, values = new.get(uuid), new_history.get(uuid)
        if sample is None:
            samples.pop(uuid, None)
        else:
            samples[uuid] = sample
        if values is None:
            history.pop(uuid, None)
        else:
            history[uuid] = values
    return SteppedSnapshot(samples, history, target.completed_at, target, differing[limit:])


def _differing(current: TelemetryLike, target: TelemetryLike) -> Sequence[str]:
    """The GPUs that read differently in ``target``, by node, then uuid."""
    old, new = current.samples, target.samples
    old_history, new_history = current.history, target.history
    differing = [
        uuid
        for uuid in old.keys() | new.keys()
        if old.get(uuid) is not new.get(uuid) or old_history.get(uuid) != new_history.get(uuid)
    ]
    differing.sort(key=lambda uuid: (_host(new.get(uuid) or old.get(uuid)), uuid))
    return differing


def _host(sample: GpuSampleLike | None) -> str:
    host = getattr(sample, "node", None)
    return host if isinstance(host, str) else ""
