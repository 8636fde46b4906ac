"""Running one attempt of a task run on a worker, and recording its result."""

from __future__ import annotations

import logging
import shutil
import time
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from pydantic import ValidationError

from flows.engine.retry import final_state, next_attempt_delay, retry_policy
from flows.engine.states import State
from flows.errors import BatonError, TaskFailed
from flows.models import Execution, KillSwitch, LogEntry, TaskRun
from flows.services.executions import (
    ExecutionScope,
    RunRow,
    _advance_locked,
    add_history,
    close_attempt,
    end_execution,
    execution_spec,
    load_rows,
    lock_execution,
    lock_execution_with_rows,
    to_view,
)
from flows.services.folders import attempt_folder, run_context
from flows.services.killswitches import active_switch
from flows.services.rows import insert_rows, save_fields, update_where
from flows.services.runtime import LogWriter, TaskLogger
from flows.services.timers import Kind, arm_in
from flows.services.variables import iso, parse_iso
from flows.spec.durations import parse_duration
from flows.spec.model import TaskSpec
from flows.storage import execution_prefix, storage_for
from flows.storage.outputs import externalize_outputs
from plugins.base import TaskResult
from plugins.registry import default_registry

logger = logging.getLogger(__name__)

_KILL_CHECK_EVERY = 1.0  # seconds between two looks at the execution's state while a task runs


def lease() -> timedelta:
    return timedelta(seconds=settings.BATON_LEASE_SECONDS)


def run_attempt(taskrun_id: str, attempt: int, request_id: str = "") -> None:
    """Claim and run one attempt; a duplicate or stale message does nothing.

    Then, for up to BATON_WORKER_CONTINUE_SECONDS, the worker runs itself the next task run its
    result made ready on the same queue, instead of sending it through the broker: a sequential
    flow pays no broker round trip and no re-read of its rows per task. `request_id` (the Celery
    message's id) is recorded on each run claimed, so the heartbeat renews their leases.
    """
    row = TaskRun.objects.select_related("execution").filter(id=taskrun_id).first()
    if row is None or row.attempt != attempt or row.state != State.SUBMITTED:
        return  # another delivery of this message got here first, or the run moved on
    budget_end = time.monotonic() + settings.BATON_WORKER_CONTINUE_SECONDS
    claimed = _claim(row.execution, row, None, request_id)
    while claimed is not None:
        continuation = None
        if time.monotonic() < budget_end:
            continuation = Continuation(claimed[1].worker_group, request_id)
        _run_claimed(*claimed, continuation=continuation)
        claimed = continuation.next_run() if continuation is not None else None


Claimed = tuple[Execution, TaskRun, "list[TaskRun | RunRow] | None"]


def _claim(
    execution: Execution, row: TaskRun, rows: list[TaskRun | RunRow] | None, request_id: str
) -> Claimed | None:
    """SUBMITTED -> RUNNING by compare-and-set, unless the execution ended or a kill switch holds it."""
    if execution.is_terminal or execution.state == State.KILLING:
        return None
    switch = active_switch(execution.tenant_id, execution.namespace, execution.flow_id, execution.id)
    if switch is not None:
        if switch.type != KillSwitch.Type.IGNORE:
            from flows.tasks import send_advance

            send_advance(execution.id)  # the executor applies KILL or CANCEL
        return None  # IGNORE: the run stays SUBMITTED; the reaper sends it again once the switch ends
    claim = _claim_fields(timezone.now(), request_id)
    if not update_where(TaskRun, claim, id=row.id, attempt=row.attempt, state=State.SUBMITTED):
        return None
    _set(row, claim)
    return execution, row, rows


def _claim_fields(now: datetime, request_id: str) -> dict[str, Any]:
    """A run claimed by the worker processing message `request_id`, leased from `now`."""
    return {"state": State.RUNNING, "claimed_at": now, "lease_until": now + lease(), "claimed_by": request_id}


def _set(row: TaskRun, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        setattr(row, name, value)


class Continuation:
    """The run a worker takes next itself. While a worker records a result, the executor offers it
    each run it creates to dispatch (`keep`); it keeps the first one on the queue it came from,
    created already claimed by this worker (RUNNING, with a lease) in the same transaction, so no
    message is sent and no claim is needed. A worker that dies before running it stops renewing its
    lease: the reaper gives it a new attempt, as for any run of a lost worker."""

    def __init__(self, worker_group: str, request_id: str) -> None:
        self.worker_group = worker_group
        self.request_id = request_id
        self.run: TaskRun | None = None
        self.scope: ExecutionScope | None = None

    def keep(self, scope: ExecutionScope, row: TaskRun, now: datetime) -> bool:
        from flows.tasks import worker_queue

        if self.run is not None or worker_queue(row.worker_group) != worker_queue(self.worker_group):
            return False
        _set(row, _claim_fields(now, self.request_id))
        self.run, self.scope = row, scope
        return True

    def next_run(self) -> Claimed | None:
        """After the commit: the kept run, with the execution and its rows as they were committed."""
        if self.run is None or self.scope is None:
            return None
        return self.scope.execution, self.run, list(self.scope.rows.values())


def _run_claimed(
    execution: Execution,
    row: TaskRun,
    rows: list[TaskRun | RunRow] | None,
    continuation: Continuation | None = None,
) -> None:
    attempt = row.attempt
    spec = execution_spec(execution)
    if rows is None:
        rows = load_rows(execution.id)
    scope = ExecutionScope(execution, spec, rows)
    task = scope.spec_task(row.task_id)
    assert task is not None, f"task {row.task_id} not in flow"
    task_logger = TaskLogger(
        scope.writer, taskrun_id=row.id, task_id=row.task_id, attempt=attempt, min_level=task.log_level
    )
    result: TaskResult | None = None
    state = State.FAILED
    working_dir, is_shared = None, True
    ctx = None
    try:
        working_dir, is_shared = attempt_folder(scope, row)
        runs = {item.id: to_view(item) for item in rows}
        ctx = run_context(
            scope,
            row,
            working_dir,
            attempt,
            runs=runs,
            logger=task_logger,
            deadline=_deadline(task, ctx_render=lambda value: scope.evaluate(value, runs[row.id], runs)),
            is_killed=_kill_probe(execution.id, row.id),
        )
        cls = default_registry().get(task.type)
        try:
            props = cls.Properties.model_validate(task.properties)
        except ValidationError as exc:
            raise TaskFailed(f"invalid properties: {exc}") from exc
        produced = cls(props).run(ctx)
        if produced.outputs:
            produced.outputs = _stored_outputs(scope, row, produced.outputs)
        result = produced
        state = State(result.state)
    except BatonError as exc:  # TaskFailed included; an OutputTooLarge fails only this task
        task_logger.error(str(exc))
    except Exception as exc:  # the plugin runner is a boundary: any failure fails the attempt
        logger.exception("task %s of execution %s raised", row.task_id, execution.id)
        task_logger.error(f"{type(exc).__name__}: {exc}")
    finally:
        if working_dir is not None and not is_shared:
            shutil.rmtree(working_dir, ignore_errors=True)
    metrics = [*(ctx.metrics if ctx is not None else []), *(result.metrics if result is not None else [])]
    record_attempt_result(
        row.id,
        attempt,
        state,
        result,
        scope.masker.values,
        execution_id=execution.id,
        metrics=metrics,
        row=row,
        logs=scope.writer,
        continuation=continuation,
    )


def _deadline(task: TaskSpec, ctx_render: Any) -> float | None:
    if task.timeout is None:
        return None
    timeout = task.timeout
    if isinstance(timeout, str):
        timeout = parse_duration(str(ctx_render(timeout)))
    return time.monotonic() + timeout.total_seconds()


def _kill_probe(execution_id: str, taskrun_id: str) -> Any:
    last = [0.0, False]

    def probe() -> bool:
        if last[1]:
            return True
        now = time.monotonic()
        if now - last[0] < _KILL_CHECK_EVERY:
            return False
        last[0] = now
        killed = TaskRun.objects.filter(id=taskrun_id, state__in=[State.KILLED, State.KILLING]).exists() or (
            Execution.objects.filter(id=execution_id, state__in=[State.KILLING, State.KILLED]).exists()
        )
        last[1] = killed
        return killed

    return probe


def record_attempt_result(
    taskrun_id: str,
    attempt: int,
    state: State,
    result: TaskResult | None,
    secrets: list[str],
    execution_id: str | None = None,
    metrics: list[dict[str, Any]] | None = None,
    *,
    row: TaskRun | None = None,
    logs: LogWriter | None = None,
    continuation: Continuation | None = None,
) -> None:
    """Store an attempt's outcome, retry or close the task run, then advance the execution.

    `result.outputs` are as the worker stores them (`_stored_outputs`: masked, large values as
    files). `row` is the run as the worker claimed it (its state and attempt are checked again here, under
    the execution's lock); `logs` are written in the same transaction; `continuation` may keep one
    of the runs this result makes ready (see `run_attempt`)."""
    with transaction.atomic():
        # The attempt's log lines are stored whatever is decided; with its result when there is one
        # (one round trip), else on their own.
        pending = logs.take() if logs is not None else []
        _record(
            taskrun_id, attempt, state, result, secrets, execution_id, metrics, row, continuation, pending
        )
        insert_rows(pending)


def _record(
    taskrun_id: str,
    attempt: int,
    state: State,
    result: TaskResult | None,
    secrets: list[str],
    execution_id: str | None,
    metrics: list[dict[str, Any]] | None,
    row: TaskRun | None,
    continuation: Continuation | None,
    pending: list[LogEntry],
) -> None:
    if execution_id is None:
        execution_id = TaskRun.objects.filter(id=taskrun_id).values_list("execution_id", flat=True).first()
        if execution_id is None:
            return
    execution, light = lock_execution_with_rows(execution_id)
    if execution is None:
        return  # deleted meanwhile (a purge, a test database emptied)
    current = next((item for item in light if item.id == taskrun_id), None)
    if current is None or current.state != State.RUNNING or current.attempt != attempt:
        return
    if execution.is_terminal:
        return
    if row is None:
        row = TaskRun.objects.get(id=taskrun_id)
    rows = [row if item.id == taskrun_id else item for item in light]
    killing = execution.state == State.KILLING
    spec = execution_spec(execution)
    scope = ExecutionScope(execution, spec, rows)
    for value in secrets:
        scope.masker.add(value)
    task = scope.spec_task(row.task_id)
    assert task is not None
    now = timezone.now()
    if result is not None and result.resume_after is not None and state != State.FAILED and not killing:
        _sleep(scope, row, result, now)
        return
    started = row.claimed_at or now
    close_attempt(
        row,
        state,
        now,
        **({"metrics": scope.masker.mask_value(_json_safe({"m": metrics})["m"])} if metrics else {}),
    )
    if not row.histories or row.histories[-1]["state"] != State.RUNNING:
        row.histories = [*row.histories, {"state": "RUNNING", "date": iso(started)}]
    if state == State.FAILED and not killing:
        elapsed = now - parse_iso(row.attempts[0]["startDate"])
        delay = next_attempt_delay(retry_policy(task, spec), len(row.attempts), elapsed)
        if delay is not None:
            add_history(row, State.RETRYING, now)
            row.attempt = attempt + 1
            row.lease_until = None
            row.save(update_fields=["state", "histories", "attempts", "attempt", "lease_until"])
            arm_in(execution, Kind.RETRY, row.id, delay)
            before = execution.variables
            scope.save_secrets()
            if execution.variables != before:
                execution.save(update_fields=["variables"])
            return
    final = state
    if final == State.SUCCESS and len(row.attempts) > 1:
        retry = retry_policy(task, spec)
        if retry is not None and retry.warning_on_retry:
            final = State.WARNING
    final = final_state(task, final)
    add_history(row, final, now)
    row.end_date = now
    row.lease_until = None
    if result is not None and result.outputs:
        row.outputs = result.outputs  # already masked and stored by the worker (`_stored_outputs`)
    save_fields(
        row, ["state", "histories", "attempts", "outputs", "end_date", "lease_until"], then_insert=pending
    )
    pending.clear()
    if result is not None and result.labels:
        labels = {label["key"]: label["value"] for label in execution.labels}
        for key, value in result.labels:
            labels[key] = value
        execution.labels = [{"key": key, "value": value} for key, value in labels.items()]
        execution.save(update_fields=["labels"])
    if result is not None and result.execution_state is not None and state not in (State.FAILED,):
        end_execution(scope, State(result.execution_state))
        return
    _advance_locked(execution, spec, rows, continuation=continuation)


def _json_safe(outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs as JSON stores them: a plugin's dates, paths or decimals become text, never an error."""
    import json

    return json.loads(json.dumps(outputs, default=str))


def submit_retry(execution_id: str, taskrun_id: str) -> None:
    """The back-off of a RETRYING run is over: send its next attempt."""
    from flows.tasks import send_run_task

    row = TaskRun.objects.filter(id=taskrun_id, execution_id=execution_id, state=State.RETRYING).first()
    if row is None:
        return
    updated = TaskRun.objects.filter(id=taskrun_id, state=State.RETRYING, attempt=row.attempt).update(
        state=State.SUBMITTED, submitted_at=timezone.now()
    )
    if updated:
        transaction.on_commit(partial(send_run_task, row.id, row.attempt, row.worker_group))


def _sleep(scope: ExecutionScope, row: TaskRun, result: TaskResult, now: Any) -> None:
    """The task asked to be woken later: free the worker, keep the run RUNNING, arm a timer."""
    row.lease_until = None
    row.memo = {**row.memo, "wakeState": str(result.state)}
    if not row.histories or row.histories[-1]["state"] != State.RUNNING:
        row.histories = [*row.histories, {"state": "RUNNING", "date": iso(row.claimed_at or now)}]
    if result.outputs:
        row.outputs = result.outputs
    row.save(update_fields=["lease_until", "memo", "outputs", "histories"])
    arm_in(scope.execution, Kind.WAKE, row.id, result.resume_after or 0.0)
    scope.writer.flush()


def wake_run(execution_id: str, taskrun_id: str) -> None:
    """A task's wait is over: close its attempt in the state it asked for, and go on."""
    with transaction.atomic():
        execution = lock_execution(execution_id)
        row = TaskRun.objects.filter(id=taskrun_id, state=State.RUNNING).first()
        if execution is None or execution.is_terminal or row is None or "wakeState" not in row.memo:
            return
        spec = execution_spec(execution)
        task = spec.tasks_by_id.get(row.task_id)
        now = timezone.now()
        state = State(row.memo["wakeState"])
        close_attempt(row, state, now)
        row.memo = {key: value for key, value in row.memo.items() if key != "wakeState"}
        add_history(row, final_state(task, state) if task is not None else state, now)
        row.end_date = now
        row.save(update_fields=["state", "histories", "attempts", "memo", "end_date"])
        _advance_locked(execution, spec)


def _stored_outputs(scope: ExecutionScope, row: TaskRun, outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs as the task run keeps them: masked, with any value over the inline limit moved to a
    file in internal storage and replaced by its URI. Over the hard limit, OutputTooLarge fails
    the attempt (and only this task)."""
    execution = scope.execution
    storage = storage_for(execution.tenant_id, execution.namespace)
    prefix = f"{execution_prefix(execution.namespace, execution.flow_id, execution.id)}/tasks/{row.task_id}/{row.id}"
    return externalize_outputs(
        storage,
        execution.tenant_id,
        prefix,
        scope.masker.mask_value(_json_safe(outputs)),
        inline_limit=settings.BATON_OUTPUT_INLINE_LIMIT,
        hard_limit=settings.BATON_OUTPUT_HARD_LIMIT,
    )
