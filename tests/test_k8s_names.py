"""Generated names use Kubernetes' alphabet: no vowels, no look-alike characters."""

from __future__ import annotations

import random

from backend.k8s.names import NAME_ALPHABET, random_suffix, safe_encode, stable_suffix


def test_alphabet() -> None:
    assert not set("aeiou013") & set(NAME_ALPHABET)
    assert len(NAME_ALPHABET) == 27


def test_random_suffix() -> None:
    suffix = random_suffix()
    assert len(suffix) == 5 and set(suffix) <= set(NAME_ALPHABET)
    assert random_suffix(random.Random(7), 10) == random_suffix(random.Random(7), 10)
    assert len({random_suffix() for _ in range(50)}) > 45


def test_stable_suffix() -> None:
    assert stable_suffix(12345) == stable_suffix(12345) != stable_suffix(12346)
    assert stable_suffix(0) == NAME_ALPHABET[0] * 5


def test_safe_encode_maps_each_character() -> None:
    assert safe_encode("0123") == "".join(NAME_ALPHABET[ord(c) % 27] for c in "0123")
    assert len(safe_encode("3735928559")) == 10
