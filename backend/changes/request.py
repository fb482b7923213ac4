"""Who asks for a change, and the ways a change is refused before anything is written."""

from __future__ import annotations

from dataclasses import dataclass

from backend.changes.plan import Plan


@dataclass(frozen=True)
class Actor:
    """Who asks, and from where. ``tenants`` None: every tenant."""

    name: str
    role: str
    tenants: frozenset[str] | None = None
    source_address: str | None = None
    ssh_client: str | None = None
    user_agent: str | None = None


class ChangeInvalid(Exception):
    """The request cannot be planned; nothing was changed."""


class ChangeDenied(Exception):
    """The actor may not do this; nothing was changed."""


class StalePlan(Exception):
    """The cluster changed since the plan the operator confirmed; ``plan`` is the new one."""

    def __init__(self, plan: Plan) -> None:
        super().__init__("the cluster changed since the plan was made: review the new plan")
        self.plan = plan
