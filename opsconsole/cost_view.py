"""How cost showback reads, in the console and on the command line: money, idle times, and which
idle GPUs a reclaim proposes to give back.

A cost the backend could not price (no price for the GPU model in its settings) reads "no price",
never 0; an idle time that spans the whole utilization history kept reads "≥" (it may be longer).
"""

from __future__ import annotations

from rich.text import Text

from backend.schemas import CostReport, IdleGpus
from opsconsole.format import duration_str

NO_PRICE = "no price"


def money_str(value: float | None) -> str:
    """``1,234.50``, or ``no price``."""
    return NO_PRICE if value is None else f"{value:,.2f}"


def money(value: float | None) -> Text:
    return Text(NO_PRICE, style="dim") if value is None else Text(money_str(value))


def idle_for(group: IdleGpus) -> str:
    """``12m``, ``≥15m`` (the whole history kept), or ``-`` (unknown)."""
    if group.idle_seconds is None:
        return "-"
    shown = duration_str(group.idle_seconds)
    return f"≥{shown}" if group.idle_at_least else shown


def reclaim_target(report: CostReport, tenant: str) -> IdleGpus | None:
    """The tenant's idle GPUs a reclaim takes back first: the most GPUs idle against a quota."""
    groups = [g for g in report.idle if g.tenant == tenant and g.quota_model is not None]
    return max(groups, key=lambda g: (g.gpus, g.cost_per_day or 0.0), default=None)


def cost_summary(report: CostReport) -> Text:
    """``cost 24h 1,234.50 · 3 idle GPUs 324.00/day``: a line for the overview (the idle GPUs'
    cost left out where none of them has a price)."""
    out = Text(f"cost {report.since} ")
    out.append_text(money(report.cost))
    if report.unpriced_gpu_hours:
        out.append(f" +{report.unpriced_gpu_hours:,.0f} GPU-h unpriced", style="dim")
    if report.idle_gpus:
        out.append(f" · {report.idle_gpus} idle GPUs", style="yellow")
        if report.idle_cost_per_day is not None:
            out.append(f" {money_str(report.idle_cost_per_day)}/day")
    return out
