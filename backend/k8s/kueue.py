"""Kueue's quota arithmetic: what a ClusterQueue may admit in a flavor, counting its cohort.

One definition, used by the sandbox's Kueue controller when it admits Workloads and by the
product's quota what-if when it predicts which pending Workloads a quota change would admit, so
that the two agree. Per flavor a queue has its nominal quota, of which ``lendingLimit`` caps what
the cohort may borrow, and ``borrowingLimit`` caps what it may borrow beyond its nominal quota.
Pure functions over plain dicts; the resource name (``nvidia.com/gpu``) is the caller's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from backend.k8s.quantity import quantity_ceil

POD_SET = "main"


@dataclass
class Quota:
    """One ClusterQueue's quota of one resource in one flavor."""

    nominal: int
    borrowing_limit: int | None
    lending_limit: int | None

    @property
    def lendable(self) -> int:
        if self.lending_limit is None:
            return self.nominal
        return max(0, min(self.nominal, self.lending_limit))

    @property
    def guaranteed(self) -> int:
        """The part of the nominal quota that is never lent to the cohort."""
        return self.nominal - self.lendable


def flavor_quotas(cq: Mapping[str, Any], resource: str) -> tuple[list[str], dict[str, Quota]]:
    """The flavors of a ClusterQueue that cover ``resource``, in its order, and their quota."""
    flavors: list[str] = []
    quota: dict[str, Quota] = {}
    for group in (cq.get("spec") or {}).get("resourceGroups") or ():
        for flavor in group.get("flavors") or ():
            for res in flavor.get("resources") or ():
                if res.get("name") != resource:
                    continue
                borrow = res.get("borrowingLimit")
                lend = res.get("lendingLimit")
                flavors.append(flavor["name"])
                quota[flavor["name"]] = Quota(
                    quantity_ceil(res.get("nominalQuota", 0)) or 0,
                    None if borrow is None else quantity_ceil(borrow) or 0,
                    None if lend is None else quantity_ceil(lend) or 0,
                )
    return flavors, quota


class QueueQuota(Protocol):
    """What the arithmetic reads of a ClusterQueue during an admission pass."""

    @property
    def cohort(self) -> str | None: ...

    quota: dict[str, Quota]
    usage: dict[str, int]


class Cohorts:
    """Available quota per (queue, flavor), counting what the cohort can lend.

    Per cohort and flavor it keeps the lendable pool and how much of it is in use, updated as
    Workloads are admitted, so that a check costs O(1) even with hundreds of queues per cohort.
    """

    def __init__(self, queues: Mapping[str, QueueQuota]) -> None:
        self.pool: dict[tuple[str, str], int] = {}
        self.pool_used: dict[tuple[str, str], int] = {}
        for q in queues.values():
            if not q.cohort:
                continue
            for flavor, quota in q.quota.items():
                key = (q.cohort, flavor)
                self.pool[key] = self.pool.get(key, 0) + quota.lendable
                self.pool_used[key] = self.pool_used.get(key, 0) + max(
                    0, q.usage.get(flavor, 0) - quota.guaranteed
                )

    def add_usage(self, q: QueueQuota, flavor: str, amount: int) -> None:
        """Charge an admitted Workload to its queue (and to the cohort's pool)."""
        before = q.usage.get(flavor, 0)
        q.usage[flavor] = before + amount
        if q.cohort and flavor in q.quota:
            guaranteed = q.quota[flavor].guaranteed
            key = (q.cohort, flavor)
            delta = max(0, before + amount - guaranteed) - max(0, before - guaranteed)
            self.pool_used[key] = self.pool_used.get(key, 0) + delta

    def available(self, q: QueueQuota, flavor: str) -> int:
        quota = q.quota[flavor]
        used = q.usage.get(flavor, 0)
        if not q.cohort:
            return max(0, quota.nominal - used)
        key = (q.cohort, flavor)
        lendable = self.pool.get(key, 0) - self.pool_used.get(key, 0)
        avail = max(0, quota.guaranteed - used) + max(0, lendable)
        if quota.borrowing_limit is not None:
            avail = min(avail, quota.nominal + quota.borrowing_limit - used)
        return max(0, avail)

    def capacity(self, q: QueueQuota, flavor: str) -> int:
        """The most this queue could ever hold in the flavor (Kueue's "maximum capacity")."""
        quota = q.quota[flavor]
        if not q.cohort:
            return quota.nominal
        most = quota.guaranteed + self.pool.get((q.cohort, flavor), 0)
        if quota.borrowing_limit is not None:
            most = min(most, quota.nominal + quota.borrowing_limit)
        return most


def assign_flavor(
    amount: int,
    node_selector: Mapping[str, str],
    q: QueueQuota,
    flavors: list[str],
    flavor_labels: Mapping[str, Mapping[str, str]],
    cohorts: Cohorts,
    resource: str,
) -> tuple[str | None, str]:
    """The first flavor that suits the pods' node selector and has room for ``amount``, or None
    and Kueue's reason in Kueue's words."""
    if not flavors:
        return None, (
            f"couldn't assign flavors to pod set {POD_SET}: resource {resource} "
            "unavailable in ClusterQueue"
        )
    reasons = []
    for flavor in flavors:
        labels = flavor_labels.get(flavor, {})
        if any(labels.get(k, v) != v for k, v in node_selector.items()):
            reasons.append(f"flavor {flavor} doesn't match node affinity")
            continue
        avail = cohorts.available(q, flavor)
        if amount <= avail:
            return flavor, ""
        most = cohorts.capacity(q, flavor)
        if amount > most:
            reasons.append(
                f"insufficient quota for {resource} in flavor {flavor}, "
                f"request > maximum capacity ({amount} > {most})"
            )
        else:
            reasons.append(
                f"insufficient unused quota for {resource} in flavor {flavor}, "
                f"{amount - avail} more needed"
            )
    return None, f"couldn't assign flavors to pod set {POD_SET}: " + ", ".join(reasons)
