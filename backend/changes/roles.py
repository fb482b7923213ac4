"""What each role may change: the change path's authorizer.

viewer: nothing. operator: changes whose tenants all lie in its scope (no scope: every tenant),
except moving quota between two tenants. admin: everything. A denial says which right is missing,
in words an operator can act on.
"""

from __future__ import annotations

from backend.changes.plan import Plan
from backend.changes.request import Actor

CROSS_TENANT_ACTIONS = frozenset({"quota.transfer"})


def _names(tenants: frozenset[str] | set[str] | list[str]) -> str:
    return ", ".join(sorted(tenants))


class RoleAuthorizer:
    """Decides from the actor's role and tenant scope and the plan's action and tenants."""

    def denial(self, actor: Actor, plan: Plan) -> str | None:
        if actor.role == "admin":
            return None
        if actor.role != "operator":
            return f"role {actor.role} may not change anything: {plan.action} needs role operator"
        tenants = set(plan.tenants)
        if plan.action in CROSS_TENANT_ACTIONS and len(tenants) > 1:
            return (
                f"role operator may not move quota between tenants {_names(tenants)}: "
                "that needs role admin"
            )
        if actor.tenants is None:
            return None
        scope = _names(actor.tenants) or "none"
        if not tenants:
            return (
                f"role operator may not change {plan.target}: it belongs to no tenant, and your "
                f"token's tenants are {scope}"
            )
        outside = tenants - actor.tenants
        if outside:
            return (
                f"role operator may not change tenant {_names(outside)}: your token's tenants "
                f"are {scope}"
            )
        return None
