"""Namespaces form a tree by their dots: `a.b.c` lies within `a.b` and `a`."""

from __future__ import annotations


def within(namespace: str, parent: str) -> bool:
    """Whether `namespace` is `parent` or one of its descendants (`a.b` is within `a`, `ab` is not)."""
    return namespace == parent or namespace.startswith(f"{parent}.")


def lineage(namespace: str) -> list[str]:
    """`a.b.c` -> [`a.b.c`, `a.b`, `a`]: the namespace, then its parents, nearest first."""
    parts = namespace.split(".")
    return [".".join(parts[:length]) for length in range(len(parts), 0, -1)]
