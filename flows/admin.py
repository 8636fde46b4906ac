"""Operators' view. Flows and executions are read-only here: their changes go through the services.

Kill switches are edited here, through `flows.services.killswitches` (audited, soft-deleted); banners,
invitations and memberships through their services too. Secret material (secret values, credential
secrets, token hashes) is excluded from every page."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.text import Truncator

from flows.models import (
    ApiToken,
    Asset,
    Banner,
    Credential,
    Execution,
    Flow,
    FlowRevision,
    Invitation,
    KillSwitch,
    KillSwitchAudit,
    KVEntry,
    LogEntry,
    Membership,
    Namespace,
    NamespaceFileRevision,
    Secret,
    TaskRun,
    Tenant,
    Trigger,
)
from flows.services import banners, invitations, killswitches, schedules
from flows.services.access import grant, revoke_token
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


# ---------------------------------------------------------------------------------------------- access


class MembershipForm(forms.ModelForm):
    """Runs the invitations' role check: RESTRICTED needs namespaces, other roles take none."""

    class Meta:
        model = Membership
        fields = ["user", "tenant", "role", "namespaces"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "role" in cleaned and "namespaces" in cleaned:
            try:
                invitations.validate_role(cleaned["role"], cleaned["namespaces"] or [])
            except invitations.InvalidInvitation as error:
                self.add_error(
                    "namespaces" if error.field.startswith("namespaces") else "role", error.message
                )
        return cleaned


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipForm
    list_display = ["user", "tenant", "role", "namespaces", "created"]
    list_filter = ["tenant", "role"]
    search_fields = ["user__username", "user__email"]
    ordering = ["tenant_id", "user__username"]

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> list[str]:
        # A membership is the role of one user in one tenant: moving it is a new one.
        return ["user", "tenant", "created"] if obj is not None else ["created"]

    def save_model(self, request: HttpRequest, obj: Membership, form: forms.ModelForm, change: bool) -> None:
        membership = grant(obj.user, obj.tenant_id, obj.role, obj.namespaces or [])
        obj.pk = membership.pk
        obj._state.adding = False


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Tokens are created with `manage.py tokens create` (which prints the token once); here they are
    listed and revoked. The hash of the secret never reaches a page."""

    list_display = ["name", "user", "key", "created", "expires_at", "revoked_at", "last_used"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), ("expires_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "key", "user__username"]
    exclude = ["secret_hash"]
    ordering = ["-created"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        tokens = list(queryset.filter(revoked_at__isnull=True))
        for token in tokens:
            revoke_token(token)
        self.message_user(request, f"{len(tokens)} token(s) revoked.", messages.SUCCESS)


class InvitationForm(forms.ModelForm):
    """Runs the service's checks, so that a refused invitation comes back as form errors, unsaved."""

    class Meta:
        model = Invitation
        fields = ["tenant", "email", "role", "namespaces"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            invitations.validate_invitation(
                tenant=cleaned["tenant"].pk,
                email=cleaned["email"],
                role=cleaned["role"],
                namespaces=cleaned["namespaces"] or [],
            )
        except invitations.InvalidInvitation as error:
            field = error.field.partition("[")[0]
            self.add_error(field if field in self.fields else None, error.message)
        return cleaned


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invite through the service (the email is sent, the link shown once saved); an invitation is not
    edited afterwards, only withdrawn (deleted) or sent again."""

    form = InvitationForm
    change_form_template = "admin/flows/invitation/change_form.html"
    list_display = ["email", "tenant", "role", "status", "invited_by", "created", "expires_at", "accepted_by"]
    list_filter = ["tenant", "role"]
    search_fields = ["email"]
    readonly_fields = [
        "tenant",
        "email",
        "role",
        "namespaces",
        "status",
        "invited_by",
        "created",
        "expires_at",
        "accepted_at",
        "accepted_by",
    ]
    actions = ["send_again"]

    def get_fields(self, request: HttpRequest, obj: Invitation | None = None) -> list[str]:
        return list(InvitationForm.Meta.fields) if obj is None else self.readonly_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Invitation | None = None) -> list[str]:
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Invitation | None = None) -> bool:
        return False

    @admin.display(description="status")
    def status(self, invitation: Invitation) -> str:
        return str(invitations.status_of(invitation))

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Invitation | None = None,
    ) -> HttpResponse:
        if obj is not None and invitations.status_of(obj) == invitations.Status.PENDING:
            context["invitation_link"] = invitations.invitation_link(obj, request.build_absolute_uri("/"))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request: HttpRequest, obj: Invitation, form: forms.ModelForm, change: bool) -> None:
        invitation = invitations.create_invitation(
            tenant=obj.tenant_id,
            email=obj.email,
            role=obj.role,
            namespaces=obj.namespaces or [],
            invited_by=request.user,
        )
        # The admin goes on with `obj` (log entry, redirect): make it the stored invitation.
        for field in Invitation._meta.concrete_fields:
            setattr(obj, field.attname, getattr(invitation, field.attname))
        obj._state.adding = False
        self._send(request, invitation)

    def delete_model(self, request: HttpRequest, obj: Invitation) -> None:
        invitations.delete_invitation(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        for invitation in queryset:
            invitations.delete_invitation(invitation)

    @admin.action(description="Send the email of the selected pending invitations again")
    def send_again(self, request: HttpRequest, queryset: QuerySet[Invitation]) -> None:
        for invitation in queryset.filter(invitations.with_status(invitations.Status.PENDING)):
            self._send(request, invitation)

    def _send(self, request: HttpRequest, invitation: Invitation) -> None:
        link = invitations.invitation_link(invitation, request.build_absolute_uri("/"))
        if invitations.send_invitation(invitation, link):
            self.message_user(request, f"Invitation sent to {invitation.email}.", messages.SUCCESS)
        else:
            self.message_user(
                request,
                f"The email to {invitation.email} could not be sent: pass on the link shown on its page.",
                messages.WARNING,
            )


# ---------------------------------------------------------------------------------------------- banners


class BannerForm(forms.ModelForm):
    """Runs the service's checks, so that a refused banner comes back as form errors, unsaved."""

    class Meta:
        model = Banner
        fields = list(banners.EDITABLE_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            banners.validate_banner(
                message=cleaned["message"],
                type=cleaned["type"],
                start_date=cleaned["start_date"],
                end_date=cleaned["end_date"],
            )
        except banners.InvalidBanner as error:
            self.add_error(error.field if error.field in self.fields else None, error.message)
        return cleaned


@admin.register(Banner)
class BannerAdmin(admin.ModelAdmin):
    """Announcements shown on every page (admin included) between their dates; written by the service."""

    form = BannerForm
    list_display = ["short_message", "type", "start_date", "end_date", "active", "is_shown"]
    list_filter = ["type", "active"]
    search_fields = ["message"]
    readonly_fields = ["created", "updated"]

    @admin.display(description="message")
    def short_message(self, banner: Banner) -> str:
        return Truncator(banner.message).chars(80)

    @admin.display(description="shown now?", boolean=True)
    def is_shown(self, banner: Banner) -> bool:
        return banners.is_banner_shown(banner)

    def save_model(self, request: HttpRequest, obj: Banner, form: forms.ModelForm, change: bool) -> None:
        if change:
            changes = {
                name: form.cleaned_data[name] for name in form.changed_data if name in banners.EDITABLE_FIELDS
            }
            banners.update_banner(obj, **changes)
            return
        banner = banners.create_banner(
            message=obj.message,
            type=obj.type,
            start_date=obj.start_date,
            end_date=obj.end_date,
            active=obj.active,
        )
        for field in Banner._meta.concrete_fields:
            setattr(obj, field.attname, getattr(banner, field.attname))
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: Banner) -> None:
        banners.delete_banner(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Banner]) -> None:
        for banner in queryset:
            banners.delete_banner(banner)


# ---------------------------------------------------------------------------------------------- namespaces


@admin.register(Secret)
class SecretAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Keys only: neither the encrypted nor the plain value ever reaches a page."""

    list_display = ["key", "namespace", "tenant", "updated"]
    list_filter = ["tenant", "namespace"]
    search_fields = ["key", "namespace"]
    exclude = ["encrypted_value"]


@admin.register(NamespaceFileRevision)
class NamespaceFileRevisionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["path", "namespace", "revision", "size", "tenant", "created"]
    list_filter = ["tenant", "namespace"]
    search_fields = ["path", "namespace"]


@admin.register(Credential)
class CredentialAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Names and settings only: the encrypted secrets and the cached token never reach a page."""

    list_display = ["name", "type", "tenant", "updated"]
    list_filter = ["tenant", "type"]
    search_fields = ["name"]
    exclude = ["encrypted_secrets", "encrypted_token"]


@admin.register(Asset)
class AssetAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["asset_id", "display_name", "type", "namespace", "tenant", "updated"]
    list_filter = ["tenant", "type"]
    search_fields = ["asset_id", "display_name", "namespace"]


@admin.register(Trigger)
class TriggerAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Trigger states: listed, and disabled, enabled or unlocked through the same service as the API."""

    list_display = [
        "trigger_id",
        "flow_id",
        "namespace",
        "tenant",
        "next_fire",
        "last_fire",
        "disabled",
        "execution_id",
        "error",
    ]
    list_filter = ["tenant", "disabled", "type"]
    search_fields = ["trigger_id", "flow_id", "namespace"]
    actions = ["disable", "enable", "unlock"]

    @admin.action(description="Disable the selected triggers")
    def disable(self, request: HttpRequest, queryset: QuerySet[Trigger]) -> None:
        self._each(request, queryset, lambda row: schedules.set_disabled(row, True), "disabled")

    @admin.action(description="Enable the selected triggers (from their next upcoming slot)")
    def enable(self, request: HttpRequest, queryset: QuerySet[Trigger]) -> None:
        self._each(request, queryset, lambda row: schedules.set_disabled(row, False), "enabled")

    @admin.action(description="Unlock the selected triggers")
    def unlock(self, request: HttpRequest, queryset: QuerySet[Trigger]) -> None:
        self._each(request, queryset, schedules.unlock, "unlocked")

    def _each(self, request: HttpRequest, queryset: QuerySet[Trigger], change: Any, done: str) -> None:
        rows = list(queryset)
        for row in rows:
            change(row)
        self.message_user(request, f"{len(rows)} trigger(s) {done}.", messages.SUCCESS)
