"""Resource quantities parse as the API server parses them: exact values, one suffix, its
rounding and its odd corners."""

from __future__ import annotations

from fractions import Fraction

import pytest

from backend.k8s.quantity import (
    FORMAT_ERROR,
    QuantityError,
    parse_quantity,
    quantity_ceil,
    quantity_value,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("8", 8),
        ("+2", 2),
        ("-3", -3),
        ("100m", Fraction(1, 10)),
        ("0.1", Fraction(1, 10)),
        ("1.5", Fraction(3, 2)),
        (".5", Fraction(1, 2)),
        ("5.", 5),
        ("1Ki", 1024),
        ("1.5Gi", 3 * 2**29),
        ("-1Mi", -(2**20)),
        ("2e3", 2000),
        ("1E3", 1000),
        ("1e-3", Fraction(1, 1000)),
        ("1e+3", 1000),
        ("1E", 10**18),
        ("2k", 2000),
        ("3M", 3 * 10**6),
        ("250u", Fraction(1, 4000)),
        ("7n", Fraction(7, 10**9)),
    ],
)
def test_values(text: str, value: Fraction | int) -> None:
    assert parse_quantity(text) == value


def test_server_rounding_and_limits() -> None:
    """Below a nano unit rounds away from zero; binary quantities stop at 2^63-1."""
    assert parse_quantity("0.1n") == Fraction(1, 10**9)
    assert parse_quantity("-0.1n") == Fraction(-1, 10**9)
    assert parse_quantity("1.0000000001") == 1 + Fraction(1, 10**9)
    assert parse_quantity("8Ei") == 2**63 - 1
    assert parse_quantity("8E") == 8 * 10**18


def test_an_empty_number_is_zero() -> None:
    """The server's scanner reads a missing number as zero."""
    assert parse_quantity("-") == 0
    assert parse_quantity("Ki") == 0
    assert parse_quantity(".") == 0


@pytest.mark.parametrize(
    "text", ["", " 1", "1 ", "1e", "1e3k", "1K", "1ki", "1Kii", "1.2.3", "Ee3", "one", "1m1"]
)
def test_malformed(text: str) -> None:
    with pytest.raises(QuantityError) as err:
        parse_quantity(text)
    assert str(err.value) == FORMAT_ERROR


def test_field_values() -> None:
    """Fields hold strings, or bare numbers when a manifest was written by hand."""
    assert quantity_value("500m") == Fraction(1, 2)
    assert quantity_value(4) == 4 and quantity_value(0.25) == Fraction(1, 4)
    bad_values: tuple[object, ...] = (None, True, "junk", float("nan"), float("inf"), [], {})
    for bad in bad_values:
        assert quantity_value(bad) is None


def test_ceil_is_quantity_value() -> None:
    """``Quantity.Value()`` rounds up: half a GPU asks for one."""
    assert quantity_ceil("500m") == 1
    assert quantity_ceil("2") == 2 and quantity_ceil(3) == 3
    assert quantity_ceil("1k") == 1000
    assert quantity_ceil("-1.5") == -1
    assert quantity_ceil("junk") is None and quantity_ceil(None) is None
