"""Resource quantities (``k8s.io/apimachinery/pkg/api/resource``), parsed as the API server does.

A quantity is a signed decimal number followed by at most one suffix: a binary SI one (``Ki`` ..
``Ei``), a decimal SI one (``n u m k M G T P E``) or a decimal exponent (``e3``, ``E-2``). ``"1E"``
is one exa, ``"1E3"`` is a thousand. Values are exact fractions, so ``"100m"`` is 1/10 and
``"0.1"`` equals it; like the server, anything finer than a nano unit is rounded away from zero,
binary quantities are capped at 2^63-1, and an empty number (``"-"``, ``"Ki"``) is zero.
``Quantity.Value()`` rounds up, so ``"500m"`` GPUs count as one.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<whole>[0-9]*)(?:\.(?P<fraction>[0-9]*))?"
    r"(?:(?P<binary>[KMGTPE]i)|[eE](?P<exponent>[+-]?[0-9]+)|(?P<decimal>[numkMGTPE]?))",
    re.ASCII,
)
_NANO = 10**9
_MAX_BINARY = 2**63 - 1
# The API server's own wording for a malformed quantity.
FORMAT_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


@functools.lru_cache(maxsize=4096)
def parse_quantity(text: str) -> Fraction:
    """The value of a quantity string; :class:`QuantityError` if it is not one.

    Cached: a fleet repeats the same few quantity strings thousands of times.
    """
    match = _QUANTITY.fullmatch(text)
    if not text or match is None:
        raise QuantityError(FORMAT_ERROR)
    fraction = match["fraction"] or ""
    magnitude = Fraction(int(match["whole"] + fraction or "0"), 10 ** len(fraction))
    if match["binary"] is not None:
        magnitude = min(magnitude * 2 ** _BINARY[match["binary"]], Fraction(_MAX_BINARY))
    elif match["exponent"] is not None:
        magnitude *= Fraction(10) ** int(match["exponent"])
    else:
        magnitude *= Fraction(10) ** _DECIMAL[match["decimal"]]
    if (magnitude * _NANO).denominator != 1:
        magnitude = Fraction(math.ceil(magnitude * _NANO), _NANO)
    return -magnitude if match["sign"] == "-" else magnitude


def quantity_value(value: object) -> Fraction | None:
    """A quantity field as found in an object (a string, or a bare number from YAML/JSON) as an
    exact value; None when it is missing or malformed."""
    if isinstance(value, str):
        try:
            return parse_quantity(value)
        except QuantityError:
            return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float) and math.isfinite(value):
        return Fraction(value)
    return None


def quantity_ceil(value: object) -> int | None:
    """``Quantity.Value()``: the value rounded up to an integer (GPU and pod counts); None when
    missing or malformed."""
    if type(value) is str:
        return _ceil_of_text(value)
    if type(value) is int or value is None:
        return value
    exact = quantity_value(value)
    return None if exact is None else math.ceil(exact)


@functools.lru_cache(maxsize=4096)
def _ceil_of_text(text: str) -> int | None:
    """Cached, as counts are read from every pod and node of a large fleet."""
    try:
        return math.ceil(parse_quantity(text))
    except QuantityError:
        return None
