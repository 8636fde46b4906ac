"""Validation of Flow triggers (`io.kestra.plugin.core.trigger.Flow`): states and preconditions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.spec.marked_yaml import MarkedDict

if TYPE_CHECKING:
    from flows.spec.loader import _Checker

FLOW_TRIGGER_TYPES = ("io.kestra.plugin.core.trigger.Flow", "io.kestra.core.models.triggers.types.Flow")


def check_flow_trigger(checker: _Checker, data: MarkedDict, path: str) -> None:
    """Report what is wrong with a Flow trigger at `path` through `checker`."""
