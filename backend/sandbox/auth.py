"""Who a request is from: bearer tokens, then impersonation, as kube-apiserver authenticates.

Tokens are static (the admin's, written to the admin kubeconfig) or issued for a ServiceAccount;
a ServiceAccount token stops working when its ServiceAccount is deleted, as a bound token does.
No token, or an unknown one, is 401 with the ``Status`` of apierrors.NewUnauthorized
("Unauthorized", no details). Only ``/healthz``, ``/livez`` and ``/readyz`` answer anonymous
requests (what a cluster with anonymous authentication limited to those endpoints does).

``Impersonate-User`` / ``Impersonate-Group`` act as another user for users allowed the
``impersonate`` verb on ``users``, ``groups`` or ``serviceaccounts`` (k8s.io/apiserver's
filters/impersonation.go): an impersonated ServiceAccount gets its groups unless groups are given,
everyone impersonated gets ``system:authenticated``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

from backend.sandbox.rbac import (
    AUTHENTICATED,
    SERVICE_ACCOUNT_PREFIX,
    Attributes,
    Authorizer,
    User,
    service_account_groups,
    service_account_user,
)
from backend.sandbox.store import SERVICE_ACCOUNT, ApiError, Store

ANONYMOUS_PATHS = frozenset({"/healthz", "/livez", "/readyz"})


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


class Authenticator:
    """Bearer tokens → users."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._static: dict[str, User] = {}
        self._service_accounts: dict[str, tuple[str, str]] = {}

    def add_token(self, token: str, user: User) -> None:
        self._static[token] = user

    def service_account_token(self, namespace: str, name: str) -> str:
        """A new token for ServiceAccount ``namespace/name`` (valid while it exists)."""
        token = secrets.token_urlsafe(32)
        self._service_accounts[token] = (namespace, name)
        return token

    def authenticate(self, authorization: str | None) -> User | None:
        """The user an ``Authorization: Bearer`` header names, or ``None``."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        user = self._static.get(token)
        if user is not None:
            return user
        account = self._service_accounts.get(token)
        if account is None or self.store.find(SERVICE_ACCOUNT, *account) is None:
            return None
        namespace, name = account
        return User(
            service_account_user(namespace, name),
            (*service_account_groups(namespace), AUTHENTICATED),
        )


def _split_service_account(name: str) -> tuple[str, str] | None:
    if not name.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, sep, account = name[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    return (namespace, account) if sep and namespace and account else None


def impersonate(
    user: User, headers: Mapping[str, str], groups: Sequence[str], authorizer: Authorizer
) -> User:
    """The user to act as: ``user`` itself, or whom the ``Impersonate-*`` headers name (403 when
    ``user`` may not impersonate them)."""
    wanted = headers.get("impersonate-user")
    if not wanted:
        if groups:
            raise ApiError.bad_request(
                f"requested impersonation of groups {list(groups)} without impersonating a user"
            )
        return user
    account = _split_service_account(wanted)
    if account is not None:
        checks = [
            Attributes("impersonate", True, "", "serviceaccounts", "", account[0], account[1])
        ]
    else:
        checks = [Attributes("impersonate", True, "", "users", name=wanted)]
    checks += [Attributes("impersonate", True, "", "groups", name=g) for g in groups]
    for attrs in checks:
        authorizer.check(user, attrs)
    result = list(groups)
    if account is not None and not groups:
        result += service_account_groups(account[0])
    if wanted != "system:anonymous" and AUTHENTICATED not in result:
        result.append(AUTHENTICATED)
    return User(wanted, tuple(result))
