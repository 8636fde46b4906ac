"""What the spec layer needs to know about task types. Owned here; implemented by `plugins`."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel

# How a property holds tasks: "list" (a task list), "map" (a map of task lists, like Switch
# `cases`), "dag" (a list of {task, dependsOn}).
TaskPropertyShape = Literal["list", "map", "dag"]

# The property under which a task type's `internal_tasks(task)` (an optional classmethod returning
# TaskSpecs) are stored: hidden children the flow author never writes, like ForEachItem's.
INTERNAL_TASKS = "_internalTasks"


class TaskType(Protocol):
    type_name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]]
    kind: ClassVar[Literal["runnable", "flowable"]]
    # pydantic model of the type's own properties (not the common ones: id, type, retry, ...).
    # Task-holding properties are typed loosely (list[Any] / dict[str, Any]) in it.
    Properties: ClassVar[type[BaseModel]]
    task_properties: ClassVar[dict[str, TaskPropertyShape]]


class TaskTypes(Protocol):
    """A registry of task types, looked up by `type:` name or alias."""

    def get(self, type_name: str) -> type[Any] | None: ...
