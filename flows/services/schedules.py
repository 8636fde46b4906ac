"""Schedule triggers (`io.kestra.plugin.core.trigger.Schedule`): fire times kept in `Trigger` rows,
fired by the tick.

Saving a flow revision reschedules its schedules at once (`sync_triggers`); deleting or disabling
the flow, or the trigger, stops them. The tick (`fire_due`) takes each due row under a row lock that
other ticks skip, records every slot in `TriggerSlot` (unique: a slot starts one execution at most,
whatever the number of beats or ticks), and starts the execution with `trigger.date`, `trigger.next`
and `trigger.previous`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from flows.errors import BatonError
from flows.models import Execution, Flow, Trigger, TriggerSlot
from flows.services.conditions import TriggerScope
from flows.services.executions import label_pairs
from flows.services.flows import spec_of_source
from flows.services.timers import armed
from flows.services.variables import iso, parse_iso
from flows.spec.cron import Cron, parse_cron
from flows.spec.durations import parse_duration
from flows.spec.loader import SCHEDULE_TRIGGER_TYPES
from flows.spec.model import FlowSpec
from flows.spec.polling import POLLING_TRIGGER_TYPES, polling_config

logger = logging.getLogger(__name__)

BATCH = 200  # due rows taken per tick
_EPSILON = timedelta(microseconds=1)


class ScheduleError(BatonError):
    code = "schedule_error"
    http_status = 422


def cron_of(trigger: Mapping[str, Any]) -> Cron:
    return parse_cron(str(trigger["cron"]), trigger.get("timezone"), trigger.get("withSeconds"))


def _config(trigger: Mapping[str, Any]) -> dict[str, Any]:
    return {key: trigger.get(key) for key in ("cron", "timezone", "withSeconds")}


def sync_triggers(flow: Flow, spec: FlowSpec | None, now: datetime | None = None) -> None:
    """Bring the flow's trigger rows (one per trigger, any type) in line with its current definition
    (None: the flow is gone). A new or changed schedule gets its next fire time from now, a new or
    changed polling trigger is evaluated at the next tick; an unchanged one keeps its state."""
    now = now or timezone.now()
    rows = Trigger.objects.filter(tenant_id=flow.tenant_id, namespace=flow.namespace, flow_id=flow.flow_id)
    triggers = {}
    if spec is not None and not flow.deleted:
        triggers = {t["id"]: t for t in spec.triggers}
    rows.exclude(trigger_id__in=list(triggers)).delete()
    existing = {row.trigger_id: row for row in rows}
    for trigger_id, trigger in triggers.items():
        row = existing.get(trigger_id)
        config = _state_config(trigger)
        if row is not None and row.config == config and row.type == trigger["type"]:
            continue
        next_fire = _first_fire(trigger, now)
        if row is None:
            Trigger.objects.create(
                tenant_id=flow.tenant_id,
                namespace=flow.namespace,
                flow_id=flow.flow_id,
                trigger_id=trigger_id,
                type=trigger["type"],
                config=config,
                next_fire=next_fire,
            )
        else:
            rows.filter(pk=row.pk).update(
                type=trigger["type"], config=config, next_fire=next_fire, updated=now
            )
    if any(t.get("type") in _TIMED_TRIGGER_TYPES for t in triggers.values()):
        transaction.on_commit(armed.set)  # the embedded ticker re-plans its sleep


_TIMED_TRIGGER_TYPES = (*SCHEDULE_TRIGGER_TYPES, *POLLING_TRIGGER_TYPES)  # the ones with a next_fire


def _state_config(trigger: Mapping[str, Any]) -> dict[str, Any]:
    if trigger.get("type") in SCHEDULE_TRIGGER_TYPES:
        return _config(trigger)
    if trigger.get("type") in POLLING_TRIGGER_TYPES:
        return polling_config(trigger)
    return {}


def _first_fire(trigger: Mapping[str, Any], now: datetime) -> datetime | None:
    """When a new, changed or enabled trigger fires first: a schedule at its next slot, a polling
    trigger at the next tick (never, while its own `disabled` is true; a disabled flow is skipped at
    each evaluation, so that enabling it again needs no trigger change)."""
    if trigger.get("type") in SCHEDULE_TRIGGER_TYPES:
        return cron_of(trigger).next_after(now)
    if trigger.get("type") in POLLING_TRIGGER_TYPES and trigger.get("disabled") is not True:
        return now
    return None


def next_due() -> datetime | None:
    return (
        Trigger.objects.filter(
            type__in=SCHEDULE_TRIGGER_TYPES, disabled=False, execution_id="", next_fire__isnull=False
        )
        .order_by("next_fire")
        .values_list("next_fire", flat=True)
        .first()
    )


def fire_due(now: datetime | None = None) -> int:
    """Fire the schedules due by `now`; returns how many executions started. Safe in several processes."""
    now = now or timezone.now()
    ids = list(
        Trigger.objects.filter(
            type__in=SCHEDULE_TRIGGER_TYPES, disabled=False, execution_id="", next_fire__lte=now
        )
        .order_by("next_fire")
        .values_list("id", flat=True)[:BATCH]
    )
    backfills = list(Trigger.objects.filter(backfill__isnull=False).values_list("id", flat=True)[:BATCH])
    started = 0
    for trigger_pk in ids:
        try:
            started += _fire(trigger_pk, now)
        except BatonError as error:  # recorded on the row; the schedule goes on with its next slot
            logger.warning("trigger %s: %s", trigger_pk, error)
    for trigger_pk in backfills:
        started += _advance_backfill(trigger_pk, now)
    return started


def _fire(trigger_pk: int, now: datetime) -> int:
    """Evaluate one due schedule: start its first due slot (as `recoverMissedSchedules` and
    `lateMaximumDelay` say), and hold it until that execution ends (Kestra's lock: slots missed
    meanwhile are caught up one by one afterwards, or not at all, as `recoverMissedSchedules` says)."""
    with transaction.atomic():
        taken = _take(
            trigger_pk,
            lambda row: (
                not (row.disabled or row.execution_id or row.next_fire is None or row.next_fire > now)
            ),
        )
        if taken is None:
            return 0  # another tick has it, it waits for its execution, or it changed meanwhile
        row, (flow, spec, trigger) = taken
        cron = cron_of(trigger)
        due = row.next_fire
        row.next_fire = cron.next_after(now)
        row.last_evaluation = now
        row.updated = now
        row.error = ""
        started = 0
        if not (flow.disabled or spec.disabled or trigger.get("disabled") is True):
            for slot in _due_slots(cron, trigger, due, now):
                row.last_fire = slot
                try:
                    execution = _start_slot(flow, spec, trigger, cron, slot)
                except BatonError as failure:
                    row.error = f"slot {iso(slot)}: {failure}"
                    continue
                if execution is not None:
                    started = 1
                    row.execution_id = "" if execution.is_terminal else execution.id
                    row.next_fire = cron.next_after(slot)  # missed slots after it: once it ended
                    break
        row.save(
            update_fields=["next_fire", "last_fire", "last_evaluation", "updated", "error", "execution_id"]
        )
    return started


def _due_slots(cron: Cron, trigger: Mapping[str, Any], due: datetime, now: datetime) -> Iterator[datetime]:
    """The slots from `due` (the first one not evaluated) to `now` that may still start, oldest first,
    after `recoverMissedSchedules` (ALL, LAST, NONE) and `lateMaximumDelay`; at most BATCH of them."""
    late = trigger.get("lateMaximumDelay")
    if late:  # slots later than this are skipped: begin with the first one in time
        due = max(due, cron.next_after(now - parse_duration(late) - _EPSILON))
    recover = trigger.get("recoverMissedSchedules") or "ALL"
    if recover == "ALL":
        yield from islice((slot for slot in [due, *cron.fires_between(due, now)] if slot <= now), BATCH)
        return
    last = cron.previous_before(now)
    if last >= due and (recover == "LAST" or (now - last).total_seconds() <= 60):
        yield last  # NONE: only a slot due since the last tick or so, never a missed one


def _take(
    trigger_pk: int, ready: Callable[[Trigger], bool]
) -> tuple[Trigger, tuple[Flow, FlowSpec, Mapping[str, Any]]] | None:
    """Lock a schedule's row (skipped when another tick holds it) if it is `ready`, with its definition;
    a row whose flow or schedule is gone is deleted. Call inside a transaction."""
    row = Trigger.objects.select_for_update(skip_locked=True).filter(pk=trigger_pk).first()
    if row is None or not ready(row):
        return None
    found = _definition(row)
    if found is None:
        row.delete()
        return None
    return row, found


def _definition(row: Trigger) -> tuple[Flow, FlowSpec, Mapping[str, Any]] | None:
    return definition_of(row, SCHEDULE_TRIGGER_TYPES)


def definition_of(
    row: Trigger, types: tuple[str, ...] = _TIMED_TRIGGER_TYPES
) -> tuple[Flow, FlowSpec, Mapping[str, Any]] | None:
    """The flow, its definition and the trigger (of one of `types`) of a trigger row; None when they
    are gone."""
    flow = (
        Flow.objects.filter(
            tenant_id=row.tenant_id, namespace=row.namespace, flow_id=row.flow_id, deleted=False
        )
        .only("tenant_id", "namespace", "flow_id", "source", "disabled", "revision")
        .first()
    )
    if flow is None:
        return None
    spec = spec_of_source(flow.source)
    trigger = next((t for t in spec.triggers if t["id"] == row.trigger_id), None)
    if trigger is None or trigger.get("type") not in types:
        return None
    return flow, spec, trigger


def _start_slot(
    flow: Flow,
    spec: FlowSpec,
    trigger: Mapping[str, Any],
    cron: Cron,
    slot: datetime,
    backfill: Mapping[str, Any] | None = None,
) -> Execution | None:
    """Start the execution of one slot, once: None when it already fired or a condition does not hold."""
    variables = {
        "date": iso(slot),
        "next": iso(cron.next_after(slot)),
        "previous": iso(cron.previous_before(slot - _EPSILON)),
    }
    try:
        with transaction.atomic():
            TriggerSlot.objects.create(
                tenant_id=flow.tenant_id,
                namespace=flow.namespace,
                flow_id=flow.flow_id,
                trigger_id=trigger["id"],
                slot=slot,
            )
    except IntegrityError:
        return None  # fired already (another beat, a duplicated tick or a backfill)
    scope = TriggerScope(flow.tenant_id, spec, flow.revision, variables, zone=cron.zone)
    if not scope.all_hold(trigger.get("conditions") or [], "schedules"):
        return None
    if backfill is None:
        execution = scope.start(trigger)
    else:  # a backfill's inputs and labels win over the trigger's
        rendered = scope.inputs(trigger)
        execution = scope.start(
            trigger,
            inputs={**(rendered if isinstance(rendered, dict) else {}), **(backfill.get("inputs") or {})},
            labels=[*label_pairs(backfill.get("labels") or {}), ("system.backfill", "true")],
        )
    TriggerSlot.objects.filter(
        tenant_id=flow.tenant_id,
        namespace=flow.namespace,
        flow_id=flow.flow_id,
        trigger_id=trigger["id"],
        slot=slot,
    ).update(execution_id=execution.id)
    return execution


# ---------------------------------------------------------------------------------------------- operators


class TriggerNotFound(BatonError):
    code = "trigger_not_found"
    http_status = 404


def set_disabled(row: Trigger, disabled: bool, now: datetime | None = None) -> Trigger:
    """Disable or enable a trigger. Enabling does not replay the slots missed meanwhile: the schedule
    goes on with its next upcoming slot (a backfill replays them on request); a polling trigger is
    evaluated at the next tick."""
    now = now or timezone.now()
    row.disabled = disabled
    row.updated = now
    if not disabled:
        found = definition_of(row)
        if found is not None:
            row.next_fire = _first_fire(found[2], now)
        transaction.on_commit(armed.set)
    row.save(update_fields=["disabled", "next_fire", "updated"])
    return row


def unlock(row: Trigger, now: datetime | None = None) -> Trigger:
    """Release a stuck trigger: drop its evaluation lock, the execution it waits for and its error,
    and give it a next fire time if it has none."""
    now = now or timezone.now()
    found = definition_of(row)
    row.locked_until = None
    row.execution_id = ""
    row.error = ""
    if row.next_fire is None and found is not None:
        row.next_fire = _first_fire(found[2], now)
    row.updated = now
    row.save(update_fields=["locked_until", "execution_id", "error", "next_fire", "updated"])
    transaction.on_commit(armed.set)
    return row


def create_backfill(
    row: Trigger,
    start: datetime,
    end: datetime | None,
    inputs: Mapping[str, Any] | None = None,
    labels: Any = None,
    now: datetime | None = None,
) -> Trigger:
    """Start one execution per slot in [start, end] (end: now when None), skipping slots that
    already have one. The live schedule (`next_fire`) does not move."""
    now = now or timezone.now()
    end = min(end or now, now)
    if start >= end:
        raise ScheduleError("the backfill's start must be before its end, and in the past")
    if row.backfill is not None:
        raise ScheduleError("this trigger already has a backfill: delete it first")
    row.backfill = {
        "start": iso(start),
        "end": iso(end),
        "currentDate": iso(start),
        "inputs": dict(inputs or {}),
        "labels": labels or {},
        "paused": False,
    }
    row.updated = now
    row.save(update_fields=["backfill", "updated"])
    transaction.on_commit(armed.set)
    return row


def pause_backfill(row: Trigger, paused: bool) -> Trigger:
    if row.backfill is None:
        raise TriggerNotFound(f"trigger `{row.trigger_id}` has no backfill")
    row.backfill = {**row.backfill, "paused": paused}
    row.save(update_fields=["backfill"])
    if not paused:
        transaction.on_commit(armed.set)
    return row


def delete_backfill(row: Trigger) -> Trigger:
    if row.backfill is None:
        raise TriggerNotFound(f"trigger `{row.trigger_id}` has no backfill")
    row.backfill = None
    row.save(update_fields=["backfill"])
    return row


def _advance_backfill(trigger_pk: int, now: datetime) -> int:
    """Start the next batch of a backfill's slots; the backfill ends after its last slot."""
    with transaction.atomic():
        taken = _take(trigger_pk, lambda row: row.backfill is not None and not row.backfill.get("paused"))
        if taken is None:
            return 0
        row, (flow, spec, trigger) = taken
        cron = cron_of(trigger)
        backfill = row.backfill
        current, end = parse_iso(backfill["currentDate"]), parse_iso(backfill["end"])
        slots: list[datetime] = []
        if backfill["currentDate"] == backfill["start"] and cron.previous_before(current) == current:
            slots.append(current)  # the start is itself a slot
        for slot in cron.fires_between(current, end):
            if len(slots) >= BATCH:
                break
            slots.append(slot)
        started = 0
        for slot in slots:
            try:
                started += _start_slot(flow, spec, trigger, cron, slot, backfill=backfill) is not None
            except BatonError as failure:
                row.error = f"backfill slot {iso(slot)}: {failure}"
        done = not slots or slots[-1] >= end or len(slots) < BATCH
        row.backfill = None if done else {**backfill, "currentDate": iso(slots[-1])}
        row.updated = now
        row.save(update_fields=["backfill", "error", "updated"])
    return started
