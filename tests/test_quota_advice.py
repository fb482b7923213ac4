"""The quota review's advice at its boundaries: a grant only beyond the quota, a reclaim only above
both the use now and the 7-day peak."""

from __future__ import annotations

from backend.schemas import QuotaMode, QuotaRow, UsageWindow
from opsconsole.quota_advice import Advice, Suggestion, suggest


def row(nominal: int, used: int = 0, pending: int = 0, peak: int | None = None) -> QuotaRow:
    week = UsageWindow() if peak is None else UsageWindow(samples=2016, allocated_peak=peak)
    return QuotaRow(
        tenant="team-a",
        system=QuotaMode.KUEUE,
        gpu_model="NVIDIA-H100-80GB-HBM3",
        flavor="h100",
        namespaces=["team-a"],
        nominal=nominal,
        used=used,
        pending=pending,
        usage_7d=week,
    )


def test_pending_work_that_fits_the_quota_asks_for_nothing() -> None:
    assert suggest(row(8, used=6, pending=2, peak=8)) is None  # used + pending == nominal


def test_one_gpu_beyond_the_quota_is_a_grant_of_one() -> None:
    advice = suggest(row(8, used=6, pending=3, peak=8))
    assert advice == Suggestion(Advice.GRANT, 1, "3 GPUs of workloads pending, 1 beyond the quota")
    assert str(advice) == "grant 1: 3 GPUs of workloads pending, 1 beyond the quota"
    assert advice.nominal_after(row(8)) == 9


def test_a_grant_is_never_more_than_what_is_pending() -> None:
    advice = suggest(row(8, used=10, pending=2))  # borrowing 2 already, 2 more waiting
    assert advice is not None and (advice.advice, advice.gpus) == (Advice.GRANT, 2)
    assert str(advice) == "grant 2: 2 GPUs of workloads pending"


def test_quota_at_the_weekly_peak_is_not_reclaimed() -> None:
    assert suggest(row(8, used=3, peak=8)) is None


def test_one_gpu_above_the_peak_and_the_use_is_reclaimed() -> None:
    advice = suggest(row(8, used=3, peak=7))
    assert advice == Suggestion(Advice.RECLAIM, 1, "5 unused now, 7-day peak 7 of 8")
    assert advice.nominal_after(row(8)) == 7


def test_the_use_now_counts_when_it_is_above_the_recorded_peak() -> None:
    assert suggest(row(8, used=8, peak=5)) is None
    advice = suggest(row(8, used=5, peak=3))
    assert advice is not None and str(advice) == "reclaim 3: 3 unused now, 7-day peak 3 of 8"


def test_no_history_no_reclaim() -> None:
    assert suggest(row(8, used=0)) is None


def test_a_tenant_with_work_pending_is_never_told_to_give_quota_back() -> None:
    assert suggest(row(8, used=0, pending=1, peak=0)) is None
