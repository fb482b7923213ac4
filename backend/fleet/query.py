"""Filtering, sorting and paging of the model's precomputed lists, cheap enough for every request.

A :class:`Table` holds one list of schema objects (tenants, workloads, nodes, GPUs) and, built
once per model: an exact-match index per filter (``tenant``, ``node``, ...), a lower-cased search
text per row for ``q``, sort orders computed on first use and then reused, and each row's JSON
bytes serialised on first use. A request then costs a dict lookup, a scan of the matches at most,
and the joining of one page's cached JSON.

Sorting: any scalar field of the row's schema, ``-field`` for descending; None always last;
strings in natural order ("node-2" before "node-10"), case-insensitively; ties keep the list's
default order. Cursors are opaque (base64 of the next offset).
"""

from __future__ import annotations

import base64
import binascii
import time
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

from backend.fleet.objects import natural_key

T = TypeVar("T", bound=BaseModel)
ORDER_KEPT_SECONDS = 60.0  # a sort asked this recently is made ready in the next model's table
SELECTIONS_KEPT = 32  # the latest distinct (filters, q, sort) answers a table keeps
_SCALARS = (str, int, float, bool, datetime)


class QueryError(ValueError):
    """A malformed query parameter; the API answers 422 with this message."""


@dataclass(frozen=True, slots=True)
class Filter(Generic[T]):
    """An exact-match filter: the row's key, how values are compared, the values allowed."""

    key: Callable[[T], Any]
    normalize: Callable[[str], str] = str.lower
    choices: Sequence[str] | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    """One page of positions in a table, with the total matches and the next page's cursor."""

    positions: list[int]
    total: int
    next: str | None


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The offset inside a cursor made by :func:`encode_cursor`; QueryError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        offset = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise QueryError(f"invalid cursor {cursor!r}") from None
    if prefix != "o" or offset < 0:
        raise QueryError(f"invalid cursor {cursor!r}")
    return offset


def sortable_fields(model: type[BaseModel]) -> list[str]:
    """The schema's fields holding one scalar value (str, number, bool, time, enum)."""
    out = []
    for name, info in model.model_fields.items():
        if _is_scalar(info.annotation):
            out.append(name)
    return out


def _is_scalar(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(args) == 1 and _is_scalar(args[0])
    return isinstance(annotation, type) and issubclass(annotation, (*_SCALARS, Enum))


def _sort_value(value: Any) -> Any:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        return natural_key(value)
    return value


class Table(Generic[T]):
    """A read-only list of schema rows with indexes, search text and cached orders and JSON."""

    def __init__(
        self,
        items: list[T],
        model: type[T],
        *,
        search: Callable[[T], Iterable[str | None]],
        filters: dict[str, Filter[T]] | None = None,
        previous: Table[T] | None = None,
    ) -> None:
        """``previous``: the table this one replaces (same search and filters). When few of its
        rows were replaced (the same row count, most rows the very same objects), its search
        text, filter indexes and JSON are copied and patched at those rows only."""
        self.items = items
        self.sort_fields = sortable_fields(model)
        self._filters = filters or {}
        self._orders: dict[tuple[str, bool], list[int]] = {}
        self._ranks: dict[tuple[str, bool], list[int]] = {}
        self._asked: dict[tuple[str, bool], float] = {}  # sort -> when a request last asked
        self._selections: dict[tuple[Any, ...], list[int]] = {}  # see ``_selection``
        changed = _replaced_rows(items, previous)
        if previous is not None:
            self._keep_orders(previous, changed)
        if previous is not None and changed is not None:
            self._patch(previous, changed, search)
            return
        self._search = [_search_text(search, item) for item in items]
        self._keys: dict[str, list[str | None]] = {}
        self._index: dict[str, dict[str, list[int]]] = {}
        for name, spec in self._filters.items():
            keys = [_normalized_key(spec, item) for item in items]
            index: dict[str, list[int]] = {}
            for position, key in enumerate(keys):
                if key is not None:
                    index.setdefault(key, []).append(position)
            self._keys[name], self._index[name] = keys, index
        self._json: list[bytes | None] = [None] * len(items)

    def _keep_orders(self, previous: Table[T], changed: list[int] | None) -> None:
        """The sort orders requests asked of ``previous`` lately, ready before any request asks
        this table: kept where no replaced row reads differently in the sorted field, computed
        here otherwise. A table is built off the event loop; an order of 8,000 rows costs
        milliseconds that would otherwise stall every request in flight behind the first one
        that asks for it after each model update."""
        # Copies first: the event loop may add to these while this runs in another thread.
        asked, orders, ranks = dict(previous._asked), dict(previous._orders), dict(previous._ranks)
        recent = time.monotonic() - ORDER_KEPT_SECONDS
        for key, at in asked.items():
            if at < recent:
                continue
            self._asked[key] = at
            order, field = orders.get(key), key[0]
            if (
                order is not None
                and changed is not None
                and all(
                    getattr(self.items[i], field) == getattr(previous.items[i], field)
                    for i in changed
                )
            ):
                self._orders[key] = order
                if key in ranks:
                    self._ranks[key] = ranks[key]
            elif key in ranks:
                self._rank(key)
            else:
                self._order(key)

    def _patch(
        self, previous: Table[T], changed: list[int], search: Callable[[T], Iterable[str | None]]
    ) -> None:
        """Copy ``previous``'s per-row data and redo it at the ``changed`` positions. Position
        lists are replaced, never mutated: ``previous`` may still be read."""
        self._search = list(previous._search)
        self._json = list(previous._json)
        for i in changed:
            self._search[i] = _search_text(search, self.items[i])
            self._json[i] = None
        self._keys, self._index = {}, {}
        for name, spec in self._filters.items():
            keys, index = list(previous._keys[name]), dict(previous._index[name])
            moved: dict[str, tuple[set[int], set[int]]] = {}  # key -> positions out, in
            for i in changed:
                old, new = keys[i], _normalized_key(spec, self.items[i])
                if old != new:
                    keys[i] = new
                    if old is not None:
                        moved.setdefault(old, (set(), set()))[0].add(i)
                    if new is not None:
                        moved.setdefault(new, (set(), set()))[1].add(i)
            for key, (out, into) in moved.items():
                positions = sorted({*index.get(key, ()), *into} - out)
                if positions:
                    index[key] = positions
                else:
                    index.pop(key, None)
            self._keys[name], self._index[name] = keys, index

    def __len__(self) -> int:
        return len(self.items)

    def select(
        self,
        *,
        filters: dict[str, str | None] | None = None,
        q: str | None = None,
        sort: str | None = None,
        offset: int = 0,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Selection:
        """The positions of one page; QueryError for unknown sort fields, filters or cursors."""
        if cursor:
            offset = decode_cursor(cursor)
        order_key = self._order_key(sort)
        if order_key is not None:
            self._asked[order_key] = time.monotonic()
        matches = self._selection(filters or {}, q, order_key)
        total = len(self.items) if matches is None else len(matches)
        end = offset + limit
        page = list(range(offset, min(end, total))) if matches is None else matches[offset:end]
        return Selection(page, total, encode_cursor(end) if end < total else None)

    def _selection(
        self, filters: dict[str, str | None], q: str | None, order_key: tuple[str, bool] | None
    ) -> list[int] | None:
        """The positions matching ``filters`` and ``q`` in ``order_key``'s order (None: every
        row, in the default order). Kept for the latest distinct queries: consoles refreshing
        the same view, and paging through it, ask this table the same query again and again,
        and a filtered, sorted answer of thousands of rows costs milliseconds each time."""
        key = (tuple(sorted((k, v) for k, v in filters.items() if v)), q or None, order_key)
        kept = self._selections.get(key)
        if kept is not None:
            return kept
        matches = self._matches(filters, q)
        if order_key is not None:
            if matches is None:
                matches = self._order(order_key)
            else:
                rank = self._rank(order_key)
                matches.sort(key=rank.__getitem__)
        if matches is not None:
            if len(self._selections) >= SELECTIONS_KEPT:
                del self._selections[next(iter(self._selections))]  # the oldest
            self._selections[key] = matches
        return matches

    def page_json(self, **query: Any) -> bytes:
        """The page as the JSON of a ``Page``, joined from each row's cached JSON."""
        selection = self.select(**query)
        items = b",".join(self.item_json(i) for i in selection.positions)
        tail = b'],"total":%d,"next":%s}' % (selection.total, orjson.dumps(selection.next))
        return b'{"items":[' + items + tail

    def item_json(self, position: int) -> bytes:
        cached = self._json[position]
        if cached is None:
            cached = self.items[position].__pydantic_serializer__.to_json(self.items[position])
            self._json[position] = cached
        return cached

    def _order_key(self, sort: str | None) -> tuple[str, bool] | None:
        if not sort:
            return None
        descending = sort.startswith("-")
        field = sort[1:] if descending else sort
        if field not in self.sort_fields:
            choices = ", ".join(self.sort_fields)
            raise QueryError(f"unknown sort field {field!r}; one of: {choices}")
        return field, descending

    def _matches(self, filters: dict[str, str | None], q: str | None) -> list[int] | None:
        """Positions matching every filter and ``q``, in default order; None = all rows."""
        wanted: list[tuple[str, str]] = []
        for name, value in filters.items():
            if value is None or value == "":
                continue
            spec = self._filters.get(name)
            if spec is None:
                raise QueryError(f"unknown filter {name!r}")
            key = spec.normalize(value)
            if spec.choices is not None and key not in {spec.normalize(c) for c in spec.choices}:
                raise QueryError(f"unknown {name} {value!r}; one of: {', '.join(spec.choices)}")
            wanted.append((name, key))
        matches: list[int] | None = None
        if wanted:
            hits = [(self._index[name].get(key, []), name, key) for name, key in wanted]
            hits.sort(key=lambda h: len(h[0]))
            first, *rest = hits
            matches = [
                i for i in first[0] if all(self._keys[name][i] == key for _, name, key in rest)
            ]
        if q:
            needle = q.lower()
            candidates = range(len(self.items)) if matches is None else matches
            matches = [i for i in candidates if needle in self._search[i]]
        return matches

    def _order(self, key: tuple[str, bool]) -> list[int]:
        order = self._orders.get(key)
        if order is None:
            field, descending = key
            values = [getattr(item, field) for item in self.items]
            known = [i for i, v in enumerate(values) if v is not None]
            unknown = [i for i, v in enumerate(values) if v is None]
            sort_values = {i: _sort_value(values[i]) for i in known}
            known.sort(key=sort_values.__getitem__, reverse=descending)
            order = known + unknown
            self._orders[key] = order
        return order

    def _rank(self, key: tuple[str, bool]) -> list[int]:
        rank = self._ranks.get(key)
        if rank is None:
            rank = [0] * len(self.items)
            for place, position in enumerate(self._order(key)):
                rank[position] = place
            self._ranks[key] = rank
        return rank


def _replaced_rows(items: list[Any], previous: Table[Any] | None) -> list[int] | None:
    """The positions whose row is not the very object ``previous`` has there; None when the
    tables differ in length or in more than an eighth of their rows (then patching a copy would
    cost more than building anew)."""
    if previous is None or len(previous.items) != len(items):
        return None
    changed = [i for i, (a, b) in enumerate(zip(items, previous.items, strict=True)) if a is not b]
    return changed if len(changed) <= len(items) // 8 else None


def _search_text(search: Callable[[Any], Iterable[str | None]], item: Any) -> str:
    return "\n".join(s for s in search(item) if s).lower()


def _normalized_key(spec: Filter[Any], item: Any) -> str | None:
    value = spec.key(item)
    if value is None:
        return None
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        value = "true" if value else "false"
    return spec.normalize(str(value))
