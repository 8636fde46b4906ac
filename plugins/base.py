"""The plugin API: what a task type is, and what it may touch while it runs (`RunContext`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from flows.spec.registry import TaskPropertyShape


class TaskProperties(BaseModel):
    """Base of every task type's `Properties`: unknown properties are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)


class TaskLogger(Protocol):
    """Execution log of one attempt. Messages are masked for secrets before they are stored."""

    def trace(self, message: str) -> None: ...
    def debug(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...
    def log(self, level: str, message: str) -> None: ...  # level: TRACE..ERROR (WARN accepted)


class RunContext(Protocol):
    """Everything a runnable task may use while it runs. Plugins never touch the ORM."""

    tenant: str
    namespace: str
    flow_id: str
    execution_id: str
    taskrun_id: str
    task_id: str
    attempt: int  # 1-based
    working_dir: Path  # an empty folder of this attempt, or the enclosing WorkingDirectory's folder
    logger: TaskLogger
    deadline: float | None  # time.monotonic() value at which the task times out, or None

    def render(self, value: Any, extra_variables: Mapping[str, Any] | None = None) -> Any:
        """Render every expression in value (str, or lists/dicts of them); strings come back as strings.

        `extra_variables` are added to (and override) the task run's variables for this render:
        script tasks pass `workingDir` (and `outputDir`), as Kestra's task runners do.
        """
        ...

    def render_typed(self, value: Any) -> Any:
        """Like render, but a string that is one `{{ expression }}` gives the expression's native value."""
        ...

    def variables(self) -> dict[str, Any]:
        """The expression variables of this task run (flow, execution, inputs, outputs, vars, ...)."""
        ...

    def put_file(self, local_path: Path, name: str | None = None) -> str:
        """Copy a local file into internal storage; returns its `kestra://` URI."""
        ...

    def get_file(self, uri: str) -> Path:
        """Local path of a `kestra://` URI (a namespace file or an execution file) for reading."""
        ...

    def namespace_files(self, namespace: str | None = None) -> dict[str, Path]:
        """Namespace files of the namespace (default: the flow's), relative path -> local path."""
        ...

    def kv_get(self, namespace: str, key: str) -> tuple[bool, Any]:
        """(found, value) of a KV entry; expired entries are not found."""
        ...

    def kv_set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        value_type: str | None = None,
        ttl_seconds: float | None = None,
        overwrite: bool = True,
    ) -> None: ...

    def kv_delete(self, namespace: str, key: str) -> bool: ...

    def add_secret(self, value: str) -> None:
        """Mask this value (and its base64 form) in every log line and output from now on."""
        ...

    def metric(
        self, name: str, value: float, metric_type: str = "counter", tags: dict[str, str] | None = None
    ) -> None: ...

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; returns False early if the attempt is being killed."""
        ...

    def is_killed(self) -> bool: ...


TaskState = Literal["SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"]


@dataclass
class TaskResult:
    """What a runnable task hands back. Raise `flows.errors.TaskFailed` to fail instead."""

    outputs: dict[str, Any] = field(default_factory=dict)
    state: TaskState = "SUCCESS"
    # Labels to merge into the execution's labels (core.execution.Labels).
    labels: list[tuple[str, str]] | None = None
    # End the whole execution in this state once this task run is recorded (core.execution.Exit).
    execution_state: TaskState | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    # Come back in this many seconds, without holding a worker: the run stays RUNNING, a timer in
    # the database wakes it, and it then ends in `state` (core.flow.Sleep).
    resume_after: float | None = None


class TaskTypeBase:
    """Common class attributes of task types; see `flows.spec.registry.TaskType`."""

    type_name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[Literal["runnable", "flowable"]]
    Properties: ClassVar[type[BaseModel]] = TaskProperties
    task_properties: ClassVar[dict[str, TaskPropertyShape]] = {}


class RunnableTask(TaskTypeBase):
    """A task that runs on a worker. Subclasses implement `run`."""

    kind: ClassVar[Literal["runnable", "flowable"]] = "runnable"

    def __init__(self, properties: BaseModel) -> None:
        self.props = properties

    def run(self, ctx: RunContext) -> TaskResult:
        raise NotImplementedError
