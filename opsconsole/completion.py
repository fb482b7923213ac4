"""Tab completion of names (tenants, nodes) asked from the backend, shared by the ``:`` command
line and the dialogs that take a tenant name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

NameLookup = Callable[[str, str], Awaitable[list[str]]]
"""``lookup(kind, prefix)``: names of ``kind`` ("tenant" or "node") starting with ``prefix``."""


def longest_prefix(prefix: str, candidates: list[str]) -> tuple[str, bool]:
    """The longest common prefix of ``candidates`` (at least ``prefix``), and if it is unique."""
    if not candidates:
        return prefix, False
    if len(candidates) == 1:
        return candidates[0], True
    shortest = min(candidates, key=len)
    for i, char in enumerate(shortest):
        if any(candidate[i] != char for candidate in candidates):
            return shortest[:i] or prefix, False
    return shortest, False


async def complete_name(kind: str, prefix: str, lookup: NameLookup) -> tuple[str, list[str]]:
    """``prefix`` extended as far as the names of ``kind`` that start with it agree, and those
    names (sorted)."""
    names = sorted({name for name in await lookup(kind, prefix) if name.startswith(prefix)})
    done, _ = longest_prefix(prefix, names)
    return done, names
