"""The Audit screen keeps the chain's state in view: ``chain ✓ N records`` while the log holds,
``chain ✗ broken at #N`` and why once a row is edited behind its back — through the real app on
an audit log with every kind of outcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole.screens.audit import AuditRecordScreen, AuditScreen
from tests.support.audit import ENTRIES, HOSTILE_REASON, QUOTA_DIFF_SEQ, sample_audit_log, tamper
from tests.support.backend import FleetBackend
from tests.support.console import make_app, record_notifications, screen_text, wait_for


async def test_the_chain_state_shows_where_an_edited_row_breaks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FleetBackend()
    log = sample_audit_log(tmp_path)
    fake.source.audit = log
    app = make_app(fake)
    notes = record_notifications(app, monkeypatch)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen))
        audit = app.screen
        assert isinstance(audit, AuditScreen)
        await wait_for(pilot, lambda: len(audit.records) == len(ENTRIES), "every record")
        assert [r.seq for r in audit.records] == list(range(len(ENTRIES), 0, -1))
        assert "chain: checking…" in screen_text(app)  # the backend has not checked it yet

        await pilot.press("V")
        await wait_for(pilot, lambda: f"chain ✓ {len(ENTRIES)} records" in screen_text(app))

        tamper(log, 4, "nothing to see here")
        await pilot.press("V")
        broken = "chain ✗ broken at #4: record #4 was altered"
        await wait_for(pilot, lambda: broken in screen_text(app), "the broken chain")
        assert any(n.startswith(broken) for n in notes)

        # The backend keeps what it found: the screen opened again shows it without asking.
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, AuditScreen))
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen))
        await wait_for(pilot, lambda: "chain ✗ broken at #4" in screen_text(app), "kept state")


async def test_hostile_reasons_stay_text_and_a_record_shows_its_diff(tmp_path: Path) -> None:
    fake = FleetBackend()
    fake.source.audit = sample_audit_log(tmp_path)
    app = make_app(fake)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("5")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditScreen))
        audit = app.screen
        assert isinstance(audit, AuditScreen)
        await wait_for(pilot, lambda: len(audit.records) == len(ENTRIES), "every record")
        text = screen_text(app)
        assert "[bold red]not markup[/]" in text and "\x1b" not in text
        for outcome in ("succeeded", "failed", "denied", "invalid", "intent"):
            assert outcome in text

        app.push_screen(AuditRecordScreen(QUOTA_DIFF_SEQ))
        await wait_for(pilot, lambda: isinstance(app.screen, AuditRecordScreen))
        record = app.screen
        assert isinstance(record, AuditRecordScreen)
        await wait_for(pilot, lambda: record.data is not None, "the record")
        assert record.data is not None
        assert [(d.path, d.before, d.after) for d in record.data.diff] == [
            ("clusterqueue/team-a: spec.nominalQuota.h100", 8, 12),
            ("configmap/team-a/limits: data.gpus", "8", "12"),
            ("configmap/team-a/limits: data.note", None, "q4"),
        ]
        assert "approved by Zoë" in screen_text(app)

        app.push_screen(AuditRecordScreen(len(ENTRIES)))  # the hostile reason, in full
        await wait_for(pilot, lambda: "reason [bold red]not markup[/]" in screen_text(app))
        text = screen_text(app)
        assert "not a colour" in text and "\x1b" not in text
    assert HOSTILE_REASON not in text  # shown cleaned, never raw
