"""Label selectors: the query-string grammar and the structured form, over label mappings."""

from __future__ import annotations

import pytest

from backend.k8s.selectors import SelectorError, match_label_selector, parse_label_selector

LABELS = {"app": "web", "tier": "gpu", "opsconsole.io/tenant": "team-a"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app = web , tier = gpu", True),
        ("tier in (gpu, cpu)", True),
        ("tier notin (gpu)", False),
        ("missing notin (x)", True),
        ("opsconsole.io/tenant", True),
        ("!opsconsole.io/tenant", False),
        ("!missing", True),
        ("missing=", False),
        ("app=web,tier in (cpu)", False),
    ],
)
def test_string_selectors(selector: str, matches: bool) -> None:
    predicate = parse_label_selector(selector)
    assert predicate is not None
    assert predicate(LABELS) is matches


def test_empty_selects_everything() -> None:
    assert parse_label_selector(None) is None
    assert parse_label_selector("  ") is None
    assert parse_label_selector(",") is None


@pytest.mark.parametrize("selector", ["a=(", "a in (1", "=x", "a=b c", "a=-b", "a in (b c)"])
def test_malformed(selector: str) -> None:
    with pytest.raises(SelectorError, match="unable to parse requirement"):
        parse_label_selector(selector)


def test_structured_selectors() -> None:
    assert match_label_selector(None, LABELS) and match_label_selector({}, LABELS)
    assert match_label_selector({"matchLabels": {"app": "web"}}, LABELS)
    assert not match_label_selector({"matchLabels": {"app": "api"}}, LABELS)
    for op, values, matches in (
        ("In", ["gpu"], True),
        ("In", ["cpu"], False),
        ("NotIn", ["gpu"], False),
        ("NotIn", ["cpu"], True),
        ("Exists", [], True),
        ("DoesNotExist", [], False),
    ):
        selector = {"matchExpressions": [{"key": "tier", "operator": op, "values": values}]}
        assert match_label_selector(selector, LABELS) is matches
