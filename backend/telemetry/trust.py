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

    ``owners`` is the node of each UUID accepted in the previous round."""
    refused: dict[str, list[str]] = defaultdict(list)
    hosted: list[list[GpuSample]] = []
    for origin, gpus in reports:
        kept = []
        for gpu in gpus:
            if _host_matches(gpu.node, origin):
                gpu.node = origin.node or gpu.node
                kept.append(gpu)
            else:
                refused[origin.source].append(f'{gpu.uuid} has host "{gpu.node}"')
        hosted.append(kept)
    claims: dict[str, set[str | None]] = defaultdict(set)
    for gpus in hosted:
        for gpu in gpus:
            claims[gpu.uuid].add(gpu.node)
    accepted: list[list[GpuSample]] = []
    for (origin, _), gpus in zip(reports, hosted, strict=True):
        kept = []
        for gpu in gpus:
            why = _ownership_refusal(gpu, claims[gpu.uuid], owners)
            if why is None:
                kept.append(gpu)
            else:
                refused[origin.source].append(why)
        accepted.append(kept)
    failures = {
        origin.source: _failure(origin, refused[origin.source], len(gpus))
        for origin, gpus in reports
        if refused.get(origin.source)
    }
    return accepted, failures


def _host_matches(host: str | None, origin: Origin) -> bool:
    node = origin.node
    if node is None or not host or host in (node, origin.pod):
        return True
    return node.split(".", 1)[0] == host


def _ownership_refusal(
    gpu: GpuSample, claimants: set[str | None], owners: Mapping[str, str | None]
) -> str | None:
    """Why ``gpu`` is not its node's to report, or None when it is."""
    if len(claimants) == 1:
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
