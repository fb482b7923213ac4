"""Which exporter may speak for which GPUs: samples are accepted only from where they belong.

Anyone who can create a pod can label it like dcgm-exporter and answer ``/metrics`` with any
text, so an exporter is trusted only within two limits, checked on every round:

- **Namespace**: exporters are looked for only in the namespaces configured for them (the GPU
  operator's); ``*`` allows any. Discovery applies it to pods, the Prometheus source to the
  ``namespace`` label of the scrape target, where Prometheus's service discovery adds one.
- **Node**: an exporter whose node is known (its pod's ``spec.nodeName``) speaks only for that
  node's GPUs. A sample's ``Hostname``/``hostname`` label must name that node, the exporter pod
  itself (its hostname when ``NODE_NAME`` is not set), or the node's short name (a host-network
  pod on a node named by its FQDN). A GPU UUID belongs to one node: when exporters of several
  nodes report it in a round, the node that held it in the previous round keeps it and the others
  are refused; with no such node every claim is refused, since none can be told from a spoof. A
  UUID reported by one node only is that node's, so a GPU moved to another node is followed once
  its old node stops reporting it. Where the node is not known (fixed exporter URLs), the
  sample's host label stands for it: only the UUID rule applies.

Refused samples are not dropped silently: each source that had some refused gets a failure line,
counted with the round's failures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from backend.telemetry.dcgm import GpuSample

ANY_NAMESPACE = "*"


@dataclass(frozen=True, slots=True)
class Origin:
    """Who reported a batch of samples."""

    source: str  # the key of its failures: a scrape URL, or Prometheus's job/instance
    node: str | None  # the node its pod runs on; None when not known
    pod: str | None = None  # the exporter pod's name, when known


Report = tuple[Origin, list[GpuSample]]


def namespace_allowed(namespace: str, allowed: Iterable[str]) -> bool:
    """Whether exporters may run in ``namespace``."""
    names = set(allowed)
    return ANY_NAMESPACE in names or namespace in names


def screen(
    reports: list[Report], owners: Mapping[str, str | None]
) -> tuple[list[list[GpuSample]], dict[str, str]]:
    """The samples of each report that its origin may give (in order, their ``node`` set to the
    origin's node where known), and why sources had samples refused.

    ``owners`` is the node of each UUID accepted in the previous round. A round is screened on
    the backend's event loop: the common case (every UUID claimed by one node) costs one pass,
    and only the UUIDs claimed by several nodes are looked at again."""
    refused: dict[str, list[str]] = defaultdict(list)
    hosted: list[list[GpuSample]] = []
    claimed_by: dict[str, str | None] = {}
    contested: dict[str, set[str | None]] = {}
    for origin, gpus in reports:
        hosts = _hosts(origin)
        kept = []
        for gpu in gpus:
            if hosts is None or not gpu.node or gpu.node in hosts:
                gpu.node = origin.node or gpu.node
                kept.append(gpu)
                _claim(gpu, claimed_by, contested)
            else:
                refused[origin.source].append(f'{gpu.uuid} has host "{gpu.node}"')
        hosted.append(kept)
    accepted = _owned(reports, hosted, contested, owners, refused) if contested else hosted
    failures = {
        origin.source: _failure(origin, refused[origin.source], len(gpus))
        for origin, gpus in reports
        if refused.get(origin.source)
    }
    return accepted, failures


def _owned(
    reports: list[Report],
    hosted: list[list[GpuSample]],
    contested: Mapping[str, set[str | None]],
    owners: Mapping[str, str | None],
    refused: dict[str, list[str]],
) -> list[list[GpuSample]]:
    """The hosted samples of each report that its node owns, where several nodes reported a
    UUID; the others are added to ``refused``."""
    accepted: list[list[GpuSample]] = []
    for (origin, _), gpus in zip(reports, hosted, strict=True):
        kept = []
        for gpu in gpus:
            why = _ownership_refusal(gpu, contested.get(gpu.uuid), owners)
            if why is None:
                kept.append(gpu)
            else:
                refused[origin.source].append(why)
        accepted.append(kept)
    return accepted


def _hosts(origin: Origin) -> set[str | None] | None:
    """The host labels an origin's samples may carry; None when any will do (node unknown)."""
    if origin.node is None:
        return None
    return {origin.node, origin.pod, origin.node.split(".", 1)[0]}


def _claim(
    gpu: GpuSample, claimed_by: dict[str, str | None], contested: dict[str, set[str | None]]
) -> None:
    """Note which node reports ``gpu``'s UUID; a UUID reported by several is contested."""
    first = claimed_by.setdefault(gpu.uuid, gpu.node)
    if first != gpu.node:
        contested.setdefault(gpu.uuid, {first}).add(gpu.node)


def _ownership_refusal(
    gpu: GpuSample, claimants: set[str | None] | None, owners: Mapping[str, str | None]
) -> str | None:
    """Why ``gpu`` is not its node's to report (``claimants``: the nodes that reported its UUID
    where there were several), or None when it is."""
    if claimants is None:
        return None
    if gpu.uuid in owners:
        owner = owners[gpu.uuid]
        if owner == gpu.node:
            return None
        if owner in claimants:
            return f"{gpu.uuid} belongs to node {owner}"
    others = sorted(str(n) for n in claimants if n != gpu.node)
    return f"{gpu.uuid} is also reported for node {', '.join(others)}"


def _failure(origin: Origin, reasons: list[str], total: int) -> str:
    where = f"node {origin.node}" if origin.node else "its host"
    return f"refused {len(reasons)} of {total} GPUs not of {where}: {reasons[0]}"
