"""The task-type registry: `type:` string -> task class, imported the first time it is looked up.

Built-ins are listed in `BUILTINS`; third-party packages register through the entry-point group
`baton.plugins` (each entry point names a task class). Duplicate types or aliases are rejected.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any

from flows.errors import BatonError

_CORE = "io.kestra.plugin.core"
_LEGACY = "io.kestra.core.tasks"

# type name -> ("module:Class", (aliases...))
BUILTINS: dict[str, tuple[str, tuple[str, ...]]] = {
    f"{_CORE}.log.Log": ("plugins.core.log:Log", (f"{_LEGACY}.log.Log",)),
    f"{_CORE}.debug.Echo": ("plugins.core.log:Echo", (f"{_LEGACY}.debugs.Echo",)),
    f"{_CORE}.debug.Return": ("plugins.core.debug:Return", (f"{_LEGACY}.debugs.Return",)),
    f"{_CORE}.output.OutputValues": ("plugins.core.debug:OutputValues", (f"{_LEGACY}.outputs.OutputValues",)),
    f"{_CORE}.flow.Sleep": ("plugins.core.sleep:Sleep", (f"{_LEGACY}.flows.Sleep",)),
    f"{_CORE}.execution.Fail": ("plugins.core.execution:Fail", (f"{_LEGACY}.executions.Fail",)),
    f"{_CORE}.execution.Exit": ("plugins.core.execution:Exit", (f"{_LEGACY}.executions.Exit",)),
    f"{_CORE}.execution.Labels": ("plugins.core.execution:Labels", (f"{_LEGACY}.executions.Labels",)),
    f"{_CORE}.kv.Set": ("plugins.core.kv:Set", (f"{_LEGACY}.kv.Set",)),
    f"{_CORE}.kv.Get": ("plugins.core.kv:Get", (f"{_LEGACY}.kv.Get",)),
    f"{_CORE}.kv.Delete": ("plugins.core.kv:Delete", (f"{_LEGACY}.kv.Delete",)),
    f"{_CORE}.storage.LocalFiles": ("plugins.core.files:LocalFiles", (f"{_LEGACY}.storages.LocalFiles",)),
    "io.kestra.plugin.scripts.shell.Commands": ("plugins.scripts.shell:Commands", ()),
    "io.kestra.plugin.scripts.shell.Script": ("plugins.scripts.shell:Script", ()),
    "io.kestra.plugin.scripts.python.Commands": ("plugins.scripts.python:Commands", ()),
    "io.kestra.plugin.scripts.python.Script": ("plugins.scripts.python:Script", ()),
    # Flowable tasks: expanded by the executor.
    f"{_CORE}.flow.Sequential": ("plugins.core.flow:Sequential", (f"{_LEGACY}.flows.Sequential",)),
    f"{_CORE}.flow.Parallel": ("plugins.core.flow:Parallel", (f"{_LEGACY}.flows.Parallel",)),
    f"{_CORE}.flow.If": ("plugins.core.flow:If", (f"{_LEGACY}.flows.If",)),
    f"{_CORE}.flow.Switch": ("plugins.core.flow:Switch", (f"{_LEGACY}.flows.Switch",)),
    f"{_CORE}.flow.ForEach": ("plugins.core.flow:ForEach", (f"{_LEGACY}.flows.ForEach",)),
    f"{_CORE}.flow.EachSequential": (
        "plugins.core.flow:EachSequential",
        (f"{_LEGACY}.flows.EachSequential",),
    ),
    f"{_CORE}.flow.EachParallel": ("plugins.core.flow:EachParallel", (f"{_LEGACY}.flows.EachParallel",)),
    f"{_CORE}.flow.AllowFailure": ("plugins.core.flow:AllowFailure", (f"{_LEGACY}.flows.AllowFailure",)),
    f"{_CORE}.flow.Dag": ("plugins.core.flow:Dag", (f"{_LEGACY}.flows.Dag",)),
    f"{_CORE}.flow.WorkingDirectory": (
        "plugins.core.flow:WorkingDirectory",
        (f"{_LEGACY}.flows.WorkingDirectory",),
    ),
    f"{_CORE}.flow.Pause": ("plugins.core.flow:Pause", (f"{_LEGACY}.flows.Pause",)),
    f"{_CORE}.flow.Subflow": (
        "plugins.core.flow:Subflow",
        (f"{_LEGACY}.flows.Subflow", f"{_LEGACY}.flows.Flow", f"{_CORE}.flow.Flow"),
    ),
    f"{_CORE}.flow.ForEachItem": ("plugins.core.foreach_item:ForEachItem", (f"{_LEGACY}.flows.ForEachItem",)),
    # ForEachItem's hidden children (see plugins.core.foreach_item).
    f"{_CORE}.flow.ForEachItem$ForEachItemSplit": ("plugins.core.foreach_item:ForEachItemSplit", ()),
    f"{_CORE}.flow.ForEachItem$ForEachItemExecutable": (
        "plugins.core.foreach_item:ForEachItemExecutable",
        (),
    ),
    f"{_CORE}.flow.ForEachItem$ForEachItemMergeOutputs": (
        "plugins.core.foreach_item:ForEachItemMergeOutputs",
        (),
    ),
    f"{_CORE}.flow.LoopUntil": (
        "plugins.core.flow:LoopUntil",
        (f"{_CORE}.flow.WaitFor", f"{_LEGACY}.flows.WaitFor"),
    ),
}


class RegistryError(BatonError):
    code = "plugin_registry"


class Registry:
    """Task types by `type:` name or alias."""

    def __init__(
        self, table: Mapping[str, tuple[str, tuple[str, ...]]], *, load_entry_points: bool = True
    ) -> None:
        self._paths: dict[str, str] = {}
        self._canonical: dict[str, str] = {}
        self._classes: dict[str, type[Any]] = {}
        self._lock = threading.Lock()
        for type_name, (path, aliases) in table.items():
            self._add(type_name, path, aliases, origin="baton")
        if load_entry_points:
            for entry in entry_points(group="baton.plugins"):
                cls = entry.load()
                self._check_task_class(cls, origin=entry.value)
                self._add(
                    cls.type_name, None, tuple(getattr(cls, "aliases", ())), origin=entry.value, cls=cls
                )

    def _add(
        self,
        type_name: str,
        path: str | None,
        aliases: tuple[str, ...],
        *,
        origin: str,
        cls: type[Any] | None = None,
    ) -> None:
        for name in (type_name, *aliases):
            if name in self._canonical:
                raise RegistryError(f"task type `{name}` from {origin} is already registered")
            self._canonical[name] = type_name
        if path is not None:
            self._paths[type_name] = path
        if cls is not None:
            self._classes[type_name] = cls

    @staticmethod
    def _check_task_class(cls: Any, origin: str) -> None:
        if (
            not isinstance(cls, type)
            or not isinstance(getattr(cls, "type_name", None), str)
            or getattr(cls, "kind", None) not in ("runnable", "flowable")
        ):
            raise RegistryError(f"{origin} is not a task type (needs type_name, kind and Properties)")

    def canonical(self, type_name: str) -> str | None:
        return self._canonical.get(type_name)

    def get(self, type_name: str) -> type[Any] | None:
        canonical = self._canonical.get(type_name)
        if canonical is None:
            return None
        cls = self._classes.get(canonical)
        if cls is None:
            with self._lock:
                cls = self._classes.get(canonical)
                if cls is None:
                    module_name, _, class_name = self._paths[canonical].partition(":")
                    cls = getattr(importlib.import_module(module_name), class_name)
                    self._classes[canonical] = cls
        return cls

    def type_names(self) -> list[str]:
        return sorted(set(self._canonical.values()))

    @contextmanager
    def temporarily(self, classes: Mapping[str, type[Any]]) -> Iterator[Registry]:
        """Register throwaway task types for the duration of a `with` block (tests)."""
        added: list[str] = []
        for type_name, cls in classes.items():
            if type_name in self._canonical:
                raise RegistryError(f"task type `{type_name}` is already registered")
            self._canonical[type_name] = type_name
            self._classes[type_name] = cls
            added.append(type_name)
        try:
            yield self
        finally:
            for type_name in added:
                self._canonical.pop(type_name, None)
                self._classes.pop(type_name, None)


_default: Registry | None = None


def default_registry() -> Registry:
    global _default
    if _default is None:
        _default = Registry(BUILTINS)
    return _default
