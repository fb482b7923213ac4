"""Why there is no fleet data yet, as a client can act on it: still syncing, building the model,
or held up by the API server (refused credentials told apart from other errors)."""

from __future__ import annotations

from collections.abc import Sequence

from backend.schemas import KindFreshness, SyncProgress, SyncReason

PENDING = "pending"
UNAUTHORIZED = "HTTP 401"


def sync_progress(kinds: Sequence[KindFreshness]) -> SyncProgress:
    """The progress of the first sync from each watched kind's freshness: the kinds listed, and
    the API server's answer to the ones still pending when it was an error."""
    pending = [k for k in kinds if k.state == PENDING]
    errors = sorted({k.error for k in pending if k.error})
    reason = SyncReason.BUILDING if not pending else SyncReason.SYNCING
    if errors:
        refused = any(e.startswith(UNAUTHORIZED) for e in errors)
        reason = SyncReason.CLUSTER_UNAUTHORIZED if refused else SyncReason.CLUSTER_ERROR
    return SyncProgress(
        reason=reason,
        kinds_listed=len(kinds) - len(pending),
        kinds_total=len(kinds),
        cluster_error="; ".join(errors) or None,
    )
