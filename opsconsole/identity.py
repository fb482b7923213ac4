"""Who the backend says the operator is, and which changes that lets the console offer.

The backend decides every change (and answers 403 when it refuses); the console only avoids
offering what would be refused, and says why, so an operator is not led into a dead end during
an incident. Without an answer from the backend (an older one has no ``/whoami``) the console
offers everything and lets the backend decide.
"""

from __future__ import annotations

from backend.schemas import Whoami

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"


def change_refusal(identity: Whoami | None, tenant: str | None) -> str | None:
    """Why ``identity`` may not change what belongs to ``tenant``, or ``None`` when it may (or
    when the console cannot tell: the backend decides)."""
    if identity is None:
        return None
    if identity.role == VIEWER:
        return "role viewer cannot change anything"
    if identity.role == OPERATOR and identity.tenants is not None:
        if not identity.tenants:
            return "role operator with no tenants cannot change anything"
        if tenant is None or tenant not in identity.tenants:
            scope = ", ".join(identity.tenants)
            whose = f"tenant {tenant}" if tenant else "a workload of no tenant"
            return f"role operator may change only tenants {scope}, not {whose}"
    return None
