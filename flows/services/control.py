"""Control of executions by people and operators: kill, pause, restart, replay, change a task run's state.

Each action locks the execution row, checks the state it acts on, and changes nothing when it
refuses (a `ControlError` with the reason, HTTP 409 in the API).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from flows.engine.states import TERMINAL_STATES, State
from flows.errors import BatonError
from flows.models import Execution, LogEntry, TaskRun, new_id
from flows.services.executions import (
    ExecutionScope,
    _advance_locked,
    _finish,
    add_history,
    execution_spec,
)
from flows.services.runtime import renderer
from flows.services.timers import disarm
from flows.spec import parse_inputs
from flows.spec.model import FlowSpec
from flows.storage import execution_prefix, storage_for
from plugins.registry import default_registry


class ControlError(BatonError):
    code = "invalid_state"
    http_status = 409


class ExecutionNotFound(BatonError):
    code = "execution_not_found"
    http_status = 404


def _lock(execution_id: str, tenant: str | None) -> Execution:
    executions = Execution.objects.select_for_update().filter(id=execution_id)
    if tenant is not None:
        executions = executions.filter(tenant_id=tenant)
    execution = executions.first()
    if execution is None:
        raise ExecutionNotFound(f"execution `{execution_id}` not found")
    return execution


def _scope(execution: Execution) -> ExecutionScope:
    return ExecutionScope(
        execution, execution_spec(execution), list(TaskRun.objects.filter(execution_id=execution.id))
    )


# ---------------------------------------------------------------------------------------------- kill


def kill_execution(execution_id: str, tenant: str | None = None, reason: str | None = None) -> None:
    """Kill an execution from any unfinished state, and its subflow executions. Killing a finished
    execution changes nothing. Task runs on workers are stopped by the workers (KILLING until they
    report, or until their lease expires), then the execution ends KILLED and frees its slot."""
    with transaction.atomic():
        execution = _lock(execution_id, tenant)
        if execution.is_terminal or execution.state == State.KILLING:
            return
        scope = _scope(execution)
        scope.log("WARN", f"Execution killed{': ' + reason if reason else ''}")
        stop(scope, State.KILLED)


def stop(scope: ExecutionScope, final: State) -> None:
    """End what has not started, kill subflows, and end the execution in `final` once no task run
    is left on a worker. KILLED executions wait in KILLING; CANCELLED ones let running tasks finish."""
    execution = scope.execution
    now = timezone.now()
    scope.full_rows([row.id for row in scope.rows.values() if row.state not in TERMINAL_STATES])
    on_worker = _on_worker(scope.rows.values())
    ended = [
        row
        for row in scope.rows.values()
        if row.state not in TERMINAL_STATES and row.id not in on_worker and isinstance(row, TaskRun)
    ]
    for row in ended:
        add_history(row, State.CANCELLED if final == State.CANCELLED else State.KILLED, now)
        row.end_date = now
    if ended:
        TaskRun.objects.bulk_update(ended, ["state", "histories", "end_date"])
    disarm(execution.id)
    _kill_children(execution)
    if not on_worker:
        _finish(scope, final, now)
    elif final == State.KILLED and execution.state != State.KILLING:
        add_history(execution, State.KILLING, now)
        execution.paused_by_user = False
        execution.save(update_fields=["state", "histories", "paused_by_user"])


def settle(scope: ExecutionScope, final: State) -> None:
    """A KILLING execution ends once its last task run on a worker has reported (or was reaped)."""
    if not TaskRun.objects.filter(
        execution_id=scope.execution.id, state=State.RUNNING, lease_until__isnull=False
    ).exists():
        stop(scope, final)


def _on_worker(rows: Iterable[Any]) -> set[str]:
    return {row.id for row in rows if row.state == State.RUNNING and getattr(row, "lease_until", None)}


def _kill_children(execution: Execution) -> None:
    from flows.tasks import send_kill

    children = Execution.objects.filter(parent_id=execution.id).exclude(state__in=TERMINAL_STATES)
    for child_id in children.values_list("id", flat=True):
        transaction.on_commit(partial(send_kill, child_id, f"parent execution {execution.id} was killed"))


# ---------------------------------------------------------------------------------------------- pause


def pause_execution(execution_id: str, tenant: str | None = None) -> None:
    """Pause by hand: task runs in progress finish, nothing new starts until `resume_execution`."""
    with transaction.atomic():
        execution = _lock(execution_id, tenant)
        if execution.state not in (State.CREATED, State.RUNNING) or execution.paused_by_user:
            raise ControlError(
                f"execution `{execution_id}` is {execution.state}: only a running one can be paused"
            )
        execution.paused_by_user = True
        add_history(execution, State.PAUSED)
        execution.save(update_fields=["state", "histories", "paused_by_user"])


# ---------------------------------------------------------------------------------------------- restart


RESTARTABLE = (State.FAILED, State.KILLED, State.CANCELLED)


def restart_execution(execution_id: str, tenant: str | None = None) -> None:
    """Run again, in the same execution, the task runs that failed or were killed: each gets a new
    attempt; successful runs and their outputs are kept."""
    with transaction.atomic():
        execution = _lock(execution_id, tenant)
        if execution.state not in RESTARTABLE:
            raise ControlError(
                f"execution `{execution_id}` is {execution.state}: only FAILED, KILLED or CANCELLED ones restart"
            )
        scope = _scope(execution)
        rows: dict[str, TaskRun] = scope.rows  # type: ignore[assignment]
        registry = default_registry()
        failed = [row for row in rows.values() if row.state in RESTARTABLE]
        reopened = {row.id for row in failed if _ancestors_reopenable(row, rows)}
        if not reopened:
            raise ControlError(f"execution `{execution_id}` has no failed task run to restart")
        now = timezone.now()
        resubmit: list[TaskRun] = []
        for run_id in reopened:
            row = rows[run_id]
            task = scope.spec_task(row.task_id)
            add_history(row, State.RESTARTED, now)
            row.end_date = None
            if task is not None and registry.get(task.type).kind != "flowable":
                row.state = State.SUBMITTED
                row.attempt += 1
                row.submitted_at = now
                resubmit.append(row)
            else:
                add_history(row, State.RUNNING, now)
                row.memo = {k: v for k, v in row.memo.items() if k not in ("subflowRequested", "childId")}
            row.save()
        _reopen(scope, reopened, now)
        for row in resubmit:
            from flows.tasks import send_run_task

            transaction.on_commit(partial(send_run_task, row.id, row.attempt, row.worker_group))


def _ancestors_reopenable(row: TaskRun, rows: Mapping[str, TaskRun]) -> bool:
    parent_id = row.parent_taskrun_id
    while parent_id:
        parent = rows.get(parent_id)
        if parent is None or parent.state not in (*RESTARTABLE, State.RUNNING):
            return False
        parent_id = parent.parent_taskrun_id
    return True


def _reopen(scope: ExecutionScope, runs: set[str], now: Any) -> None:
    """Reopen the ancestors of `runs` and the execution, drop error and finally branches that ran
    because of the old outcome, and let the executor decide again."""
    execution = scope.execution
    rows: dict[str, TaskRun] = scope.rows  # type: ignore[assignment]
    ancestors: set[str] = set()
    for run_id in runs:
        parent_id = rows[run_id].parent_taskrun_id
        while parent_id and parent_id in rows:
            ancestors.add(parent_id)
            parent_id = rows[parent_id].parent_taskrun_id
    for run_id in ancestors - runs:
        row = rows[run_id]
        if row.state in TERMINAL_STATES:
            add_history(row, State.RUNNING, now)
            row.end_date = None
            row.save(update_fields=["state", "histories", "end_date"])
    handlers = _handler_task_ids(scope.spec, {rows[run_id].task_id for run_id in ancestors | runs})
    doomed = {row.id for row in rows.values() if row.task_id in handlers and row.id not in runs}
    doomed |= _descendants(rows, doomed)
    if doomed:
        TaskRun.objects.filter(id__in=doomed).delete()
        for run_id in doomed:
            rows.pop(run_id)
    add_history(execution, State.RESTARTED, now)
    add_history(execution, State.RUNNING, now)
    execution.end_date = None
    execution.outputs = None
    execution.save(update_fields=["state", "histories", "end_date", "outputs"])
    _advance_locked(execution, scope.spec, list(rows.values()))


def _handler_task_ids(spec: FlowSpec, reopened_task_ids: set[str]) -> set[str]:
    """Ids of the tasks in the `errors` and `finally` branches of the flow and of reopened tasks."""
    branches = [*spec.errors, *spec.finally_]
    for task in spec.all_tasks():
        if task.id in reopened_task_ids:
            branches += [*task.errors, *task.finally_]
    ids: set[str] = set()
    stack = list(branches)
    while stack:
        task = stack.pop()
        ids.add(task.id)
        stack.extend(task.subtasks())
    return ids


def _descendants(rows: Mapping[str, TaskRun], roots: set[str]) -> set[str]:
    found: set[str] = set()
    frontier = set(roots)
    while frontier:
        frontier = {row.id for row in rows.values() if row.parent_taskrun_id in frontier} - found
        found |= frontier
    return found


# ---------------------------------------------------------------------------------------------- change status


CHANGEABLE = (State.SUCCESS, State.WARNING, State.FAILED)


def change_taskrun_state(execution_id: str, taskrun_id: str, state: str, tenant: str | None = None) -> None:
    """Set a finished task run's state by hand (SUCCESS, WARNING or FAILED); the execution goes on
    from there as if the task had ended that way."""
    try:
        new_state = State(state)
    except ValueError:
        new_state = None
    if new_state not in CHANGEABLE:
        raise ControlError(f"state `{state}`: a task run can be set to SUCCESS, WARNING or FAILED")
    with transaction.atomic():
        execution = _lock(execution_id, tenant)
        if not execution.is_terminal:
            raise ControlError(f"execution `{execution_id}` is {execution.state}: wait until it ends")
        scope = _scope(execution)
        rows: dict[str, TaskRun] = scope.rows  # type: ignore[assignment]
        row = rows.get(taskrun_id)
        if row is None:
            raise ExecutionNotFound(f"task run `{taskrun_id}` not found in execution `{execution_id}`")
        if row.state == new_state:
            return
        now = timezone.now()
        add_history(row, new_state, now)
        row.end_date = now
        row.save(update_fields=["state", "histories", "end_date"])
        _reopen(scope, {row.id}, now)


EXECUTION_CHANGEABLE = (State.SUCCESS, State.WARNING, State.FAILED, State.KILLED, State.CANCELLED)


def change_execution_state(execution_id: str, state: str, tenant: str | None = None) -> None:
    """Set an ended execution's state by hand (SUCCESS, WARNING, FAILED, KILLED or CANCELLED),
    e.g. to mark a failure as dealt with. Its task runs are left as they are; a log line says who
    changed what."""
    try:
        new_state = State(state)
    except ValueError:
        new_state = None
    if new_state not in EXECUTION_CHANGEABLE:
        allowed = ", ".join(item.value for item in EXECUTION_CHANGEABLE)
        raise ControlError(f"state `{state}`: an execution can be set to {allowed}")
    with transaction.atomic():
        execution = _lock(execution_id, tenant)
        if not execution.is_terminal:
            raise ControlError(f"execution `{execution_id}` is {execution.state}: wait until it ends")
        if execution.state == new_state:
            return
        previous = execution.state
        add_history(execution, new_state)
        execution.save(update_fields=["state", "histories"])
        scope = _scope(execution)
        scope.log("WARN", f"State changed by hand from {previous} to {new_state.value}")
        scope.writer.flush()


# ---------------------------------------------------------------------------------------------- replay


def replay_execution(
    execution_id: str,
    taskrun_id: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    tenant: str | None = None,
) -> Execution:
    """A new execution of the same flow revision that starts again at `taskrun_id` (the start when
    None): what ran before it is copied with its outputs; `originalId` points to the source."""
    source = Execution.objects.filter(id=execution_id)
    if tenant is not None:
        source = source.filter(tenant_id=tenant)
    original = source.first()
    if original is None:
        raise ExecutionNotFound(f"execution `{execution_id}` not found")
    if not original.is_terminal:
        raise ControlError(
            f"execution `{execution_id}` is {original.state}: only a finished one can be replayed"
        )
    spec = execution_spec(original)
    rows = {row.id: row for row in TaskRun.objects.filter(execution_id=original.id).order_by("seq")}
    kept: list[TaskRun] = []
    lineage: set[str] = set()  # ancestors of the replayed run: open again around it
    if taskrun_id is not None:
        chosen = rows.get(taskrun_id)
        if chosen is None:
            raise ExecutionNotFound(f"task run `{taskrun_id}` not found in execution `{execution_id}`")
        parent_id = chosen.parent_taskrun_id
        while parent_id:
            lineage.add(parent_id)
            parent_id = rows[parent_id].parent_taskrun_id
        later = _descendants(rows, {chosen.id}) | {chosen.id}
        kept = [
            row
            for row in rows.values()
            if row.id in lineage or (row.seq < chosen.seq and row.id not in later)
        ]
    typed_inputs = original.inputs if inputs is None else parse_inputs(spec, dict(inputs))
    with transaction.atomic():
        replay = Execution(
            id=new_id(),
            tenant_id=original.tenant_id,
            namespace=original.namespace,
            flow_id=original.flow_id,
            flow_revision=original.flow_revision,
            revision_ref_id=original.revision_ref_id,
            inputs=typed_inputs,
            labels=original.labels,
            trigger=original.trigger,
            variables=original.variables,
            original_id=original.id,
        )
        add_history(replay, State.CREATED, replay.start_date)
        add_history(replay, State.RUNNING)
        replay.save(force_insert=True)
        ids = {row.id: new_id() for row in kept}
        copies = [_copy_run(row, replay, seq, ids, reopen=row.id in lineage) for seq, row in enumerate(kept)]
        TaskRun.objects.bulk_create(copies)
        _advance_locked(replay, spec, list(copies))
    return replay


def _copy_run(
    row: TaskRun, execution: Execution, seq: int, ids: Mapping[str, str], *, reopen: bool
) -> TaskRun:
    copy = TaskRun(
        id=ids[row.id],
        tenant_id=row.tenant_id,
        execution=execution,
        seq=seq,
        task_id=row.task_id,
        parent_taskrun_id=ids.get(row.parent_taskrun_id or ""),
        value=row.value,
        iteration=row.iteration,
        state=row.state,
        histories=row.histories,
        attempts=row.attempts,
        attempt=row.attempt,
        outputs=row.outputs,
        worker_group=row.worker_group,
        memo=row.memo,
        start_date=row.start_date,
        end_date=row.end_date,
    )
    if reopen:
        add_history(copy, State.RUNNING)
        copy.end_date = None
    return copy


# ---------------------------------------------------------------------------------------------- delete


def delete_execution(
    execution_id: str, tenant: str, delete_logs: bool = True, delete_storage: bool = True
) -> None:
    """Delete a finished execution (softly: the row stays, marked deleted), with its logs and its
    files in internal storage on request. Raises ControlError for one that has not ended."""
    with transaction.atomic():
        execution = _lock(execution_id, tenant)
        if not execution.is_terminal:
            raise ControlError(
                f"execution `{execution_id}` is {execution.state}: kill it or wait until it ends"
            )
        if delete_logs:
            LogEntry.objects.filter(execution_id=execution.id).delete()
        Execution.objects.filter(pk=execution.pk).update(deleted=True)
    if delete_storage:
        storage = storage_for(tenant, execution.namespace)
        prefix = execution_prefix(execution.namespace, execution.flow_id, execution.id)
        for uri in storage.list(tenant, prefix):
            storage.delete(tenant, uri)


# ---------------------------------------------------------------------------------------------- eval


def evaluate_expression(execution: Execution, expression: str) -> str:
    """Render `expression` with the execution's variables (inputs, outputs, labels, ...), as a task
    of it would see them, in the expression sandbox. The answer is masked like its logs.
    Raises ExpressionError."""
    scope = _scope(execution)
    rendered = renderer.render(expression, scope.base_variables(), scope.services)
    return scope.masker.mask(str(rendered))
