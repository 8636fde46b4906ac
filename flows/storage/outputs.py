"""Task outputs that are too big for a database row: stored as files, or refused."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from flows.errors import BatonError
from flows.storage.base import Storage

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class OutputTooLarge(BatonError):
    """A task's outputs are larger than BATON_OUTPUT_HARD_LIMIT, even counting stored files."""

    code = "output_too_large"
    http_status = 413

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"task outputs are {size} bytes of JSON, more than the limit of {limit} bytes "
            "(BATON_OUTPUT_HARD_LIMIT): write large results to a file instead"
        )


def externalize_outputs(
    storage: Storage,
    tenant: str,
    key_prefix: str,
    outputs: Mapping[str, Any],
    *,
    inline_limit: int,
    hard_limit: int,
) -> dict[str, Any]:
    """Outputs with every value larger than `inline_limit` bytes of JSON replaced by its file's URI.

    The file is `<key_prefix>/outputs/<name>.txt` for a string (its text) and `.json` otherwise.
    Raises OutputTooLarge, before storing anything, when the values add up to more than `hard_limit`.
    """
    encoded = {name: _json(value) for name, value in outputs.items()}
    total = sum(len(data) for data in encoded.values())
    if total > hard_limit:
        raise OutputTooLarge(total, hard_limit)
    result: dict[str, Any] = {}
    for name, value in outputs.items():
        data = encoded[name]
        if len(data) <= inline_limit:
            result[name] = value
        elif isinstance(value, str):
            result[name] = storage.put_bytes(
                tenant, f"{key_prefix}/outputs/{_file_name(name)}.txt", value.encode()
            )
        else:
            result[name] = storage.put_bytes(tenant, f"{key_prefix}/outputs/{_file_name(name)}.json", data)
    return result


def _json(value: Any) -> bytes:
    # default=str as the attempt recorder does: what is measured is what would be stored.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _file_name(name: str) -> str:
    # Output names come from plugins and flow authors (OutputValues): keep them one safe segment.
    safe = _UNSAFE.sub("_", name)
    return "_" + safe if safe in ("", ".", "..") else safe
