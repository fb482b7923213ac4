"""``quota.set``, ``quota.transfer`` and ``quota.changeset``: tenants' GPU quota, changed together.

An item sets a tenant's quota of one GPU model, or moves N GPUs of quota from one tenant to
another; a change set is several items planned and applied as one change (all or nothing). Items
apply in order to one working copy of the quotas, so ``a → b`` then ``b → c`` is valid when b has
the GPUs by then. The plan writes each changed number once, in the object that holds it:

- Kueue: the tenant's ClusterQueue ``nominalQuota`` of ``nvidia.com/gpu`` in the ResourceFlavor of
  the GPU model (named by flavor, ``a100``, or by product, ``NVIDIA-A100-SXM4-80GB``);
- ResourceQuota: ``spec.hard["requests.nvidia.com/gpu"]`` of the tenant's namespace (every GPU
  model together); a tenant with several such namespaces names one.

Refused, nothing written: unknown tenant, model or namespace; an amount that is not a whole
number, is negative (zero, for a transfer) or absurd; a transfer to oneself or of more than the
giver has; a total nominal quota of a GPU model above the cluster's GPUs of that model times the
oversubscription ratio. Warned: a tenant left below what it uses (and the Workloads Kueue may then
reclaim), and what the queues would admit afterwards (``backend.changes.quota_whatif``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from backend.changes.kube import ClusterClient
from backend.changes.path import ChangeKind
from backend.changes.plan import FieldChange, ObjectChange, Plan
from backend.changes.quota_state import (
    ANY_MODEL,
    KUEUE,
    Cell,
    ClusterObjects,
    QuotaState,
    cached_quota_state,
    read_quota_state,
)
from backend.changes.quota_whatif import (
    Prediction,
    WorkloadFate,
    borrowers,
    predict,
    predict_resource_quota,
)
from backend.changes.request import ChangeInvalid
from backend.fleet.model import FleetModel
from backend.k8s.quantity import QuantityError, parse_quantity

MAX_GPUS = 100_000  # more than any cluster has: anything above is a typo
MAX_ITEMS = 100
SET, TRANSFER = "set", "transfer"
ACTIONS = {SET: "quota.set", TRANSFER: "quota.transfer"}
CHANGESET = "quota.changeset"


@dataclass(frozen=True)
class Item:
    """One set or transfer, as the operator asked for it (normalised)."""

    op: str
    gpus: int
    model: str | None
    tenant: str = ""  # set
    namespace: str | None = None  # set
    source: str = ""  # transfer: from
    target: str = ""  # transfer: to
    source_namespace: str | None = None
    target_namespace: str | None = None

    def as_parameters(self) -> dict[str, Any]:
        if self.op == SET:
            out: dict[str, Any] = {"op": SET, "tenant": self.tenant, "gpus": self.gpus}
            optional = {"model": self.model, "namespace": self.namespace}
        else:
            out = {"op": TRANSFER, "from": self.source, "to": self.target, "gpus": self.gpus}
            optional = {
                "model": self.model,
                "from_namespace": self.source_namespace,
                "to_namespace": self.target_namespace,
            }
        return out | {k: v for k, v in optional.items() if v is not None}


def _string(value: Any, key: str, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ChangeInvalid(f"{key} is required" if value is None else f"{key} must be a name")
    return value.strip()


def _gpus(value: Any) -> int:
    """A whole number of GPUs: an integer, or a quantity string that is one ("4", "1k")."""
    if isinstance(value, bool) or value is None:
        raise ChangeInvalid("gpus is required: a whole number of GPUs")
    exact: Fraction | None = None
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        exact = Fraction(value)
    elif isinstance(value, str):
        try:
            exact = parse_quantity(value.strip())
        except QuantityError:
            exact = None
    if exact is None or exact.denominator != 1:
        raise ChangeInvalid(f"gpus must be a whole number of GPUs (got {value!r})")
    if exact < 0:
        raise ChangeInvalid(f"gpus cannot be negative (got {value!r})")
    if exact > MAX_GPUS:
        raise ChangeInvalid(f"{exact} GPUs is more than any cluster has (at most {MAX_GPUS})")
    return int(exact)


def parse_item(raw: Any, default_op: str | None = None) -> Item:
    """An item from the API's JSON: ``{"op": "set", "tenant", "model"?, "gpus",
    "namespace"?}`` or ``{"op": "transfer", "from", "to", "model"?, "gpus", "from_namespace"?,
    "to_namespace"?}``."""
    if not isinstance(raw, Mapping):
        raise ChangeInvalid("each quota change must be an object")
    op = raw.get("op", default_op)
    if op not in ACTIONS:
        raise ChangeInvalid(f"op must be set or transfer (got {op!r})")
    gpus = _gpus(raw.get("gpus"))
    model = _string(raw.get("model"), "model", required=False)
    if op == SET:
        return Item(
            SET,
            gpus,
            model,
            tenant=_string(raw.get("tenant"), "tenant") or "",
            namespace=_string(raw.get("namespace"), "namespace", required=False),
        )
    if gpus == 0:
        raise ChangeInvalid("a transfer moves at least 1 GPU (got 0)")
    item = Item(
        TRANSFER,
        gpus,
        model,
        source=_string(raw.get("from"), "from") or "",
        target=_string(raw.get("to"), "to") or "",
        source_namespace=_string(raw.get("from_namespace"), "from_namespace", required=False),
        target_namespace=_string(raw.get("to_namespace"), "to_namespace", required=False),
    )
    if item.source == item.target:
        raise ChangeInvalid(f'cannot transfer quota from tenant "{item.source}" to itself')
    return item


def parse_items(parameters: Mapping[str, Any]) -> list[Item]:
    items = parameters.get("items")
    if not isinstance(items, list) or not items:
        raise ChangeInvalid("items is required: a list of quota changes")
    if len(items) > MAX_ITEMS:
        raise ChangeInvalid(f"at most {MAX_ITEMS} quota changes at once (got {len(items)})")
    return [parse_item(item) for item in items]


# -- resolving names to quota cells ----------------------------------------------------------------


def _models(state: QuotaState, model: str) -> set[str]:
    """The flavors a GPU model names (a flavor name or a product, any case); empty if none."""
    wanted = model.lower()
    return {
        flavor
        for flavor, product in state.flavor_models.items()
        if flavor.lower() == wanted or (product or "").lower() == wanted
    }


def _known_model(state: QuotaState, model: str) -> bool:
    products = {p.lower() for p in state.capacity} | {ANY_MODEL}
    return bool(_models(state, model)) or model.lower() in products


def resolve(state: QuotaState, tenant: str, model: str | None, namespace: str | None) -> Cell:
    """The quota cell a tenant, model and namespace name."""
    if tenant not in state.tenants():
        raise ChangeInvalid(f'unknown tenant "{tenant}"')
    cells = state.cells.get(tenant) or []
    if not cells:
        raise ChangeInvalid(
            f'tenant "{tenant}" has no GPU quota (no ClusterQueue and no ResourceQuota with '
            "requests.nvidia.com/gpu) to change"
        )
    if model is not None and not _known_model(state, model):
        known = sorted(set(state.flavor_models) | set(state.capacity))
        raise ChangeInvalid(f'unknown GPU model "{model}" (known: {", ".join(known)})')
    if cells[0].system == KUEUE:
        return _kueue_cell(state, tenant, cells, model, namespace)
    return _namespace_cell(tenant, cells, namespace)


def _kueue_cell(
    state: QuotaState, tenant: str, cells: list[Cell], model: str | None, namespace: str | None
) -> Cell:
    queue = cells[0].ref.name
    if namespace is not None:
        raise ChangeInvalid(
            f'tenant "{tenant}" has its quota in ClusterQueue {queue}, not per namespace: '
            "leave the namespace out"
        )
    if model is None:
        if len(cells) == 1:
            return cells[0]
        flavors = ", ".join(c.flavor or "" for c in cells)
        raise ChangeInvalid(
            f'tenant "{tenant}" has quota for several GPU models ({flavors}): name the model'
        )
    matches = [c for c in cells if c.flavor in _models(state, model)]
    if not matches:
        flavors = ", ".join(c.flavor or "" for c in cells)
        raise ChangeInvalid(
            f'tenant "{tenant}" has no quota for GPU model "{model}" in ClusterQueue {queue} '
            f"(it has: {flavors})"
        )
    if len(matches) > 1:
        flavors = ", ".join(c.flavor or "" for c in matches)
        raise ChangeInvalid(f'"{model}" matches several flavors ({flavors}): name the flavor')
    return matches[0]


def _namespace_cell(tenant: str, cells: list[Cell], namespace: str | None) -> Cell:
    if namespace is None:
        if len(cells) == 1:
            return cells[0]
        names = ", ".join(c.namespace or "" for c in cells)
        raise ChangeInvalid(
            f'tenant "{tenant}" has a GPU ResourceQuota in several namespaces ({names}): '
            "name the namespace"
        )
    for cell in cells:
        if cell.namespace == namespace:
            return cell
    names = ", ".join(c.namespace or "" for c in cells)
    raise ChangeInvalid(
        f'unknown namespace "{namespace}" for tenant "{tenant}" (its GPU quotas: {names})'
    )


# -- planning --------------------------------------------------------------------------------------


class Working:
    """The quotas as the items leave them, applied in order."""

    def __init__(self, state: QuotaState) -> None:
        self.state = state
        self.cells: dict[tuple[str, str], Cell] = {}
        self.after: dict[tuple[str, str], int] = {}

    def value(self, cell: Cell) -> int:
        return self.after.get(cell.key, cell.value)

    def put(self, cell: Cell, value: int) -> None:
        self.cells[cell.key] = cell
        self.after[cell.key] = value

    def apply(self, item: Item) -> None:
        if item.op == SET:
            cell = resolve(self.state, item.tenant, item.model, item.namespace)
            self.put(cell, item.gpus)
            return
        source = resolve(self.state, item.source, item.model, item.source_namespace)
        model = item.model
        if model is None and source.system == KUEUE:  # the same GPU model on both sides
            model = source.flavor if source.gpu_model == ANY_MODEL else source.gpu_model
        target = resolve(self.state, item.target, model, item.target_namespace)
        if KUEUE == source.system == target.system and source.gpu_model != target.gpu_model:
            raise ChangeInvalid(
                f"{source.label()} and {target.label()} are quotas of different GPU models"
            )
        has = self.value(source)
        if item.gpus > has:
            raise ChangeInvalid(
                f"{source.label()} has {has} GPUs of quota: cannot move {item.gpus}"
            )
        self.put(source, has - item.gpus)
        self.put(target, self.value(target) + item.gpus)

    def changed(self) -> list[Cell]:
        return [c for key, c in self.cells.items() if self.after[key] != c.value]


def _check_capacity(work: Working, ratio: float) -> None:
    """A GPU model's total nominal quota may rise only up to its GPUs × the ratio."""
    for cell in work.changed():
        if work.value(cell) <= cell.value:
            continue
        if cell.system == KUEUE and cell.gpu_model != ANY_MODEL:
            model = cell.gpu_model
            peers = [c for cells in work.state.cells.values() for c in cells]
            peers = [c for c in peers if c.system == KUEUE and c.gpu_model == model]
            capacity = work.state.capacity.get(model, 0)
        else:
            peers = [c for cells in work.state.cells.values() for c in cells]
            peers = [c for c in peers if c.system == cell.system]
            model, capacity = "all GPU models", sum(work.state.capacity.values())
        total = sum(work.value(c) for c in peers)
        limit = math.floor(capacity * ratio)
        if total > limit and total > sum(c.value for c in peers):
            raise ChangeInvalid(
                f"the total {cell.system} quota of {model} would be {total} GPUs, over the "
                f"cluster's {capacity} GPUs × oversubscription {ratio:g} = {limit}"
            )


def _value_like(raw: Any, value: int) -> Any:
    """The new number in the form the object holds the old one (a quantity string or a number)."""
    return str(value) if isinstance(raw, str) else value


def _objects(work: Working) -> list[ObjectChange]:
    fields: dict[str, list[FieldChange]] = {}
    first: dict[str, Cell] = {}
    for cell in work.changed():
        ref = str(cell.ref)
        first.setdefault(ref, cell)
        after = _value_like(cell.raw, work.value(cell))
        fields.setdefault(ref, []).append(FieldChange(cell.path, cell.raw, after))
    return [
        ObjectChange(first[ref].ref, first[ref].resource_version, tuple(changes))
        for ref, changes in fields.items()
    ]


def _change_rows(work: Working) -> list[dict[str, Any]]:
    return [
        {
            "tenant": c.tenant,
            "system": c.system,
            "object": str(c.ref),
            "gpu_model": c.gpu_model,
            "flavor": c.flavor,
            "namespace": c.namespace,
            "before": c.value,
            "after": work.value(c),
        }
        for c in work.changed()
    ]


def _below_use_warnings(work: Working) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    warnings: list[str] = []
    reclaimable: dict[str, list[dict[str, Any]]] = {}
    for cell in work.changed():
        after = work.value(cell)
        if cell.used <= after or after >= cell.value:  # only a cut below the use matters
            continue
        over = cell.used - after
        if cell.system == KUEUE:
            fates = borrowers(work.state, cell, after)
            names = ", ".join(f"{f.namespace}/{f.owner or f.name} ({f.gpus})" for f in fates)
            reclaimable[cell.tenant] = [f.as_dict() for f in fates]
            warnings.append(
                f"{cell.label()} uses {cell.used} GPUs, {over} above its new nominal quota of "
                f"{after}: its admitted workloads keep running as borrowers that Kueue may "
                f"reclaim{': ' + names if names else ''}"
            )
        else:
            warnings.append(
                f"{cell.label()} uses {cell.used} GPUs, {over} above its new quota of {after}: "
                "running pods stay, new pods are refused until usage falls below it"
            )
    return warnings, reclaimable


def _whatif(work: Working, context: QuotaContext) -> tuple[list[str], dict[str, Any]]:
    """What the queues (Kueue) and quotas (ResourceQuota) would admit with the new values: per
    tenant whose quota rises, its pending workloads admitted afterwards and those still waiting."""
    raised = [c for c in work.changed() if work.value(c) > c.value]
    kueue = [c for c in work.changed() if c.system == KUEUE]
    prediction = Prediction()
    if kueue:
        nominal = {(c.ref.name, c.flavor or ""): work.value(c) for c in kueue}
        prediction = predict(work.state, nominal)
    fleet = context.fleet() if context.fleet is not None else None
    fates: dict[str, tuple[list[WorkloadFate], list[WorkloadFate]]] = {}
    for cell in raised:
        if cell.system == KUEUE:
            fates[cell.tenant] = (
                prediction.admitted.get(cell.tenant, []),
                prediction.pending.get(cell.tenant, []),
            )
        elif fleet is not None:
            waiting = fleet.quota_waiting(cell.namespace or "")
            admitted, pending = predict_resource_quota(cell, work.value(cell), waiting)
            before = fates.get(cell.tenant, ([], []))
            fates[cell.tenant] = (before[0] + admitted, before[1] + pending)
    return _whatif_report(fates)


def _whatif_report(
    fates: dict[str, tuple[list[WorkloadFate], list[WorkloadFate]]],
) -> tuple[list[str], dict[str, Any]]:
    warnings: list[str] = []
    details: dict[str, Any] = {}
    for tenant, (admitted, pending) in sorted(fates.items()):
        details[tenant] = {
            "admitted": [f.as_dict() for f in admitted],
            "pending": [f.as_dict() for f in pending],
        }
        if admitted:
            names = ", ".join(f"{f.namespace}/{f.owner or f.name} ({f.gpus})" for f in admitted)
            warnings.append(f"{tenant}: would be admitted afterwards: {names}")
        for fate in pending:
            warnings.append(
                f"{tenant}: {fate.namespace}/{fate.owner or fate.name} ({fate.gpus} GPUs) stays "
                f"pending: {fate.reason}"
            )
    return warnings, details


def _target(items: list[Item], tenants: list[str]) -> str:
    if len(items) == 1 and items[0].op == TRANSFER:
        return f"tenant/{items[0].source} → tenant/{items[0].target}"
    return ", ".join(f"tenant/{t}" for t in tenants)


@dataclass(frozen=True)
class QuotaContext:
    """What every quota kind is given: the oversubscription ratio, the backend's cache (None:
    every read goes to the API server) and its fleet model (the workloads a ResourceQuota
    refused; None: no ResourceQuota what-if)."""

    oversubscription: float = 1.0
    cached: Callable[[], ClusterObjects] | None = None
    fleet: Callable[[], FleetModel | None] | None = None  # for ResourceQuota's what-if

    def state(self, cluster: ClusterClient, tenants: list[str]) -> QuotaState:
        if self.cached is None:
            return read_quota_state(cluster)
        return cached_quota_state(self.cached(), cluster, tenants)


def plan_items(
    action: str,
    items: list[Item],
    parameters: dict[str, Any],
    cluster: ClusterClient,
    context: QuotaContext,
) -> Plan:
    named = [t for i in items for t in ((i.tenant,) if i.op == SET else (i.source, i.target))]
    tenants = sorted(set(named))
    work = Working(context.state(cluster, tenants))
    for item in items:
        work.apply(item)
    _check_capacity(work, context.oversubscription)
    below, reclaimable = _below_use_warnings(work)
    after, whatif = _whatif(work, context)
    plan = Plan(
        action=action,
        target=_target(items, tenants),
        tenants=tenants,
        parameters=parameters,
        objects=_objects(work),
        warnings=below + after,
        details={"changes": _change_rows(work)},
        forecast={"whatif": whatif, "reclaimable": reclaimable},
    )
    if not plan.objects:
        plan.noop = "every quota already has the value asked for: nothing to change"
    return plan


class QuotaItemKind:
    """``quota.set`` or ``quota.transfer``: the parameters are one item (``op`` optional)."""

    def __init__(self, op: str, context: QuotaContext) -> None:
        self.op = op
        self.action = ACTIONS[op]
        self.context = context

    def plan(self, parameters: Mapping[str, Any], cluster: ClusterClient) -> Plan:
        item = parse_item(parameters, default_op=self.op)
        if item.op != self.op:
            raise ChangeInvalid(f"{self.action} takes op {self.op} (got {item.op})")
        return plan_items(self.action, [item], item.as_parameters(), cluster, self.context)


class QuotaChangeSet:
    """``quota.changeset``: ``{"items": [item, ...]}``, planned and applied as one change."""

    action = CHANGESET

    def __init__(self, context: QuotaContext) -> None:
        self.context = context

    def plan(self, parameters: Mapping[str, Any], cluster: ClusterClient) -> Plan:
        items = parse_items(parameters)
        normalised = {"items": [i.as_parameters() for i in items]}
        return plan_items(self.action, items, normalised, cluster, self.context)


def quota_kinds(context: QuotaContext) -> list[ChangeKind]:
    return [QuotaItemKind(SET, context), QuotaItemKind(TRANSFER, context), QuotaChangeSet(context)]
