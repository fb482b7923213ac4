"""Generated names: the suffixes the API server and the controllers append to a prefix.

Kubernetes draws them from an alphabet without vowels (no accidental words) and without
look-alike characters (``k8s.io/apimachinery/pkg/util/rand``).
"""

from __future__ import annotations

import random

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SUFFIX_LENGTH = 5
_SYSTEM_RANDOM = random.SystemRandom()


def random_suffix(rng: random.Random = _SYSTEM_RANDOM, length: int = SUFFIX_LENGTH) -> str:
    """``rand.String``: ``length`` characters of the alphabet (``generateName``, pod names).

    Pass a seeded ``rng`` for reproducible names; the default draws from the OS.
    """
    return "".join(rng.choice(NAME_ALPHABET) for _ in range(length))


def stable_suffix(number: int, length: int = SUFFIX_LENGTH) -> str:
    """A suffix derived from ``number`` (five bits per character), for names that must not
    change between runs."""
    size = len(NAME_ALPHABET)
    return "".join(NAME_ALPHABET[(number >> (5 * k)) % size] for k in range(length))


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each character mapped into the alphabet (how controllers turn
    a hash into the ``pod-template-hash`` label)."""
    size = len(NAME_ALPHABET)
    return "".join(NAME_ALPHABET[ord(ch) % size] for ch in text)
