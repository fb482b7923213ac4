"""Who a bearer token speaks for, as the API asks it on every request.

Lookups go to the database in a worker thread; a found token is kept in memory for
``cache_seconds``, so that a busy console costs the database one query per token every few
seconds. A revocation made in the database therefore takes effect within that time; expiry is
checked on every request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from backend.identity.tokens import Identity, TokenStore, token_hash

MAX_CACHED = 10_000


class NotAuthenticated(Exception):
    """The token is unknown, revoked or expired; the message says which."""


class UnknownToken(NotAuthenticated):
    """No such token was ever issued (what guessing produces)."""


@dataclass(frozen=True)
class _Cached:
    identity: Identity
    at: float


class TokenAuthenticator:
    def __init__(
        self,
        store: TokenStore,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: dict[str, _Cached] = {}

    def seen(self, token: str) -> bool:
        """Whether ``token`` was found in the database before (and is still remembered)."""
        return token_hash(token) in self._cache

    async def identify(self, token: str) -> Identity:
        """The token's identity; ``NotAuthenticated`` when it may not be used."""
        key = token_hash(token)
        cached = self._cache.get(key)
        if cached is not None and self.clock() - cached.at < self.cache_seconds:
            identity: Identity | None = cached.identity
        else:
            identity = await asyncio.to_thread(self.store.lookup, token)
            if identity is not None:
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
                self._cache[key] = _Cached(identity, self.clock())
        if identity is None:
            raise UnknownToken("the token is not known")
        if identity.revoked is not None:
            raise NotAuthenticated(f"the token was revoked at {identity.revoked}")
        if identity.expired():
            raise NotAuthenticated(f"the token expired at {identity.expires}")
        return identity
