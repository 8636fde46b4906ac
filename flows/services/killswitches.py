"""Kill switches: an operator's brake on a tenant, a namespace (and its children), a flow or one execution.

KILL kills running executions and new ones at once; CANCEL lets running task runs finish and
cancels the rest; IGNORE drops the messages of matching executions. The executor and the
workers ask `active_switch()` on every step, so each process keeps a copy of the live switches
(a small table) and reloads it at most every BATON_KILL_SWITCH_REFRESH_SECONDS. A change made
in this process is seen at once; one made elsewhere, within that delay.

Every change writes a KillSwitchAudit row in the same transaction. Nothing is ever deleted:
`delete_switch` sets `deleted`, and the audit keeps what the switch looked like.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Substr
from django.utils import timezone

from flows.engine.states import TERMINAL_STATES
from flows.errors import BatonError
from flows.models import Execution, KillSwitch, KillSwitchAudit, Tenant
from flows.services.variables import iso
from flows.spec.namespaces import within

logger = logging.getLogger(__name__)

Type = KillSwitch.Type

# When several switches cover an execution, the strongest wins.
_STRENGTH = {Type.KILL: 3, Type.CANCEL: 2, Type.IGNORE: 1}
# What `update_switch` may change; `deleted` goes through `delete_switch`, the rest is history.
EDITABLE_FIELDS = (
    "tenant",
    "type",
    "namespace",
    "flow_id",
    "execution_id",
    "start_date",
    "end_date",
    "reason",
)


class InvalidKillSwitch(BatonError):
    """A kill switch was refused; `field` names the offending field ("" for the switch itself)."""

    code = "invalid_kill_switch"
    http_status = 422

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


# ---------------------------------------------------------------------------------------------- writes


def validate_switch(
    *,
    tenant: str,
    type: str,
    namespace: str = "",
    flow_id: str = "",
    execution_id: str = "",
    start_date: datetime | None,
    end_date: datetime | None = None,
    reason: str,
) -> None:
    """Check a switch's fields without writing anything; raises InvalidKillSwitch."""
    if type not in _STRENGTH:
        raise InvalidKillSwitch("type", f"must be one of {', '.join(_STRENGTH)}, not `{type}`")
    if not (reason or "").strip():
        raise InvalidKillSwitch("reason", "required: say why executions are stopped")
    if start_date is None:
        raise InvalidKillSwitch("start_date", "required")
    if end_date is not None and end_date <= start_date:
        raise InvalidKillSwitch("end_date", f"must be after the start date ({iso(start_date)})")
    if flow_id and not namespace:
        raise InvalidKillSwitch("namespace", f"required with a flow (`{flow_id}`)")
    if not tenant or not Tenant.objects.filter(id=tenant).exists():
        raise InvalidKillSwitch("tenant", f"no tenant `{tenant}`")


def create_switch(
    *,
    tenant: str,
    type: str,
    namespace: str = "",
    flow_id: str = "",
    execution_id: str = "",
    start_date: datetime | None,
    end_date: datetime | None = None,
    reason: str,
    user: str = "",
) -> KillSwitch:
    """Store a new switch and its CREATED audit row.

    An active KILL switch kills the unfinished executions it covers, after commit.
    Raises InvalidKillSwitch; then nothing is stored.
    """
    fields = {
        "tenant": tenant,
        "type": type,
        "namespace": namespace,
        "flow_id": flow_id,
        "execution_id": execution_id,
        "start_date": start_date,
        "end_date": end_date,
        "reason": reason,
    }
    validate_switch(**fields)
    with transaction.atomic():
        switch = KillSwitch.objects.create(
            tenant_id=tenant,
            type=type,
            namespace=namespace,
            flow_id=flow_id,
            execution_id=execution_id,
            start_date=start_date,
            end_date=end_date,
            reason=reason,
            created_by=user,
        )
        _audit(switch, "CREATED", user)
        _changed()
        if _is_active_kill(switch):
            transaction.on_commit(partial(_kill_matching, switch.pk))
    logger.info("kill switch %s created by %s: %s", switch.pk, user or "-", switch)
    return switch


def update_switch(switch: KillSwitch, user: str = "", **changes: Any) -> KillSwitch:
    """Change the fields of a switch (names in EDITABLE_FIELDS; `tenant` is an id); audited as UPDATED.

    Returns `switch` with its stored values. No real change writes nothing. A change that makes it
    an active KILL switch (or moves one) kills the unfinished executions it covers, after commit.
    Raises InvalidKillSwitch (also for a deleted switch); then nothing changes.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"update_switch: not editable: {', '.join(sorted(unknown))}")
    if "tenant" in changes:
        changes["tenant_id"] = changes.pop("tenant")
    with transaction.atomic():
        stored = KillSwitch.objects.select_for_update().get(pk=switch.pk)
        if stored.deleted:
            raise InvalidKillSwitch("", f"kill switch {stored.pk} is deleted and can't be changed")
        before = _scope_of_kill(stored)
        changed = {name: value for name, value in changes.items() if getattr(stored, name) != value}
        for name, value in changed.items():
            setattr(stored, name, value)
        validate_switch(
            tenant=stored.tenant_id,
            type=stored.type,
            namespace=stored.namespace,
            flow_id=stored.flow_id,
            execution_id=stored.execution_id,
            start_date=stored.start_date,
            end_date=stored.end_date,
            reason=stored.reason,
        )
        if changed:
            stored.save(update_fields=list(changed))
            _audit(stored, "UPDATED", user)
            _changed()
            after = _scope_of_kill(stored)
            if after is not None and after != before:
                transaction.on_commit(partial(_kill_matching, stored.pk))
            logger.info("kill switch %s updated by %s: %s", stored.pk, user or "-", ", ".join(changed))
    _copy_fields(stored, switch)
    return switch


def delete_switch(switch: KillSwitch, user: str = "") -> KillSwitch:
    """Soft-delete a switch (it stays listed, with its audit); deleting it again does nothing."""
    with transaction.atomic():
        stored = KillSwitch.objects.select_for_update().get(pk=switch.pk)
        if not stored.deleted:
            stored.deleted = True
            stored.save(update_fields=["deleted"])
            _audit(stored, "DELETED", user)
            _changed()
            logger.info("kill switch %s deleted by %s", stored.pk, user or "-")
    _copy_fields(stored, switch)
    return switch


def snapshot_of(switch: KillSwitch) -> dict[str, Any]:
    """The switch's fields as JSON, dates in ISO format: what an audit row keeps."""
    return {
        "id": switch.pk,
        "tenant": switch.tenant_id,
        "type": str(switch.type),
        "namespace": switch.namespace,
        "flow_id": switch.flow_id,
        "execution_id": switch.execution_id,
        "start_date": iso(switch.start_date),
        "end_date": iso(switch.end_date),
        "reason": switch.reason,
        "created": iso(switch.created),
        "created_by": switch.created_by,
        "deleted": switch.deleted,
    }


def _audit(switch: KillSwitch, action: str, user: str) -> None:
    KillSwitchAudit.objects.create(switch=switch, action=action, user=user, snapshot=snapshot_of(switch))


def _copy_fields(source: KillSwitch, target: KillSwitch) -> None:
    if target is source:
        return
    for field in KillSwitch._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))


def _changed() -> None:
    # Now, so that this connection sees its own write even inside a longer transaction; and
    # again on commit, so that a reload by another thread that raced with the commit is dropped.
    forget_cached_switches()
    transaction.on_commit(forget_cached_switches)


# ---------------------------------------------------------------------------------------------- reads


def is_switch_active(switch: KillSwitch, now: datetime | None = None) -> bool:
    """Not deleted, started, and not yet ended."""
    now = now or timezone.now()
    return (
        not switch.deleted and switch.start_date <= now and (switch.end_date is None or switch.end_date > now)
    )


def covers(switch: KillSwitch, namespace: str, flow_id: str, execution_id: str | None) -> bool:
    """Whether the switch's scope (tenant aside) includes this execution."""
    if switch.execution_id:
        return switch.execution_id == execution_id
    if switch.flow_id:
        return switch.namespace == namespace and switch.flow_id == flow_id
    if switch.namespace:
        return within(namespace, switch.namespace)
    return True


def active_switch(
    tenant: str,
    namespace: str,
    flow_id: str,
    execution_id: str | None,
    now: datetime | None = None,
) -> KillSwitch | None:
    """The switch that applies to an execution now, the strongest (KILL > CANCEL > IGNORE) if several.

    Costs no query while this process's copy is fresh (see the module docstring). The returned
    switch is shared by every caller of this process: read it, never change or save it.
    `execution_id` may be None before the execution exists (only execution switches need it).
    """
    switches = _switches_of(tenant)
    if not switches:
        return None
    now = now or timezone.now()
    best: KillSwitch | None = None
    for switch in switches:  # by id: of two equally strong switches, the older wins
        if (
            is_switch_active(switch, now)
            and covers(switch, namespace, flow_id, execution_id)
            and (best is None or _STRENGTH[switch.type] > _STRENGTH[best.type])
        ):
            best = switch
    return best


def matching_executions(switch: KillSwitch) -> QuerySet[Execution]:
    """The unfinished executions of the switch's tenant that its scope covers (dates aside)."""
    executions = Execution.objects.for_tenant(switch.tenant_id).exclude(state__in=list(TERMINAL_STATES))
    if switch.execution_id:
        return executions.filter(id=switch.execution_id)
    if switch.flow_id:
        return executions.filter(namespace=switch.namespace, flow_id=switch.flow_id)
    if switch.namespace:
        # Not `startswith`: SQLite's LIKE ignores case (a switch on `Team` is no switch on `team`);
        # `=` on a substring is exact in both databases.
        prefix = switch.namespace + "."
        return executions.annotate(namespace_head=Substr("namespace", 1, len(prefix))).filter(
            Q(namespace=switch.namespace) | Q(namespace_head=prefix)
        )
    return executions


def _scope_of_kill(switch: KillSwitch) -> tuple[str, str, str, str] | None:
    """What an active KILL switch kills; None for any other switch."""
    if not _is_active_kill(switch):
        return None
    return (switch.tenant_id, switch.namespace, switch.flow_id, switch.execution_id)


def _is_active_kill(switch: KillSwitch) -> bool:
    return switch.type == Type.KILL and is_switch_active(switch)


def _kill_matching(switch_id: int) -> None:
    """Kill what an active KILL switch covers (run after commit)."""
    from flows.services.control import kill_execution

    switch = KillSwitch.objects.filter(pk=switch_id).first()
    if switch is None or not _is_active_kill(switch):
        return  # changed again before this ran
    execution_ids = list(matching_executions(switch).values_list("id", flat=True))
    logger.info("kill switch %s kills %s executions", switch_id, len(execution_ids))
    for execution_id in execution_ids:
        try:
            kill_execution(
                execution_id, tenant=switch.tenant_id, reason=f"kill switch {switch_id}: {switch.reason}"
            )
        except BatonError:
            # Typically it ended between the query and the kill; the others must still be killed.
            logger.warning(
                "kill switch %s could not kill %s",
                switch_id,
                execution_id,
                exc_info=True,
                extra={"execution_id": execution_id},
            )


# ---------------------------------------------------------------------------------------------- cache


@dataclass(frozen=True)
class _Copy:
    by_tenant: Mapping[str, tuple[KillSwitch, ...]]
    loaded_at: float  # time.monotonic() before the query


_copy: _Copy | None = None
# Bumped by every forget: a reload that started before it must not be kept.
_generation = 0
_lock = threading.Lock()


def forget_cached_switches() -> None:
    """Drop this process's copy of the switches: the next `active_switch` reloads them."""
    global _copy, _generation
    with _lock:
        _generation += 1
        _copy = None


def _switches_of(tenant: str) -> tuple[KillSwitch, ...]:
    copy = _copy
    if copy is None or time.monotonic() - copy.loaded_at >= settings.BATON_KILL_SWITCH_REFRESH_SECONDS:
        copy = _reload()
    return copy.by_tenant.get(tenant, ())


def _reload() -> _Copy:
    global _copy
    generation = _generation
    loaded_at = time.monotonic()
    # Switches that have ended are left out (reviving one is a change, seen like any other);
    # switches that start later are kept: they may start before the next reload.
    live = KillSwitch.objects.filter(deleted=False).filter(
        Q(end_date__isnull=True) | Q(end_date__gt=timezone.now())
    )
    by_tenant: dict[str, list[KillSwitch]] = {}
    for switch in live.order_by("id"):
        by_tenant.setdefault(switch.tenant_id, []).append(switch)
    copy = _Copy({tenant: tuple(switches) for tenant, switches in by_tenant.items()}, loaded_at)
    with _lock:
        if generation == _generation:
            _copy = copy
    return copy
