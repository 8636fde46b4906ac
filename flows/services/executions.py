"""Executions: start, advance (apply the executor's plan), finish, subflows and pauses.

Every change happens in a short transaction with the execution row locked, so two workers
finishing task runs of one execution at once never both advance it. Celery messages are
sent on commit.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from flows.engine import executor
from flows.engine.model import Plan, RunView
from flows.engine.retry import final_state, next_attempt_delay, retry_policy
from flows.engine.states import TERMINAL_STATES, State
from flows.errors import BatonError, ExpressionError, InputValidationError
from flows.expressions import is_truthy
from flows.models import Execution, Flow, FlowRevision, KillSwitch, TaskRun, new_id
from flows.services.flows import parse_flow, spec_of_revision
from flows.services.folders import WORKING_DIRECTORY, close_working_directory
from flows.services.rows import insert_rows, one_round_trip, quote
from flows.services.runtime import ExpressionServicesImpl, LogWriter, Masker, TaskLogger, renderer
from flows.services.timers import Kind, arm, arm_in, armed, disarm
from flows.services.variables import execution_variables, iso, parse_iso, taskrun_variables
from flows.spec import parse_inputs
from flows.spec.durations import format_duration
from flows.spec.loader import SCHEDULE_TRIGGER_TYPES
from flows.spec.model import FlowSpec, TaskSpec
from flows.spec.polling import POLLING_TRIGGER_TYPES
from flows.storage import execution_prefix, storage_for
from plugins.registry import default_registry

if TYPE_CHECKING:
    from flows.services.attempts import Continuation

logger = logging.getLogger(__name__)
# triggers that are not evaluated again while an execution they started still runs (Kestra's lock)
LOCKING_TRIGGER_TYPES = frozenset((*SCHEDULE_TRIGGER_TYPES, *POLLING_TRIGGER_TYPES))


class FlowNotFound(BatonError):
    code = "flow_not_found"
    http_status = 404


class FlowDisabled(BatonError):
    code = "flow_disabled"
    http_status = 422


def add_history(obj: Execution | TaskRun, state: str, when: Any = None) -> None:
    obj.state = state
    obj.histories = [*obj.histories, {"state": str(state), "date": iso(when or timezone.now())}]


def close_attempt(row: TaskRun, state: str, now: Any, **extra: Any) -> None:
    """Append the attempt that ran from the run's claim until `now` and ended in `state`."""
    started = row.claimed_at or now
    row.attempts = [
        *row.attempts,
        {
            "state": str(state),
            "histories": [
                {"state": "RUNNING", "date": iso(started)},
                {"state": str(state), "date": iso(now)},
            ],
            "startDate": iso(started),
            "endDate": iso(now),
            **extra,
        },
    ]


def execution_duration(execution: Execution) -> str:
    end = execution.end_date or timezone.now()
    return format_duration(end - execution.start_date)


# ---------------------------------------------------------------------------------------------- start


def start_execution(
    *,
    tenant: str,
    namespace: str,
    flow_id: str,
    inputs: Mapping[str, Any] | None = None,
    labels: list[tuple[str, str]] | None = None,
    revision: int | None = None,
    trigger: dict[str, Any] | None = None,
    parent: tuple[Execution, str] | None = None,
    schedule_date: datetime | None = None,
) -> Execution:
    """Create an execution of a stored flow and start it. Inputs are validated first. With a
    `schedule_date` in the future it stays CREATED until then (a START timer begins it).

    Raises FlowNotFound, FlowDisabled or InputValidationError; then nothing is stored.
    """
    revision_pk, revision_number, flow_disabled = _revision_to_run(tenant, namespace, flow_id, revision)
    spec = spec_of_revision(revision_pk)
    if spec.disabled or flow_disabled:
        raise FlowDisabled(f"flow `{namespace}.{flow_id}` is disabled")
    execution_id = new_id()
    storage = storage_for(tenant, namespace)
    prefix = execution_prefix(namespace, flow_id, execution_id)

    def store_file(input_id: str, local_path: str) -> str:
        path = Path(local_path)
        if not path.is_file():
            raise InputValidationError(input_id, f"file `{local_path}` does not exist")
        return storage.put(tenant, f"{prefix}/inputs/{input_id}/{path.name}", path)

    typed_inputs = parse_inputs(spec, dict(inputs or {}), store_file=store_file)
    # SECRET inputs are masked in logs and answers like secret() values.
    secrets = Masker(
        str(typed_inputs[item.id])
        for item in spec.inputs
        if item.type == "SECRET" and typed_inputs.get(item.id)
    ).values
    merged: dict[str, str] = {key: value for key, value in spec.labels}
    if parent is not None:
        merged["system.correlationId"] = _label(parent[0].labels, "system.correlationId") or parent[0].id
    for key, value in labels or []:
        merged[key] = value
    merged.setdefault("system.correlationId", execution_id)
    with transaction.atomic():
        execution = Execution(
            id=execution_id,
            tenant_id=tenant,
            namespace=namespace,
            flow_id=flow_id,
            flow_revision=revision_number,
            revision_ref_id=revision_pk,
            inputs=typed_inputs,
            labels=[{"key": key, "value": value} for key, value in merged.items()],
            trigger=trigger,
            parent_id=parent[0].id if parent else None,
            variables={"secrets": secrets},
            parent_taskrun_id=parent[1] if parent else None,
            schedule_date=schedule_date,
        )
        add_history(execution, State.CREATED, execution.start_date)
        if schedule_date is not None and schedule_date > execution.start_date:
            execution.has_timers = True  # its START timer
            execution.save(force_insert=True)
            arm(execution, Kind.START, "", schedule_date)
        else:
            _begin(execution, spec, insert=True)
    return execution


def start_scheduled(execution_id: str) -> None:
    """The START timer of a scheduled execution: begin it if it is still waiting (CREATED)."""
    execution = Execution.objects.select_for_update().filter(pk=execution_id).first()
    if execution is None or execution.state != State.CREATED or execution.deleted:
        return  # killed, deleted or begun meanwhile
    _begin(execution, execution_spec(execution), insert=False)


def _begin(execution: Execution, spec: FlowSpec, insert: bool) -> None:
    """Admit a CREATED execution (kill switches, concurrency) and start its first tasks."""
    refusal = _admit(execution, spec)
    if refusal is None and execution.state != State.QUEUED:
        # stored as it starts (no second write), at its creation time when it starts at once
        add_history(execution, State.RUNNING, execution.start_date if insert else None)
    if insert:
        execution.save(force_insert=True)
    else:
        execution.save(update_fields=["state", "histories"])
    if refusal is not None:
        _refuse(execution, spec, *refusal)
    elif execution.state != State.QUEUED:
        _advance_locked(execution, spec, [], starting=True)  # a new execution has no task runs
        _schedule_sla(execution, spec)


def _revision_to_run(
    tenant: str, namespace: str, flow_id: str, revision: int | None
) -> tuple[int, int, bool]:
    """(revision row id, revision number, flow disabled) of the revision to run, the flow's current
    one by default. One indexed query, written in SQL: it runs for every execution started, and the
    ORM spent longer compiling the join than PostgreSQL answering it (bench/)."""
    flows, revisions = quote(Flow._meta.db_table), quote(FlowRevision._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.id, r.revision, f.disabled FROM {revisions} r JOIN {flows} f ON f.id = r.flow_id"
            " WHERE f.tenant_id = %s AND f.namespace = %s AND f.flow_id = %s AND f.deleted = %s"
            " AND r.revision = COALESCE(%s, f.revision)",
            [tenant, namespace, flow_id, False, revision],
        )
        found = cursor.fetchone()
    if found is not None:
        return int(found[0]), int(found[1]), bool(found[2])
    if Flow.objects.for_tenant(tenant).filter(namespace=namespace, flow_id=flow_id, deleted=False).exists():
        raise FlowNotFound(f"flow `{namespace}.{flow_id}` has no revision {revision}")
    raise FlowNotFound(f"flow `{namespace}.{flow_id}` not found")


# States that hold one of a flow's concurrency slots: started and not yet ended.
SLOT_STATES = [State.CREATED, State.RUNNING, State.PAUSED, State.RESTARTED, State.KILLING, State.RETRYING]


def _admit(execution: Execution, spec: FlowSpec) -> tuple[State, str] | None:
    """Apply kill switches and the flow's concurrency limit to a new execution.

    Returns (state, reason) when it must end at once; leaves it QUEUED when it must wait. The
    count happens under a lock on the flow row, so two starts never both take the last slot.
    """
    from flows.services.killswitches import active_switch

    switch = active_switch(execution.tenant_id, execution.namespace, execution.flow_id, execution.id)
    if switch is not None and switch.type in (KillSwitch.Type.KILL, KillSwitch.Type.CANCEL):
        state = State.KILLED if switch.type == KillSwitch.Type.KILL else State.CANCELLED
        return state, f"Kill switch {switch.type}: {switch.reason}"
    limit = spec.concurrency
    if limit is None:
        return None
    _lock_flow(execution)
    if _running_count(execution) < limit.limit:
        return None
    if limit.behavior == "QUEUE":
        add_history(execution, State.QUEUED)
        return None
    state = State.CANCELLED if limit.behavior == "CANCEL" else State.FAILED
    return state, f"Flow is {state} due to concurrency limit exceeded ({limit.limit})"


def _lock_flow(execution: Execution) -> None:
    """Serialise admission and release for one flow (its row is the lock)."""
    Flow.objects.select_for_update().filter(
        tenant_id=execution.tenant_id, namespace=execution.namespace, flow_id=execution.flow_id
    ).values_list("pk", flat=True).first()


def _running_count(execution: Execution) -> int:
    """Executions holding a slot; one waiting for its `scheduleDate` does not hold one yet."""
    return (
        Execution.objects.filter(
            tenant_id=execution.tenant_id,
            namespace=execution.namespace,
            flow_id=execution.flow_id,
            state__in=SLOT_STATES,
        )
        .exclude(state=State.CREATED, schedule_date__gt=timezone.now())
        .count()
    )


def _refuse(execution: Execution, spec: FlowSpec, state: State, reason: str) -> None:
    scope = ExecutionScope(execution, spec, [])
    scope.log("WARN", reason)
    _finish(scope, state, timezone.now(), held_slot=False)


def _release_slot(execution: Execution, spec: FlowSpec) -> None:
    """An execution holding a slot ended: start the oldest QUEUED execution of its flow, if one fits."""
    if spec.concurrency is None:
        return
    _lock_flow(execution)
    queued = (
        Execution.objects.select_for_update()
        .filter(
            tenant_id=execution.tenant_id,
            namespace=execution.namespace,
            flow_id=execution.flow_id,
            state=State.QUEUED,
        )
        .order_by("start_date", "id")
        .first()
    )
    if queued is None or _running_count(execution) >= spec.concurrency.limit:
        return
    add_history(queued, State.RUNNING)
    queued.save(update_fields=["state", "histories"])
    queued_spec = execution_spec(queued)
    _advance_locked(queued, queued_spec, [])  # a queued execution has not started any task run
    _schedule_sla(queued, queued_spec)


def _label(labels: list[dict[str, str]], key: str) -> str | None:
    return next((label["value"] for label in labels if label["key"] == key), None)


def execution_spec(execution: Execution) -> FlowSpec:
    return spec_of_revision(execution.revision_ref_id)


# ---------------------------------------------------------------------------------------------- advance


def advance_execution(execution_id: str) -> None:
    """Decide and apply what comes next in an execution (safe to call any number of times)."""
    with transaction.atomic():
        execution = lock_execution(execution_id)
        if execution is None or execution.is_terminal:
            return
        _advance_locked(execution, execution_spec(execution))


_LIGHT_FIELDS = (
    "id",
    "task_id",
    "seq",
    "state",
    "parent_taskrun_id",
    "value",
    "iteration",
    "attempt",
    "outputs",
    "memo",
    "start_date",
    "worker_group",
)


class RunRow:
    """The columns of a task run that deciding and rendering read. Loading these for every run of an
    execution costs a third of loading full rows (no state or attempt histories to decode), and it
    happens once or twice per task run; a row is fetched in full only when a plan changes it."""

    __slots__ = _LIGHT_FIELDS

    def __init__(self, values: tuple[Any, ...]) -> None:
        for name, value in zip(_LIGHT_FIELDS, values, strict=True):
            setattr(self, name, value)


# load_rows runs at least once per task run: written in SQL, it costs a third of the same query built
# by the ORM (measured on PostgreSQL: 0.3 ms against 1.0 ms for a one-run execution).
_LIGHT_SQL = "SELECT {columns} FROM {table} WHERE {execution} = %s ORDER BY {seq}".format(
    columns=", ".join(quote(TaskRun._meta.get_field(name).column) for name in _LIGHT_FIELDS),
    table=quote(TaskRun._meta.db_table),
    execution=quote(TaskRun._meta.get_field("execution").column),
    seq=quote(TaskRun._meta.get_field("seq").column),
)
_JSON_COLUMNS = [_LIGHT_FIELDS.index("outputs"), _LIGHT_FIELDS.index("memo")]
_START_DATE = _LIGHT_FIELDS.index("start_date")


_EXECUTION_FIELDS = Execution._meta.concrete_fields
_LOCK_SQL = "SELECT {columns} FROM {table} WHERE {pk} = %s{lock}".format(
    columns=", ".join(quote(field.column) for field in _EXECUTION_FIELDS),
    table=quote(Execution._meta.db_table),
    pk=quote(Execution._meta.pk.column),
    lock=" FOR UPDATE" if connection.features.has_select_for_update else "",
)


def lock_execution(execution_id: str) -> Execution | None:
    """The execution's row, locked until the end of the transaction (`select_for_update`). Once per
    task run, so written in SQL: the ORM took longer to build this query than to run it."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SQL, [execution_id])
        found = cursor.fetchone()
    return _execution_of(found) if found is not None else None


def lock_execution_with_rows(execution_id: str) -> tuple[Execution | None, list[RunRow]]:
    """`lock_execution` and `load_rows`, in one round trip on PostgreSQL."""
    if not one_round_trip():
        execution = lock_execution(execution_id)
        return execution, load_rows(execution_id) if execution is not None else []
    with connection.cursor() as cursor:
        cursor.execute(f"{_LOCK_SQL}; {_LIGHT_SQL}", [execution_id, execution_id])
        found = cursor.fetchone()
        cursor.nextset()
        light = cursor.fetchall()
    if found is None:
        return None, []
    return _execution_of(found), _run_rows(light)


def _execution_of(values: tuple[Any, ...]) -> Execution:
    """An Execution from its columns in model order, converted as the ORM converts them."""
    table = Execution._meta.db_table
    converted = []
    for field, value in zip(_EXECUTION_FIELDS, values, strict=True):
        expression = field.get_col(table)
        for converter in [
            *connection.ops.get_db_converters(expression),
            *field.get_db_converters(connection),
        ]:
            value = converter(value, expression, connection)
        converted.append(value)
    return Execution.from_db(connection.alias, [field.attname for field in _EXECUTION_FIELDS], converted)


def load_rows(execution_id: str) -> list[RunRow]:
    with connection.cursor() as cursor:
        cursor.execute(_LIGHT_SQL, [execution_id])
        return _run_rows(cursor.fetchall())


def _run_rows(found: list[tuple[Any, ...]]) -> list[RunRow]:
    rows = []
    for values in found:
        values = list(values)
        for index in _JSON_COLUMNS:  # both backends return JSON columns as text on a plain cursor
            if isinstance(values[index], str | bytes):
                values[index] = json.loads(values[index])
        start = values[_START_DATE]
        if isinstance(start, str):
            start = parse_datetime(start)
        if start is not None and timezone.is_naive(start):  # SQLite stores UTC without an offset
            start = start.replace(tzinfo=UTC)
        values[_START_DATE] = start
        rows.append(RunRow(tuple(values)))
    return rows


def to_view(row: TaskRun | RunRow) -> RunView:
    return RunView(
        id=row.id,
        task_id=row.task_id,
        seq=row.seq,
        state=State(row.state),
        parent_id=row.parent_taskrun_id,
        value=row.value,
        iteration=row.iteration,
        attempts=row.attempt,
        outputs=row.outputs,
        memo=dict(row.memo),
    )


class ExecutionScope:
    """Variables, masking and logs of one execution during one transaction."""

    def __init__(self, execution: Execution, spec: FlowSpec, rows: list[TaskRun | RunRow]) -> None:
        self.execution = execution
        self.spec = spec
        self.rows: dict[str, TaskRun | RunRow] = {row.id: row for row in rows}
        self.masker = Masker(execution.variables.get("secrets", []) if execution.variables else [])
        self.services = ExpressionServicesImpl(
            tenant=execution.tenant_id,
            namespace=execution.namespace,
            execution_id=execution.id,
            masker=self.masker,
        )
        self.writer = LogWriter(
            tenant=execution.tenant_id,
            namespace=execution.namespace,
            flow_id=execution.flow_id,
            execution_id=execution.id,
            masker=self.masker,
        )
        self._base: dict[str, Any] | None = None

    def base_variables(self, runs: list[Any] | None = None) -> dict[str, Any]:
        if self._base is None or runs is not None:
            execution = self.execution
            self._base = execution_variables(
                tenant=execution.tenant_id,
                flow=self.spec,
                execution_id=execution.id,
                start_date=execution.start_date,
                inputs=execution.inputs,
                labels=execution.labels,
                trigger=execution.trigger,
                original_id=execution.original_id,
                runs=runs if runs is not None else [to_view(row) for row in self.rows.values()],
            )
        return self._base

    def evaluate(self, value: Any, run: RunView | None, runs: Mapping[str, RunView]) -> Any:
        base = self.base_variables()
        if run is None:
            return renderer.render_typed(value, base, self.services)
        task = self.spec_task(run.task_id)
        row = self.rows.get(run.id)
        variables = taskrun_variables(
            base,
            run,
            runs,
            task_type=task.type if task else "",
            attempt=max(run.attempts, 1),
            start_date=row.start_date if row else timezone.now(),
        )
        return renderer.render_typed(value, variables, self.services)

    @functools.cached_property
    def working_directories(self) -> set[str]:
        """Ids of the flow's WorkingDirectory tasks."""
        return {task.id for task in self.spec.all_tasks() if task.type == WORKING_DIRECTORY}

    def spec_task(self, task_id: str) -> TaskSpec | None:
        return self.spec.tasks_by_id.get(task_id)

    def full_rows(self, ids: list[str]) -> None:
        """Replace light rows by full ones (one query) before they are changed."""
        missing = [run_id for run_id in ids if not isinstance(self.rows.get(run_id), TaskRun)]
        for row in TaskRun.objects.filter(id__in=missing) if missing else ():
            self.rows[row.id] = row

    def log(
        self, level: str, message: str, *, taskrun_id: str | None = None, task_id: str | None = None
    ) -> None:
        TaskLogger(self.writer, taskrun_id=taskrun_id, task_id=task_id, attempt=None, min_level=None).log(
            level, message
        )

    def save_secrets(self) -> None:
        values = self.masker.values
        if values and values != (self.execution.variables or {}).get("secrets"):
            self.execution.variables = {**(self.execution.variables or {}), "secrets": values}


def _advance_locked(
    execution: Execution,
    spec: FlowSpec,
    rows: list[TaskRun | RunRow] | None = None,
    *,
    starting: bool = False,
    continuation: Continuation | None = None,
) -> None:
    """Advance an execution whose row this transaction has locked (or just created). A worker that
    records a result passes its `continuation`, which may keep one dispatched run for itself."""
    registry = default_registry()
    if execution.state == State.QUEUED or execution.paused_by_user:
        return  # nothing new starts; results of runs in progress are already recorded
    if rows is None:
        rows = load_rows(execution.id)
    scope = ExecutionScope(execution, spec, rows)
    if _stopped_by_control(scope, starting):
        scope.writer.flush()
        return
    for _ in range(10):  # a failed subflow start changes the graph: decide again
        views = [to_view(row) for row in scope.rows.values()]
        try:
            plan = executor.advance(spec, views, registry, scope.evaluate, new_id)
        except DatabaseError:
            raise  # the transaction is broken and nothing was written; TODO(#3): the reaper re-advances it
        except Exception as exc:  # a boundary: an execution must end, never hang on a bug
            logger.exception("executor failed on execution %s", execution.id)
            scope.log("ERROR", f"Baton could not decide what comes next: {type(exc).__name__}: {exc}")
            end_execution(scope, State.FAILED)
            break
        if not _apply_plan(scope, plan, continuation):
            break
        scope._base = None
    scope.writer.flush()


def _stopped_by_control(scope: ExecutionScope, starting: bool = False) -> bool:
    """A kill in progress, or a kill switch: settle the execution instead of advancing it. An IGNORE
    switch ignores messages; the start of an execution is not one (its first runs are sent, and
    workers ignore them)."""
    from flows.services import control
    from flows.services.killswitches import active_switch

    execution = scope.execution
    if execution.state == State.KILLING:
        control.settle(scope, State.KILLED)
        return True
    switch = active_switch(execution.tenant_id, execution.namespace, execution.flow_id, execution.id)
    if switch is None:
        return False
    if switch.type == KillSwitch.Type.IGNORE:
        return not starting
    scope.log("WARN", f"Kill switch {switch.type}: {switch.reason}")
    control.stop(scope, State.KILLED if switch.type == KillSwitch.Type.KILL else State.CANCELLED)
    return True


def _created_histories(view: RunView, is_flowable: bool, now: str) -> list[dict[str, str]]:
    states = [State.CREATED]
    if is_flowable and view.state != State.SKIPPED:
        states.append(State.RUNNING)
    if view.state not in states and view.state != State.SUBMITTED:
        states.append(view.state)
    return [{"state": str(state), "date": now} for state in states]


def _apply_plan(scope: ExecutionScope, plan: Plan, continuation: Continuation | None = None) -> bool:
    """Write a plan; returns True when the executor must decide again (a subflow failed to start)."""
    execution = scope.execution
    now = timezone.now()
    now_iso = iso(now)
    registry = default_registry()
    dispatch = set(plan.dispatch)
    new_rows: list[TaskRun] = []
    for view in plan.created:
        task = scope.spec_task(view.task_id)
        is_flowable = task is not None and registry.get(task.type).kind == "flowable"
        row = TaskRun(
            id=view.id,
            tenant_id=execution.tenant_id,
            execution_id=execution.id,
            seq=view.seq,
            task_id=view.task_id,
            parent_taskrun_id=view.parent_id,
            value=view.value,
            iteration=view.iteration,
            state=view.state,
            histories=_created_histories(view, is_flowable, now_iso),
            outputs=view.outputs,
            memo=view.memo,
            worker_group=(task.worker_group or "") if task else "",
            start_date=now,
        )
        if view.state in TERMINAL_STATES:
            row.end_date = now
        if view.id in dispatch:
            row.attempt = 1
            row.submitted_at = now
            if continuation is None or not continuation.keep(scope, row, now):
                row.state = State.SUBMITTED
        new_rows.append(row)
        scope.rows[row.id] = row
    insert_rows(new_rows)
    scope.full_rows([*plan.changed, *plan.subflows])
    changed_rows: list[TaskRun] = []
    for view in plan.changed.values():
        row = scope.rows[view.id]
        assert isinstance(row, TaskRun)
        if row.state != view.state:
            add_history(row, view.state, now)
            if view.state in TERMINAL_STATES:
                row.end_date = now
                if row.task_id in scope.working_directories:
                    view.outputs = {**(view.outputs or {}), **(close_working_directory(scope, row) or {})}
        row.outputs = view.outputs
        row.memo = view.memo
        changed_rows.append(row)
    if changed_rows:
        TaskRun.objects.bulk_update(changed_rows, ["state", "histories", "outputs", "memo", "end_date"])
    for run_id, message in plan.errors:
        row = scope.rows.get(run_id) if run_id else None
        scope.log("ERROR", message, taskrun_id=run_id, task_id=row.task_id if row else None)
    if plan.dispatch:
        from flows.tasks import send_run_task

        for run_id in plan.dispatch:
            row = scope.rows[run_id]
            if continuation is not None and continuation.run is row:
                continue  # this worker runs it next, without a message
            transaction.on_commit(partial(send_run_task, run_id, 1, row.worker_group))
    for run_id, seconds in plan.pauses.items():
        arm_in(execution, Kind.PAUSE, run_id, seconds)
    again = False
    for run_id in plan.subflows:
        again = _start_subflow(scope, scope.rows[run_id]) or again
    if again:
        return True
    _set_execution_state(scope, plan.execution_state, now)
    return False


def _set_execution_state(scope: ExecutionScope, state: State | None, now: Any) -> None:
    execution = scope.execution
    fields: list[str] = []
    if state is not None and state != State.RUNNING and execution.state == State.CREATED:
        add_history(execution, State.RUNNING, now)  # Kestra's history always passes through RUNNING
        fields += ["state", "histories"]
    if state is not None and state in TERMINAL_STATES:
        _finish(scope, state, now)
        return
    if state is not None and state != execution.state:
        add_history(execution, state, now)
        fields += ["state", "histories"]
    before = execution.variables
    scope.save_secrets()
    if execution.variables != before:
        fields.append("variables")
    if fields:
        execution.save(update_fields=fields)


def _finish(scope: ExecutionScope, state: State, now: Any, held_slot: bool | None = None) -> None:
    """End the execution: render flow outputs, check SLA assertions, free its concurrency slot,
    notify a parent."""
    execution = scope.execution
    spec = scope.spec
    if spec.outputs and state not in (State.KILLED, State.CANCELLED):  # stopped: nothing to report
        outputs: dict[str, Any] = {}
        base = scope.base_variables([to_view(row) for row in scope.rows.values()])
        for output in spec.outputs:
            try:
                outputs[output.id] = _typed_output(
                    output.type, renderer.render_typed(output.value, base, scope.services)
                )
            except (BatonError, ValueError, TypeError) as exc:
                scope.log("ERROR", f"Failed to render output values: output `{output.id}`: {exc}")
                state = State.FAILED
        execution.outputs = scope.masker.mask_value(outputs) if outputs else None
    for sla in spec.sla:
        if sla.type == "EXECUTION_ASSERTION" and sla.assert_:
            try:
                ok = is_truthy(renderer.render_typed(sla.assert_, scope.base_variables(), scope.services))
            except BatonError as exc:
                scope.log("ERROR", f"SLA `{sla.id}`: {exc}")
                ok = False
            if not ok:
                state = _violate_sla(scope, sla, state)
    if held_slot is None:
        held_slot = execution.state != State.QUEUED
    if execution.state != state:
        add_history(execution, state, now)
    execution.end_date = now
    execution.paused_by_user = False
    scope.save_secrets()
    execution.save(
        update_fields=["state", "histories", "end_date", "outputs", "labels", "variables", "paused_by_user"]
    )
    scope.writer.flush()
    if execution.has_timers:
        disarm(execution.id)
    if held_slot:
        _release_slot(execution, spec)
    if execution.parent_taskrun_id:
        from flows.tasks import send_complete_subflow

        transaction.on_commit(partial(send_complete_subflow, execution.id))
    from flows.services.flowtriggers import on_execution_end

    on_execution_end(execution)
    _release_trigger(execution, spec, now)


def _release_trigger(execution: Execution, spec: FlowSpec, now: datetime) -> None:
    """The schedule or polling trigger that started this execution is evaluated again now that it
    ended (Kestra's trigger lock), unless its `stopAfter` lists the end state: then it disables itself
    (enabling it again is the operator's call)."""
    started_by = execution.trigger or {}
    if started_by.get("type") not in LOCKING_TRIGGER_TYPES:
        return
    trigger = next((t for t in spec.triggers if t.get("id") == started_by.get("id")), None)
    if trigger is None:
        return
    from flows.models import Trigger

    rows = Trigger.objects.filter(
        tenant_id=execution.tenant_id,
        namespace=execution.namespace,
        flow_id=execution.flow_id,
        trigger_id=trigger["id"],
    )
    if execution.state in (trigger.get("stopAfter") or ()):
        rows.update(disabled=True, execution_id="", updated=now)
    elif rows.filter(execution_id=execution.id).update(execution_id="", updated=now):
        transaction.on_commit(armed.set)  # the embedded ticker fires what waited for this end


def _violate_sla(scope: ExecutionScope, sla: Any, state: State) -> State:
    execution = scope.execution
    scope.log("WARN", f"SLA `{sla.id}` violated ({sla.type}), behavior {sla.behavior}")
    if sla.labels:
        labels = {label["key"]: label["value"] for label in execution.labels}
        labels.update({str(key): str(value) for key, value in sla.labels.items()})
        execution.labels = [{"key": key, "value": value} for key, value in labels.items()]
    if sla.behavior == "FAIL":
        return State.FAILED
    if sla.behavior == "CANCEL":
        return State.CANCELLED
    return state


def _typed_output(output_type: str, value: Any) -> Any:
    kind = (output_type or "STRING").upper()
    if kind in ("INT",):
        return int(value)
    if kind == "FLOAT":
        return float(value)
    if kind in ("BOOLEAN", "BOOL"):
        return is_truthy(value)
    if kind in ("JSON",) and isinstance(value, str):
        import json

        return json.loads(value)
    if kind == "STRING" and not isinstance(value, str):
        from flows.expressions import to_string

        return to_string(value)
    return value


# ---------------------------------------------------------------------------------------------- subflows


def _start_subflow(scope: ExecutionScope, row: TaskRun) -> bool:
    """Start the child execution of a Subflow run; returns True when it failed to start."""
    execution = scope.execution
    task = scope.spec_task(row.task_id)
    assert task is not None
    view = to_view(row)
    runs = {run_id: to_view(item) for run_id, item in scope.rows.items()}
    props = task.properties
    try:
        namespace = str(scope.evaluate(props.get("namespace"), view, runs))
        flow_id = str(scope.evaluate(props.get("flowId"), view, runs))
        inputs = scope.evaluate(props.get("inputs") or {}, view, runs)
        labels = label_pairs(scope.evaluate(props.get("labels") or {}, view, runs))
        if props.get("inheritLabels"):
            labels = [
                (label["key"], label["value"])
                for label in execution.labels
                if not label["key"].startswith("system.")
            ] + labels
        wait = is_truthy(scope.evaluate(props.get("wait", True), view, runs))
        revision = props.get("revision")
        schedule = props.get("scheduleDate")
        child = start_execution(
            schedule_date=_schedule_date(scope.evaluate(schedule, view, runs)) if schedule else None,
            tenant=execution.tenant_id,
            namespace=namespace,
            flow_id=flow_id,
            inputs=inputs,
            labels=labels,
            revision=int(scope.evaluate(revision, view, runs)) if revision is not None else None,
            trigger={
                "id": task.id,
                "type": "io.kestra.plugin.core.flow.Subflow",
                "variables": {
                    "executionId": execution.id,
                    "namespace": execution.namespace,
                    "flowId": execution.flow_id,
                    "flowRevision": execution.flow_revision,
                },
            },
            parent=(execution, row.id),
        )
    except BatonError as exc:
        scope.log("ERROR", f"Unable to start the subflow: {exc}", taskrun_id=row.id, task_id=row.task_id)
        add_history(row, State.FAILED)
        row.end_date = timezone.now()
        row.save(update_fields=["state", "histories", "end_date"])
        return True
    row.outputs = {"executionId": child.id}
    row.memo = {**row.memo, "childId": child.id, "wait": wait}
    fields = ["outputs", "memo"]
    if not wait:
        add_history(row, final_state(task, State.SUCCESS))
        row.end_date = timezone.now()
        fields += ["state", "histories", "end_date"]
        row.save(update_fields=fields)
        return True  # the flow goes on at once
    row.save(update_fields=fields)
    return False


def _schedule_date(value: Any) -> datetime:
    """A Subflow's `scheduleDate`: an ISO-8601 date-time (UTC when it has no offset)."""
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ExpressionError(f"scheduleDate `{value}` is not an ISO-8601 date-time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def label_pairs(labels: Any) -> list[tuple[str, str]]:
    from flows.expressions import to_string

    if isinstance(labels, dict):
        return [(str(key), to_string(value)) for key, value in labels.items()]
    if isinstance(labels, list):
        return [(str(item["key"]), to_string(item["value"])) for item in labels]
    return []


def complete_subflow(child_id: str) -> None:
    """A child execution ended: close the parent's Subflow run with the child's state and outputs."""
    child = Execution.objects.filter(id=child_id).first()
    if child is None or not child.parent_id or not child.is_terminal:
        return
    with transaction.atomic():
        parent = Execution.objects.select_for_update().filter(id=child.parent_id).first()
        if parent is None or parent.is_terminal:
            return
        rows = list(TaskRun.objects.filter(execution_id=parent.id))
        row = next((item for item in rows if item.id == child.parent_taskrun_id), None)
        if row is None or row.state in TERMINAL_STATES:
            return
        spec = execution_spec(parent)
        scope = ExecutionScope(parent, spec, rows)
        task = scope.spec_task(row.task_id)
        assert task is not None
        view = to_view(row)
        runs = {run_id: to_view(item) for run_id, item in scope.rows.items()}
        transmit = is_truthy(scope.evaluate(task.properties.get("transmitFailed", True), view, runs))
        state = State(child.state)
        if state in (State.FAILED, State.KILLED, State.CANCELLED):
            state = State.FAILED if transmit else State.SUCCESS
        outputs: dict[str, Any] = {"executionId": child.id, "state": child.state}
        child_outputs = dict(child.outputs or {})
        legacy = task.properties.get("outputs")
        if legacy:
            child_scope = ExecutionScope(
                child, execution_spec(child), list(TaskRun.objects.filter(execution_id=child.id))
            )
            try:
                child_outputs.update(
                    renderer.render(legacy, child_scope.base_variables(), child_scope.services)
                )
            except ExpressionError as exc:
                scope.log("ERROR", f"Subflow outputs: {exc}", taskrun_id=row.id, task_id=row.task_id)
                state = State.FAILED
        if child_outputs:
            outputs["outputs"] = child_outputs
        row.outputs = outputs
        started = row.attempts[-1]["endDate"] if row.attempts else iso(row.start_date)
        row.attempts = [
            *row.attempts,
            {"state": str(state), "histories": [], "startDate": started, "endDate": iso(timezone.now())},
        ]
        if state == State.FAILED and _retry_subflow(scope, row, task):
            return
        add_history(row, final_state(task, state))
        row.end_date = timezone.now()
        row.save(update_fields=["state", "histories", "outputs", "attempts", "end_date"])
        _advance_locked(parent, spec, list(scope.rows.values()))


def _retry_subflow(scope: ExecutionScope, row: TaskRun, task: TaskSpec) -> bool:
    """A failed Subflow run with attempts left starts a new child execution after the back-off."""
    first = parse_iso(row.attempts[0]["startDate"])
    delay = next_attempt_delay(retry_policy(task, scope.spec), len(row.attempts), timezone.now() - first)
    if delay is None:
        return False
    row.memo = {key: value for key, value in row.memo.items() if key not in ("subflowRequested", "childId")}
    row.save(update_fields=["outputs", "attempts", "memo"])
    arm_in(scope.execution, Kind.ADVANCE, row.id, delay)
    return True


# ---------------------------------------------------------------------------------------------- pauses


def resume_paused_run(execution_id: str, run_id: str) -> None:
    """A Pause timer fired: resume the run (pauseDuration) or fail it (timeout)."""
    with transaction.atomic():
        execution = Execution.objects.select_for_update().filter(id=execution_id).first()
        if execution is None or execution.is_terminal:
            return
        row = TaskRun.objects.filter(id=run_id, execution_id=execution_id).first()
        if row is None or row.state != State.PAUSED:
            return
        if row.memo.get("pauseAction") == "fail":
            row.memo = {**row.memo, "timedOut": True}
            add_history(row, State.FAILED)
            row.end_date = timezone.now()
        else:
            add_history(row, State.RUNNING)
        row.save(update_fields=["state", "histories", "memo", "end_date"])
        _resume_execution_state(execution)
        _advance_locked(execution, execution_spec(execution))


class NotPaused(BatonError):
    code = "not_paused"
    http_status = 409


def resume_execution(
    execution_id: str, inputs: Mapping[str, Any] | None = None, tenant: str | None = None
) -> None:
    """Resume the paused Pause tasks of an execution; their `onResume` inputs become their outputs.

    The inputs are validated against each Pause's `onResume` definitions first: InputValidationError
    or NotPaused change nothing.
    """
    with transaction.atomic():
        executions = Execution.objects.select_for_update().filter(id=execution_id)
        if tenant is not None:
            executions = executions.filter(tenant_id=tenant)
        execution = executions.first()
        if execution is None:
            raise NotPaused(f"execution `{execution_id}` not found")
        paused = list(TaskRun.objects.filter(execution_id=execution_id, state=State.PAUSED))
        if execution.is_terminal or not (paused or execution.paused_by_user):
            raise NotPaused(f"execution `{execution_id}` is {execution.state}, not paused")
        spec = execution_spec(execution)
        typed = {row.id: _on_resume_inputs(spec.tasks_by_id[row.task_id], inputs or {}) for row in paused}
        for row in paused:
            row.outputs = {**(row.outputs or {}), "onResume": typed[row.id]}
            add_history(row, State.RUNNING)
            row.save(update_fields=["state", "histories", "outputs"])
            disarm(execution.id, Kind.PAUSE, row.id)
        execution.paused_by_user = False
        _resume_execution_state(execution)
        _advance_locked(execution, execution_spec(execution))


def _on_resume_inputs(task: TaskSpec, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values of a Pause's `onResume` inputs, validated like flow inputs."""
    import yaml

    definitions = task.properties.get("onResume") or []
    if not definitions:
        return {}
    # The spec layer checks input definitions as part of a flow: give it a minimal one.
    source = yaml.safe_dump(
        {
            "id": "on-resume",
            "namespace": "baton.internal",
            "inputs": [dict(item) for item in definitions],
            "tasks": [{"id": "noop", "type": "io.kestra.plugin.core.log.Log", "message": "-"}],
        }
    )
    return parse_inputs(parse_flow(source), dict(inputs))


def _resume_execution_state(execution: Execution) -> None:
    if execution.state == State.PAUSED:
        add_history(execution, State.RUNNING)
        execution.save(update_fields=["state", "histories", "paused_by_user"])


# ---------------------------------------------------------------------------------------------- SLA


def _schedule_sla(execution: Execution, spec: FlowSpec) -> None:
    for sla in spec.sla:
        if sla.type == "MAX_DURATION" and sla.duration is not None:
            arm_in(execution, Kind.SLA, sla.id, sla.duration.total_seconds())


def check_sla(execution_id: str, sla_id: str) -> None:
    """A MAX_DURATION deadline passed: apply the SLA's behavior if the execution still runs."""
    with transaction.atomic():
        execution = Execution.objects.select_for_update().filter(id=execution_id).first()
        if execution is None or execution.is_terminal:
            return
        spec = execution_spec(execution)
        sla = next((item for item in spec.sla if item.id == sla_id), None)
        if sla is None:
            return
        rows = list(TaskRun.objects.filter(execution_id=execution_id))
        scope = ExecutionScope(execution, spec, rows)
        state = _violate_sla(scope, sla, State.RUNNING)
        if state == State.RUNNING:
            execution.save(update_fields=["labels"])
            scope.writer.flush()
            return
        end_execution(scope, state)


def end_execution(scope: ExecutionScope, state: State) -> None:
    """Stop an execution now in `state`: unfinished task runs are KILLED (workers see it and stop)."""
    now = timezone.now()
    scope.full_rows([row.id for row in scope.rows.values() if row.state not in TERMINAL_STATES])
    unfinished = [row for row in scope.rows.values() if row.state not in TERMINAL_STATES]
    for row in unfinished:
        add_history(row, State.KILLED, now)
        row.end_date = now
    if unfinished:
        TaskRun.objects.bulk_update(unfinished, ["state", "histories", "end_date"])
    _finish(scope, state, now)
