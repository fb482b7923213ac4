"""The quota review's advice: grant quota to a tenant whose workloads wait for it, reclaim quota a
tenant has not needed for a week.

Advice only: the review shows it next to each row, and nothing happens unless the operator
accepts it (it then becomes a staged change like any other, planned and confirmed).

- **grant N** when workloads are pending for want of quota: N is the shortfall, the GPUs in use
  plus the GPUs pending beyond the nominal quota, at most the GPUs pending (a tenant whose pending
  work fits its quota waits for something else: capacity, or the cohort's lending).
- **reclaim N** when the quota stands above both the GPUs in use now and the 7-day peak of the
  GPUs it held: N is that margin. Without a usage history there is no peak, and no reclaim.

A tenant with work pending is never told to give quota back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from backend.schemas import QuotaRow


class Advice(StrEnum):
    GRANT = "grant"
    RECLAIM = "reclaim"


@dataclass(frozen=True)
class Suggestion:
    """Change a row's nominal quota by ``gpus`` (up for a grant, down for a reclaim)."""

    advice: Advice
    gpus: int
    why: str

    def nominal_after(self, row: QuotaRow) -> int:
        """The row's nominal quota once the advice is taken."""
        return row.nominal + (self.gpus if self.advice == Advice.GRANT else -self.gpus)

    def __str__(self) -> str:
        return f"{self.advice.value} {self.gpus}: {self.why}"


def suggest(row: QuotaRow) -> Suggestion | None:
    """The advice for one tenant × model, or None when its quota fits its use."""
    shortfall = min(row.pending, row.used + row.pending - row.nominal)
    if shortfall > 0:
        why = f"{row.pending} GPUs of workloads pending"
        if shortfall < row.pending:
            why += f", {shortfall} beyond the quota"
        return Suggestion(Advice.GRANT, shortfall, why)
    if row.pending > 0:
        return None
    week = row.usage_7d
    if not week.samples or week.allocated_peak is None:
        return None
    margin = row.nominal - max(row.used, week.allocated_peak)
    if margin <= 0:
        return None
    return Suggestion(
        Advice.RECLAIM,
        margin,
        f"{row.nominal - row.used} unused now, 7-day peak {week.allocated_peak} of {row.nominal}",
    )
