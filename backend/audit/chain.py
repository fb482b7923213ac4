"""The hash chain that makes the audit log tamper-evident.

``hash_i = SHA-256(hash_{i-1} ‖ canonical JSON of record i)``, with the all-zero hash before the
first record. The canonical JSON is the record's fields (its own ``hash`` excluded, its sequence
number and previous hash included), keys sorted, no insignificant whitespace, UTF-8: editing any
field, deleting, inserting or reordering a row breaks the chain at that row. Truncating the newest
rows leaves a valid chain; the head kept outside the database catches that.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

GENESIS_HASH = "0" * 64

# Every field the hash covers, in the record's own words. A new field must be added here (and to
# the table) in the same migration, or old records would no longer verify.
CHAINED_FIELDS = (
    "seq",
    "change_id",
    "stage",
    "at",
    "actor",
    "role",
    "source_address",
    "ssh_client",
    "user_agent",
    "action",
    "target",
    "tenants",
    "reason",
    "parameters",
    "before",
    "after",
    "outcome",
    "error",
    "resource_versions",
    "prev_hash",
)


JSON_FIELDS = frozenset({"tenants", "parameters", "before", "after", "resource_versions"})
SORTED_FIELDS = tuple(sorted(CHAINED_FIELDS))


def stored_json(value: Any) -> str:
    """How a JSON-valued field is stored: its canonical JSON text."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def canonical_json(fields: dict[str, Any]) -> bytes:
    """The bytes that are hashed: exactly ``CHAINED_FIELDS``, keys sorted, compact UTF-8."""
    return orjson.dumps(
        {name: fields[name] for name in CHAINED_FIELDS}, option=orjson.OPT_SORT_KEYS
    )


def record_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """The hex SHA-256 of the previous hash's bytes followed by the record's canonical JSON."""
    digest = hashlib.sha256(bytes.fromhex(prev_hash))
    digest.update(canonical_json(fields))
    return digest.hexdigest()


def stored_row_hash(prev_hash: str, values: tuple[Any, ...]) -> str:
    """``record_hash`` of a stored row without parsing its JSON fields back: ``values`` are the
    ``SORTED_FIELDS`` as stored, and a JSON field's stored text is already its canonical JSON,
    so it is embedded as it is. (Verifying a million records spends its time here.)"""
    fields = dict(zip(SORTED_FIELDS, values, strict=True))
    for name in JSON_FIELDS:
        fields[name] = orjson.Fragment(fields[name])
    digest = hashlib.sha256(bytes.fromhex(prev_hash))
    digest.update(orjson.dumps(fields))  # already in key order
    return digest.hexdigest()


def canonical_json_sql(dialect: str) -> str:
    """SQL that builds a stored row's canonical JSON in the database (one formatting call), so
    that verifying reads one text per row instead of twenty fields. The database's JSON string
    escaping is not promised to be orjson's byte for byte, so a hash that does not match this
    text is checked again with ``stored_row_hash`` before the record is called altered."""
    template = "{" + ",".join(f'"{name}":%s' for name in SORTED_FIELDS) + "}"
    values = []
    for name in SORTED_FIELDS:
        if name in JSON_FIELDS or name == "seq":
            values.append(f'"{name}"')
        elif dialect == "postgresql":
            values.append(f"coalesce(to_json(\"{name}\")::text, 'null')")
        else:
            values.append(f'json_quote("{name}")')
    function = "format" if dialect == "postgresql" else "printf"
    return f"{function}('{template}', {', '.join(values)})"
