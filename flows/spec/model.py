"""The typed, validated flow definition produced by `flows.spec.load_flow`.

Everything here is frozen: a definition is shared by threads and never changes once loaded.
Property values that may hold expressions stay as written (strings with `{{ }}`); they are
rendered when the task runs, as Kestra does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

RetryType = Literal["constant", "exponential", "random"]
RetryBehavior = Literal["RETRY_FAILED_TASK", "CREATE_NEW_EXECUTION"]


@dataclass(frozen=True)
class RetrySpec:
    """`retry:` of a task or flow. `max_attempts` counts every attempt, the first included."""

    type: RetryType
    max_attempts: int | None = None
    max_duration: timedelta | None = None
    interval: timedelta | None = None
    max_interval: timedelta | None = None
    min_interval: timedelta | None = None  # random
    delay_factor: float | None = None  # exponential
    warning_on_retry: bool = False
    behavior: RetryBehavior = "RETRY_FAILED_TASK"


@dataclass(frozen=True)
class TaskSpec:
    """One task of a flow, at any depth.

    `properties` holds the task type's own properties (pluginDefaults applied), as written,
    except that properties declared by the task type as holding tasks are converted:
    a task list becomes `tuple[TaskSpec, ...]`, a task map (`cases`) becomes
    `dict[str, tuple[TaskSpec, ...]]`, and a Dag list becomes a tuple of `DagNode`.
    """

    id: str
    type: str  # canonical type name (aliases resolved)
    kind: Literal["runnable", "flowable"]
    path: str  # e.g. "tasks[2].then[0]"
    line: int | None = None
    description: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    retry: RetrySpec | None = None
    timeout: timedelta | str | None = None  # a string is an expression rendered at run time
    run_if: str | bool | None = None
    allow_failure: bool = False
    allow_warning: bool = False
    disabled: bool = False
    log_level: str | None = None  # TRACE, DEBUG, INFO, WARN, ERROR
    worker_group: str | None = None  # workerGroup.key
    errors: tuple[TaskSpec, ...] = ()  # flowable tasks only
    finally_: tuple[TaskSpec, ...] = ()  # flowable tasks only

    def __hash__(self) -> int:  # properties is a dict; identity by path is enough
        return hash(self.path)

    def subtasks(self) -> list[TaskSpec]:
        """Direct children: task lists in properties, then `errors` and `finally`."""
        children = [
            child for value in self.properties.values() for tasks in _task_lists(value) for child in tasks
        ]
        return [*children, *self.errors, *self.finally_]


@dataclass(frozen=True)
class DagNode:
    task: TaskSpec
    depends_on: tuple[str, ...] = ()


InputType = Literal[
    "STRING",
    "INT",
    "FLOAT",
    "BOOLEAN",
    "BOOL",
    "DATETIME",
    "DATE",
    "TIME",
    "DURATION",
    "FILE",
    "JSON",
    "YAML",
    "URI",
    "EMAIL",
    "SECRET",
    "ARRAY",
    "SELECT",
    "MULTISELECT",
    "ENUM",
]


@dataclass(frozen=True)
class InputSpec:
    id: str
    type: str  # one of InputType
    required: bool = True
    defaults: Any = None
    display_name: str | None = None
    description: str | None = None
    # type-specific options as written: min, max, minLength, maxLength, validator, values,
    # itemType, dependsOn, allowCustomValue, expression, ...
    options: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


@dataclass(frozen=True)
class OutputSpec:
    id: str
    type: str
    value: Any  # usually an expression string
    description: str | None = None
    required: bool = True


@dataclass(frozen=True)
class SlaSpec:
    id: str
    type: Literal["MAX_DURATION", "EXECUTION_ASSERTION"]
    behavior: Literal["FAIL", "CANCEL", "NONE"]
    duration: timedelta | None = None
    assert_: str | None = None  # EXECUTION_ASSERTION expression
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConcurrencySpec:
    limit: int
    behavior: Literal["QUEUE", "CANCEL", "FAIL"] = "QUEUE"


@dataclass(frozen=True)
class PluginDefault:
    type: str  # a type name or a prefix of one
    values: dict[str, Any]
    forced: bool = False


@dataclass(frozen=True)
class FlowSpec:
    id: str
    namespace: str
    tasks: tuple[TaskSpec, ...]
    source: str = ""
    description: str | None = None
    labels: tuple[tuple[str, str], ...] = ()  # ordered (key, value); values as strings
    inputs: tuple[InputSpec, ...] = ()
    variables: dict[str, Any] = field(default_factory=dict)
    errors: tuple[TaskSpec, ...] = ()
    finally_: tuple[TaskSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    plugin_defaults: tuple[PluginDefault, ...] = ()
    retry: RetrySpec | None = None
    sla: tuple[SlaSpec, ...] = ()
    concurrency: ConcurrencySpec | None = None
    disabled: bool = False
    triggers: tuple[dict[str, Any], ...] = ()  # validated for id/type only; see the triggers issue
    revision: int | None = None  # set by persistence, never read from YAML

    def __hash__(self) -> int:
        return hash((self.namespace, self.id, self.revision))

    def all_tasks(self) -> list[TaskSpec]:
        """Every task of the flow, depth first, in document order."""
        found: list[TaskSpec] = []

        def walk(tasks: tuple[TaskSpec, ...]) -> None:
            for task in tasks:
                found.append(task)
                for value in task.properties.values():
                    for child_list in _task_lists(value):
                        walk(child_list)
                walk(task.errors)
                walk(task.finally_)

        walk(self.tasks)
        walk(self.errors)
        walk(self.finally_)
        return found

    @functools.cached_property
    def tasks_by_id(self) -> dict[str, TaskSpec]:
        """Every task by id (ids are unique in a flow); computed once per definition."""
        return {task.id: task for task in self.all_tasks()}

    def find_task(self, task_id: str) -> TaskSpec | None:
        return self.tasks_by_id.get(task_id)


def _task_lists(value: Any) -> list[tuple[TaskSpec, ...]]:
    if isinstance(value, tuple) and value and isinstance(value[0], TaskSpec):
        return [value]
    if isinstance(value, tuple) and value and isinstance(value[0], DagNode):
        return [tuple(node.task for node in value)]
    if (
        isinstance(value, dict)
        and value
        and all(
            isinstance(item, tuple) and (not item or isinstance(item[0], TaskSpec)) for item in value.values()
        )
    ):
        return list(value.values())
    return []
