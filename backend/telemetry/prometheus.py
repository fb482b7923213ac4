"""Prometheus text format -> flat samples, with the reference parser and a fast path.

The reference is prometheus_client's own parser (``text_string_to_metric_families``). It costs
tens of microseconds per line, too much for a 1,000-node fleet scraped every few seconds, so
``parse_samples`` first tries a fast path that understands only the plain lines exporters write
(``name{label="value",...} value [timestamp]``, ``# HELP``/``# TYPE``, blank lines). If any line
is unusual (escapes in label values, exemplars, odd spacing, ``__name__`` labels...), the whole
text goes to the reference parser instead, so both paths always agree: the fast path accepts a
strict subset of what the reference accepts and reads it the same way.

Sample names are reported as the text writes them, except that the reference parser appends
``_total`` to the samples of a ``counter`` family; callers that look names up should accept an
optional ``_total`` suffix (see ``base_name``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from prometheus_client.parser import text_string_to_metric_families


class PromSample(NamedTuple):
    """One sample. ``labels`` may be shared between samples of a parse: do not mutate it."""

    name: str
    labels: dict[str, str]
    value: float


class PromParseError(ValueError):
    """The text is not Prometheus text exposition format."""


_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[ \t]*[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"[ \t]*'
_VALUE = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|NaN)"
# The label list is captured loosely and validated with _LABELS_RE once per distinct string.
_SAMPLE_RE = re.compile(rf"({_NAME})(?:\{{(.*)\}})? +({_VALUE})(?: +-?[0-9]+)?")
_LABELS_RE = re.compile(rf"(?:{_LABEL},)*(?:{_LABEL})?")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')
_TYPES = "counter|gauge|summary|histogram|gaugehistogram|unknown|info|stateset|untyped"
_COMMENT_RE = re.compile(rf"# (?:HELP {_NAME}(?: .*)?|TYPE (?!_total ){_NAME} (?:{_TYPES}))")


def base_name(name: str) -> str:
    """The sample name without the ``_total`` suffix the reference parser adds to counters."""
    return name.removesuffix("_total")


def parse_samples(text: str, *, fast: bool = True) -> list[PromSample]:
    """All samples in ``text``; raises PromParseError when it is not the text format."""
    if fast:
        samples = parse_samples_fast(text)
        if samples is not None:
            return samples
    return parse_samples_reference(text)


def parse_samples_reference(text: str) -> list[PromSample]:
    """Samples read by prometheus_client's parser (slow, lenient, the reference)."""
    try:
        return [
            PromSample(s.name, s.labels, _as_float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
    except (ValueError, IndexError, TypeError) as exc:
        raise PromParseError(f"not Prometheus text format: {exc or type(exc).__name__}") from exc


def parse_samples_fast(text: str) -> list[PromSample] | None:
    """Samples of a text made only of plain lines, or None if any line needs the reference.

    Exporters repeat the same label set for every metric of a GPU, so label sets are parsed
    once per distinct string and the dict is shared.
    """
    samples: list[PromSample] = []
    label_cache: dict[str, dict[str, str]] = {}
    for line in _lines(text):
        if line.startswith("#"):
            if _COMMENT_RE.fullmatch(line) is None:
                return None
            continue
        match = _SAMPLE_RE.fullmatch(line)
        if match is None:
            return None
        name, label_text, value = match.groups()
        labels = label_cache.get(label_text or "")
        if labels is None:
            labels = _parse_labels(label_text or "")
            if labels is None:
                return None
            label_cache[label_text or ""] = labels
        samples.append(PromSample(name, labels, float(value)))
    return samples


def _lines(text: str) -> Iterator[str]:
    """Non-blank stripped lines, split exactly as the reference (io.StringIO) splits them."""
    for raw in text.split("\n"):
        line = raw.strip()
        if line:
            yield line


def _parse_labels(label_text: str) -> dict[str, str] | None:
    """Labels of a plain label list; None for what the fast path leaves to the reference."""
    if _LABELS_RE.fullmatch(label_text) is None:
        return None
    pairs = _LABEL_RE.findall(label_text)
    labels = dict(pairs)
    if len(labels) != len(pairs) or any(key.startswith("__") for key in labels):
        return None  # duplicates and reserved names: let the reference decide
    return labels


def _as_float(value: float | int) -> float:
    return float(value)
