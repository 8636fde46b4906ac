"""ForEachItem: split a file of items into batches and run a subflow execution per batch.

As in Kestra, the flowable has three hidden children, shown as task runs of their own:
`<id>_split` (runnable: streams the items file into batch files on a worker), one `<id>_items`
run per batch (like a Subflow run: its child execution gets `{{ taskrun.items }}`, the batch
file, and `{{ taskrun.iteration }}`, the batch number from 1), and `<id>_merge` (runnable: one
JSON line per batch with the child's flow outputs, in batch order).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO, ClassVar

from flows.engine.executor import Navigator
from flows.engine.model import RunView
from flows.engine.states import FAILED_STATES, TERMINAL_STATES, State
from flows.errors import BatonError, TaskFailed
from flows.expressions import is_truthy
from flows.spec.model import TaskSpec
from flows.spec.registry import INTERNAL_TASKS, TaskPropertyShape
from plugins.base import RunContext, RunnableTask, TaskProperties, TaskResult
from plugins.core.flow import FlowableTask, _worst_of

_TYPE = "io.kestra.plugin.core.flow.ForEachItem"
SPLIT_TYPE = f"{_TYPE}$ForEachItemSplit"
ITEMS_TYPE = f"{_TYPE}$ForEachItemExecutable"
MERGE_TYPE = f"{_TYPE}$ForEachItemMergeOutputs"
# Properties of ForEachItem that describe the child executions, handed to each `_items` run.
_SUBFLOW_PROPERTIES = ("namespace", "flowId", "inputs", "labels", "wait", "transmitFailed", "inheritLabels")
_CHUNK = 64 * 1024  # bytes read at a time while splitting: memory stays flat whatever the file size
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?B?)\s*$", re.IGNORECASE)


class BatchProperties(TaskProperties):
    rows: int | str | None = None
    bytes: str | int | None = None
    partitions: int | str | None = None
    separator: str = "\n"


class _SubflowProperties(TaskProperties):
    namespace: str
    flowId: str
    inputs: dict[str, Any] | None = None
    labels: dict[str, Any] | list[dict[str, Any]] | None = None
    wait: bool | str = True
    transmitFailed: bool | str = True
    inheritLabels: bool = False
    revision: int | str | None = None
    scheduleDate: str | None = None
    scheduleOn: str | None = None


class ForEachItem(FlowableTask):
    """Split `items` (an internal storage URI) into batches (`batch.rows`, default 1; `batch.bytes`,
    e.g. "10MB"; or `batch.partitions` files) and start one execution of `namespace`.`flowId` per batch,
    at most `concurrencyLimit` unfinished at once (0: no limit). `{{ taskrun.items }}` is the batch file
    and `{{ taskrun.iteration }}` its number. With `wait`, the task ends when every child has ended;
    with `transmitFailed`, a failed child fails it. Outputs: `numberOfBatches`, `iterations` (children
    per state) and `subflowOutputs` (a file with each child's outputs, one JSON line per batch).
    """

    type_name: ClassVar[str] = _TYPE
    task_properties: ClassVar[dict[str, TaskPropertyShape]] = {}

    class Properties(_SubflowProperties):
        items: str
        batch: BatchProperties | None = None
        concurrencyLimit: int | str = 0

    @classmethod
    def internal_tasks(cls, task: TaskSpec) -> tuple[TaskSpec, ...]:
        """The hidden `_split`, `_items` and `_merge` tasks of a ForEachItem, built at load time."""
        props = task.properties
        common: dict[str, Any] = {
            "kind": "runnable",
            "line": task.line,
            "log_level": task.log_level,
            "worker_group": task.worker_group,
        }
        split = TaskSpec(
            id=f"{task.id}_split",
            type=SPLIT_TYPE,
            path=f"{task.path}._split",
            properties={"items": props.get("items"), "batch": props.get("batch") or {}},
            **common,
        )
        items = TaskSpec(
            id=f"{task.id}_items",
            type=ITEMS_TYPE,
            path=f"{task.path}._items",
            properties={
                **{key: props[key] for key in _SUBFLOW_PROPERTIES if key in props},
                **({"revision": props["revision"]} if props.get("revision") is not None else {}),
                "splitTaskId": split.id,
            },
            **{**common, "kind": "flowable"},
        )
        merge = TaskSpec(
            id=f"{task.id}_merge",
            type=MERGE_TYPE,
            path=f"{task.path}._merge",
            properties={"itemsTaskId": items.id},
            **common,
        )
        return (split, items, merge)

    def resolve(self, task: TaskSpec, run: RunView, nav: Navigator) -> State:
        split_task, items_task, merge_task = task.properties[INTERNAL_TASKS]
        split = nav.latest(run, split_task.id)
        if split is None:
            split = nav.create(split_task, run)
        if split.state not in TERMINAL_STATES:
            return State.RUNNING
        if split.state in FAILED_STATES:
            return State.KILLED if split.state == State.KILLED else State.FAILED
        count = int((split.outputs or {}).get("numberOfBatches") or 0)
        limit = int(nav.evaluate(task.properties.get("concurrencyLimit", 0), run) or 0)
        batches = {child.iteration: child for child in nav.children(run) if child.task_id == items_task.id}
        active = sum(1 for child in batches.values() if child.state not in TERMINAL_STATES)
        for number in range(1, count + 1):
            child = batches.get(number)
            if child is None:
                if limit and active >= limit:
                    continue  # a slot frees when a child execution ends (services close its run)
                child = nav.create(items_task, run, value=str(number), iteration=number)
                batches[number] = child
                active += child.state not in TERMINAL_STATES
            elif child.state == State.RUNNING:
                nav.resolve(items_task, child)  # restarted: starts a new child execution
        outputs: dict[str, Any] = {"numberOfBatches": count, "iterations": _iterations(batches.values())}
        if any((run.outputs or {}).get(key) != value for key, value in outputs.items()):
            nav.set_outputs(run, outputs)
        if len(batches) < count or any(child.state not in TERMINAL_STATES for child in batches.values()):
            return State.RUNNING
        state = _worst_of([child.state for child in batches.values()])
        if state in FAILED_STATES:
            return state
        if not is_truthy(nav.evaluate(task.properties.get("wait", True), run)):
            return state  # Kestra merges outputs only of children it waited for
        merge = nav.latest(run, merge_task.id)
        if merge is None:
            merge = nav.create(merge_task, run)
        if merge.state not in TERMINAL_STATES:
            return State.RUNNING
        if merge.state in FAILED_STATES:
            return State.KILLED if merge.state == State.KILLED else State.FAILED
        uri = (merge.outputs or {}).get("subflowOutputs")
        if (run.outputs or {}).get("subflowOutputs") != uri:
            nav.set_outputs(run, {"subflowOutputs": uri, "uri": uri})
        return state


def _iterations(batches: Any) -> dict[str, int]:
    """Children per state, as Kestra's `iterations`: a child not waited for counts as CREATED."""
    counts: dict[str, int] = {}
    for child in batches:
        outputs = child.outputs or {}
        if "state" in outputs:
            key = str(outputs["state"])
        elif child.state in TERMINAL_STATES:
            key = "CREATED" if child.memo.get("wait") is False else str(child.state)
        else:
            key = "RUNNING"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


class ForEachItemExecutable(FlowableTask):
    """Internal: one batch of a ForEachItem; starts its child execution like a Subflow."""

    type_name: ClassVar[str] = ITEMS_TYPE
    task_properties: ClassVar[dict[str, TaskPropertyShape]] = {}

    class Properties(_SubflowProperties):
        splitTaskId: str

    def resolve(self, task: TaskSpec, run: RunView, nav: Navigator) -> State:
        if "items" not in run.memo:
            parent = nav.runs[run.parent_id] if run.parent_id else None
            split = nav.latest(parent, task.properties["splitTaskId"])
            template = (split.outputs or {}).get("batchUriTemplate") if split is not None else None
            if not template:
                raise BatonError(f"{task.id}: the items were not split")
            nav.remember(run, "items", template.replace("{index}", str(run.iteration)))
        if not run.memo.get("subflowRequested"):
            nav.start_subflow(run)
        return State.RUNNING  # services close this run when the child execution ends


# ---------------------------------------------------------------------------------------------- split


def parse_size(value: str | int) -> int:
    """Bytes of a size like "10MB", "512KB" or 1000 (units of 1024, as Kestra's DataSize)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if match is None:
        raise TaskFailed(f"batch.bytes: expected a size like `10MB`, got `{value}`")
    return int(match.group(1)) * _UNITS[match.group(2).upper().removesuffix("B")]


def _records(source: BinaryIO, separator: bytes) -> Iterator[bytes]:
    """The records of a stream, without their separator, read `_CHUNK` bytes at a time."""
    pending = b""
    while chunk := source.read(_CHUNK):
        pending += chunk
        parts = pending.split(separator)
        pending = parts.pop()
        yield from parts
    if pending:
        yield pending


def split_stream(
    source: BinaryIO,
    folder: Path,
    *,
    rows: int | None = None,
    max_bytes: int | None = None,
    partitions: int | None = None,
    separator: bytes = b"\n",
    suffix: str = "",
) -> list[Path]:
    """Write the records of `source` into batch files in `folder`; returns them in batch order.

    By `rows` per batch, by at most `max_bytes` per batch (a longer record gets a batch of its own),
    or round-robin into `partitions` files (empty ones are dropped). Reads and writes as it goes.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    with ExitStack() as stack:
        if partitions is not None:
            outs: dict[int, IO[bytes]] = {}
            for index, record in enumerate(_records(source, separator)):
                slot = index % partitions
                out = outs.get(slot)
                if out is None:
                    out = outs[slot] = stack.enter_context(open(folder / f"part-{slot}{suffix}", "wb"))
                out.write(record + separator)
            return [folder / f"part-{slot}{suffix}" for slot in sorted(outs)]
        current: IO[bytes] | None = None
        count = size = 0
        for record in _records(source, separator):
            length = len(record) + len(separator)
            full = (rows is not None and count >= rows) or (
                max_bytes is not None and count and size + length > max_bytes
            )
            if current is None or full:
                if current is not None:
                    current.close()
                path = folder / f"batch-{len(paths) + 1}{suffix}"
                paths.append(path)
                current = stack.enter_context(open(path, "wb"))
                count = size = 0
            current.write(record + separator)
            count += 1
            size += length
    return paths


def _positive(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise TaskFailed(f"batch.{name}: expected a number, got `{value}`") from exc
    if number < 1:
        raise TaskFailed(f"batch.{name}: must be >= 1, got {number}")
    return number


class ForEachItemSplit(RunnableTask):
    """Internal: split the items of a ForEachItem into batch files in internal storage."""

    type_name: ClassVar[str] = SPLIT_TYPE

    class Properties(TaskProperties):
        items: str
        batch: BatchProperties | dict[str, Any] | None = None

    def run(self, ctx: RunContext) -> TaskResult:
        uri = str(ctx.render(self.props.items)).strip()
        if not uri.startswith("kestra://"):
            raise TaskFailed(f"items: expected an internal storage URI (kestra://...), got `{uri}`")
        batch = self.props.batch
        raw = batch.model_dump() if isinstance(batch, BatchProperties) else dict(batch or {})
        batch_values = ctx.render({key: value for key, value in raw.items() if value is not None})
        rows = _positive(batch_values.get("rows"), "rows")
        partitions = _positive(batch_values.get("partitions"), "partitions")
        size = batch_values.get("bytes")
        max_bytes = parse_size(size) if size not in (None, "") else None
        if sum(value is not None for value in (rows, partitions, max_bytes)) > 1:
            raise TaskFailed("batch: set only one of `rows`, `bytes` and `partitions`")
        if rows is None and partitions is None and max_bytes is None:
            rows = 1
        separator = str(batch_values.get("separator") or "\n").encode()
        suffix = PurePosixPath(uri).suffix
        folder = ctx.working_dir / "batches"
        with open(ctx.get_file(uri), "rb") as source:
            paths = split_stream(
                source,
                folder,
                rows=rows,
                max_bytes=max_bytes,
                partitions=partitions,
                separator=separator,
                suffix=suffix,
            )
        template = None
        for number, path in enumerate(paths, start=1):
            name = f"batch-{number}{suffix}"
            stored = ctx.put_file(path, name)
            path.unlink()
            template = template or stored[: -len(name)] + f"batch-{{index}}{suffix}"
        ctx.logger.info(f"Split {uri} into {len(paths)} batches")
        return TaskResult(outputs={"numberOfBatches": len(paths), "batchUriTemplate": template})


class ForEachItemMergeOutputs(RunnableTask):
    """Internal: gather the outputs of a ForEachItem's child executions into one file."""

    type_name: ClassVar[str] = MERGE_TYPE

    class Properties(TaskProperties):
        itemsTaskId: str

    def run(self, ctx: RunContext) -> TaskResult:
        variables = ctx.variables()
        node: Any = (variables.get("outputs") or {}).get(self.props.itemsTaskId) or {}
        # Inside loops, outputs of the batches sit under the values of the enclosing iterations.
        for parent in reversed(variables.get("parents") or []):
            node = node.get(str(parent["taskrun"]["value"])) or {}
        path = ctx.working_dir / "subflowOutputs.jsonl"
        with open(path, "w") as out:
            for key in sorted(node, key=int):
                child_outputs = (node[key] or {}).get("outputs") or {}
                out.write(json.dumps(child_outputs, separators=(",", ":"), default=str) + "\n")
        uri = ctx.put_file(path)
        return TaskResult(outputs={"subflowOutputs": uri})
