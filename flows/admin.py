"""Operators' view. Flows and executions are read-only here: their changes go through the services.

Kill switches are edited here, through `flows.services.killswitches` (audited, soft-deleted)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.text import Truncator

from flows.models import (
    Execution,
    Flow,
    FlowRevision,
    KillSwitch,
    KillSwitchAudit,
    KVEntry,
    LogEntry,
    Namespace,
    TaskRun,
    Tenant,
)
from flows.services import killswitches
from flows.services.runtime import Masker


class ReadOnlyMixin:
    """No add, change or delete: the admin shows, the services write."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "created"]
    search_fields = ["id", "name"]


@admin.register(Namespace)
class NamespaceAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["name", "tenant", "created"]
    list_filter = ["tenant"]
    search_fields = ["name"]


class FlowRevisionInline(ReadOnlyMixin, admin.TabularInline):
    model = FlowRevision
    fields = ["revision", "created", "source"]
    readonly_fields = fields
    extra = 0


@admin.register(Flow)
class FlowAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["flow_id", "namespace", "tenant", "revision", "disabled", "deleted", "updated"]
    list_filter = ["tenant", "namespace", "disabled", "deleted"]
    search_fields = ["flow_id", "namespace"]
    readonly_fields = [
        "tenant",
        "namespace",
        "flow_id",
        "revision",
        "source",
        "disabled",
        "deleted",
        "updated",
    ]
    inlines = [FlowRevisionInline]


class TaskRunInline(ReadOnlyMixin, admin.TabularInline):
    model = TaskRun
    fields = ["seq", "task_id", "value", "state", "attempts", "outputs", "start_date", "end_date"]
    readonly_fields = fields
    extra = 0
    ordering = ["seq"]


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "namespace",
        "flow_id",
        "flow_revision",
        "state",
        "start_date",
        "end_date",
        "tenant",
    ]
    list_filter = ["tenant", "state", "namespace", "flow_id", ("start_date", admin.DateFieldListFilter)]
    search_fields = ["id", "flow_id", "namespace"]
    date_hierarchy = "start_date"
    readonly_fields = [
        "id",
        "tenant",
        "namespace",
        "flow_id",
        "flow_revision",
        "state",
        "waiting",
        "paused_by_user",
        "histories",
        "start_date",
        "end_date",
        "masked_inputs",
        "outputs",
        "labels",
        "parent_id",
        "original_id",
        "trigger",
        "log_lines",
    ]
    exclude = [
        "inputs",
        "variables",
        "revision_ref",
        "parent_taskrun_id",
        "schedule_date",
    ]
    inlines = [TaskRunInline]

    @admin.display(description="inputs")
    def masked_inputs(self, execution: Execution) -> str:
        """Inputs with SECRET values masked: secrets never reach a page."""
        masker = Masker((execution.variables or {}).get("secrets", []))
        return json.dumps(masker.mask_value(execution.inputs), indent=2, default=str)

    @admin.display(description="waiting because")
    def waiting(self, execution: Execution) -> str:
        from flows.services.waiting import waiting_reasons

        return "; ".join(waiting_reasons(execution)) or "-"

    @admin.display(description="logs (last 500 lines)")
    def log_lines(self, execution: Execution) -> str:
        entries = list(LogEntry.objects.filter(execution_id=execution.id).order_by("-id")[:500])
        lines = [
            f"{entry.timestamp:%H:%M:%S.%f} {entry.level:<5} {entry.task_id or '-'} {entry.message}"
            for entry in reversed(entries)
        ]
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", "\n".join(lines))


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["id", "task_id", "execution", "value", "state", "attempt", "start_date"]
    list_filter = ["tenant", "state"]
    search_fields = ["id", "task_id", "execution__id"]
    exclude = ["memo"]


@admin.register(LogEntry)
class LogEntryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["timestamp", "level", "execution", "task_id", "message"]
    list_filter = ["tenant", "level", "namespace", "flow_id"]
    search_fields = ["execution__id", "task_id", "message"]


@admin.register(KVEntry)
class KVEntryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["key", "namespace", "tenant", "value_type", "expires_at", "updated"]
    list_filter = ["tenant", "namespace"]
    search_fields = ["key"]


class KillSwitchForm(forms.ModelForm):
    """Runs the service's checks, so that a refused switch comes back as form errors, unsaved."""

    class Meta:
        model = KillSwitch
        fields = list(killswitches.EDITABLE_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned  # the fields' own errors first
        try:
            killswitches.validate_switch(
                tenant=cleaned["tenant"].pk,
                type=cleaned["type"],
                namespace=cleaned["namespace"],
                flow_id=cleaned["flow_id"],
                execution_id=cleaned["execution_id"],
                start_date=cleaned["start_date"],
                end_date=cleaned["end_date"],
                reason=cleaned["reason"],
            )
        except killswitches.InvalidKillSwitch as error:
            self.add_error(error.field if error.field in self.fields else None, error.message)
        return cleaned


class KillSwitchAuditInline(ReadOnlyMixin, admin.TabularInline):
    model = KillSwitchAudit
    fields = ["at", "action", "user", "snapshot"]
    readonly_fields = fields
    extra = 0


@admin.register(KillSwitch)
class KillSwitchAdmin(admin.ModelAdmin):
    """Add, change and (soft) delete kill switches; every write goes through the service and is audited."""

    form = KillSwitchForm
    list_display = [
        "type",
        "tenant",
        "scope",
        "start_date",
        "end_date",
        "short_reason",
        "is_active",
        "deleted",
    ]
    list_filter = ["type", "tenant", "deleted"]
    search_fields = ["namespace", "flow_id", "execution_id", "reason"]
    ordering = ["-id"]
    fields = [*killswitches.EDITABLE_FIELDS, "created", "created_by", "deleted"]
    readonly_fields = ["created", "created_by", "deleted"]
    inlines = [KillSwitchAuditInline]

    @admin.display(description="scope")
    def scope(self, switch: KillSwitch) -> str:
        if switch.execution_id:
            return f"execution {switch.execution_id}"
        if switch.flow_id:
            return f"flow {switch.namespace}.{switch.flow_id}"
        if switch.namespace:
            return f"namespace {switch.namespace} (and children)"
        return "whole tenant"

    @admin.display(description="reason")
    def short_reason(self, switch: KillSwitch) -> str:
        return Truncator(switch.reason).chars(80)

    @admin.display(description="active?", boolean=True)
    def is_active(self, switch: KillSwitch) -> bool:
        return killswitches.is_switch_active(switch)

    # A deleted switch stays listed, as it was: it can be viewed, not edited or deleted again.
    def has_change_permission(self, request: HttpRequest, obj: KillSwitch | None = None) -> bool:
        return super().has_change_permission(request, obj) and not (obj is not None and obj.deleted)

    def has_delete_permission(self, request: HttpRequest, obj: KillSwitch | None = None) -> bool:
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.deleted)

    def save_model(self, request: HttpRequest, obj: KillSwitch, form: forms.ModelForm, change: bool) -> None:
        user = request.user.get_username()
        if change:
            # `obj` already holds the form's values; the service compares them with the stored row.
            changes = {
                name: form.cleaned_data[name]
                for name in form.changed_data
                if name in killswitches.EDITABLE_FIELDS
            }
            if "tenant" in changes:
                changes["tenant"] = changes["tenant"].pk
            killswitches.update_switch(obj, user=user, **changes)
            return
        switch = killswitches.create_switch(
            tenant=obj.tenant_id,
            type=obj.type,
            namespace=obj.namespace,
            flow_id=obj.flow_id,
            execution_id=obj.execution_id,
            start_date=obj.start_date,
            end_date=obj.end_date,
            reason=obj.reason,
            user=user,
        )
        # The admin goes on with `obj` (inlines, log entry, redirect): make it the stored switch.
        for field in KillSwitch._meta.concrete_fields:
            setattr(obj, field.attname, getattr(switch, field.attname))
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: KillSwitch) -> None:
        killswitches.delete_switch(obj, user=request.user.get_username())

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[KillSwitch]) -> None:
        for switch in queryset:
            killswitches.delete_switch(switch, user=request.user.get_username())

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        # A soft delete removes nothing: without this, the audit rows (PROTECT) would block it.
        switches = list(objs)
        return (
            [str(switch) for switch in switches],
            {str(KillSwitch._meta.verbose_name_plural): len(switches)},
            set(),
            [],
        )


@admin.register(KillSwitchAudit)
class KillSwitchAuditAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["at", "action", "switch", "user"]
    list_filter = ["action", "switch__tenant"]
    search_fields = ["user", "switch__id"]
