"""Kubernetes-safe names and label values.

Object names must be DNS-1123 labels (lowercase alphanumerics and ``-``, at most 63
characters); label values allow upper case, ``_`` and ``.`` too. Model names come from the
MLflow registry and may hold anything, so every derived name is sanitised, and whenever
sanitising changed or shortened it, a short hash of the original is appended: two models
whose names differ only in characters Kubernetes rejects never share an object.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = ["MAX_NAME", "dns_label", "is_dns_label", "is_label_value", "label_value"]

MAX_NAME: Final = 63
_HASH_LEN: Final = 8
_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def is_dns_label(text: str, *, max_len: int = MAX_NAME) -> bool:
    """Whether ``text`` is a DNS-1123 label of at most ``max_len`` characters."""
    return 0 < len(text) <= max_len and _DNS_LABEL.match(text) is not None


def is_label_value(text: str) -> bool:
    """Whether ``text`` is a valid Kubernetes label value (empty allowed)."""
    return len(text) <= MAX_NAME and _LABEL_VALUE.match(text) is not None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_LEN]


def _fit(cleaned: str, original: str, max_len: int, *, strip: str) -> str:
    if cleaned == original and 0 < len(cleaned) <= max_len:
        return cleaned
    head = cleaned[: max_len - _HASH_LEN - 1].strip(strip)
    return f"{head}-{_digest(original)}" if head else _digest(original)


def dns_label(*parts: str, max_len: int = MAX_NAME, letter_first: bool = False) -> str:
    """Join ``parts`` with ``-`` into a DNS-1123 label of at most ``max_len`` characters.

    Args:
        parts: the pieces of the name, e.g. ``("train", model, run_id)``.
        max_len: the longest name allowed (at least 10: room for the hash).
        letter_first: also require a leading letter (DNS-1035, as Services need).

    Returns:
        The joined name unchanged when it is already valid, else a sanitised, truncated
        name ending in ``-<8 hex digits of sha256(joined)>``.
    """
    if max_len < _HASH_LEN + 2:
        raise ValueError(f"max_len must be at least {_HASH_LEN + 2}, got {max_len}")
    original = "-".join(parts)
    cleaned = re.sub(r"[^a-z0-9]+", "-", original.lower()).strip("-")
    if letter_first and not cleaned[:1].isalpha():
        # A prefix rather than a hash-only name keeps "7-eleven" recognisable; the changed
        # text then gets the hash suffix like any other sanitised name.
        cleaned = f"m-{cleaned}".rstrip("-")
    return _fit(cleaned, original, max_len, strip="-")


def label_value(text: str) -> str:
    """``text`` as a label value: unchanged when valid, else sanitised with a hash suffix."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)
    cleaned = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)
    return _fit(cleaned, text, MAX_NAME, strip="-_.")
