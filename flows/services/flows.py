"""Flows and their revisions."""

from __future__ import annotations

import dataclasses
import functools

from django.db import transaction
from django.utils import timezone

from flows.models import Flow, FlowRevision, Namespace, Tenant
from flows.spec import load_flow
from flows.spec.model import FlowSpec
from plugins.registry import default_registry


def ensure_tenant(tenant: str) -> Tenant:
    obj, _ = Tenant.objects.get_or_create(id=tenant, defaults={"name": tenant})
    return obj


def parse_flow(source: str) -> FlowSpec:
    """Validate a flow's YAML; raises FlowValidationError with paths and lines."""
    return load_flow(source, default_registry())


@transaction.atomic
def save_flow_revision(tenant: str, source: str) -> Flow:
    """Store `source` as the next revision of its flow (a new flow gets revision 1).

    An unchanged source is not a new revision. Raises FlowValidationError, changing nothing.
    """
    spec = parse_flow(source)
    ensure_tenant(tenant)
    Namespace.objects.get_or_create(tenant_id=tenant, name=spec.namespace)
    flow = (
        Flow.objects.select_for_update()
        .filter(tenant_id=tenant, namespace=spec.namespace, flow_id=spec.id)
        .first()
    )
    if flow is None:
        flow = Flow.objects.create(
            tenant_id=tenant,
            namespace=spec.namespace,
            flow_id=spec.id,
            revision=1,
            source=source,
            disabled=spec.disabled,
        )
        FlowRevision.objects.create(flow=flow, revision=1, source=source)
        _sync_triggers(flow, spec)
        return flow
    if flow.source == source and not flow.deleted:
        return flow
    flow.revision += 1
    flow.source = source
    flow.disabled = spec.disabled
    flow.deleted = False
    flow.updated = timezone.now()
    flow.save(update_fields=["revision", "source", "disabled", "deleted", "updated"])
    FlowRevision.objects.create(flow=flow, revision=flow.revision, source=source)
    _sync_triggers(flow, spec)
    return flow


def _sync_triggers(flow: Flow, spec: FlowSpec | None) -> None:
    from flows.services.schedules import sync_triggers  # schedules start executions: a later layer

    sync_triggers(flow, spec)


@transaction.atomic
def delete_flow(flow: Flow) -> None:
    """Delete a flow, softly: its revisions stay (its executions point at them) and saving it again
    brings it back as a new revision."""
    Flow.objects.filter(pk=flow.pk).update(deleted=True, updated=timezone.now())
    flow.deleted = True
    _sync_triggers(flow, None)


@functools.lru_cache(maxsize=512)
def spec_of_source(source: str) -> FlowSpec:
    """The definition of a valid source, parsed once per process (raises FlowValidationError)."""
    return parse_flow(source)


# Revisions are immutable: their definitions are cached by row id for the life of the process.
# (Tests that roll back transactions clear it: SQLite can hand out a rolled-back id again.)
_spec_by_revision_id: dict[int, FlowSpec] = {}


def spec_of_revision(revision_id: int) -> FlowSpec:
    """The definition of a FlowRevision row: one indexed query the first time, then none."""
    spec = _spec_by_revision_id.get(revision_id)
    if spec is None:
        source, revision = FlowRevision.objects.values_list("source", "revision").get(pk=revision_id)
        spec = dataclasses.replace(spec_of_source(source), revision=revision)
        _spec_by_revision_id[revision_id] = spec
    return spec


def forget_cached_revisions() -> None:
    _spec_by_revision_id.clear()
