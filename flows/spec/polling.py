"""Validation of polling triggers: triggers evaluated every `interval` on the tick."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.spec.marked_yaml import MarkedDict

if TYPE_CHECKING:
    from flows.spec.loader import _Checker

HTTP_TRIGGER_TYPES = ("io.kestra.plugin.core.http.Trigger", "io.kestra.plugin.fs.http.Trigger")
POLLING_TRIGGER_TYPES = HTTP_TRIGGER_TYPES


def check_polling_trigger(checker: _Checker, data: MarkedDict, path: str) -> None:
    """Report what is wrong with a polling trigger at `path` through `checker`."""
