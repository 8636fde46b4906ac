"""Persistence. Every row belongs to a tenant; state changes go through `flows.services`."""

from __future__ import annotations

import secrets
import string

from django.db import models
from django.utils import timezone

from flows.engine.states import TERMINAL_STATES, State

_ALPHABET = string.ascii_letters + string.digits


def new_id() -> str:
    """A 22-character base62 id, the shape of Kestra's ids."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(22))


STATE_CHOICES = [(state.value, state.value) for state in State]


class Tenant(models.Model):
    id = models.SlugField(primary_key=True, max_length=100)
    name = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.id


class Namespace(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="namespaces")
    name = models.CharField(max_length=300)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="namespace_unique_per_tenant")]
        ordering = ["tenant_id", "name"]

    def __str__(self) -> str:
        return self.name


class FlowQuerySet(models.QuerySet):
    def for_tenant(self, tenant: str) -> FlowQuerySet:
        return self.filter(tenant_id=tenant)


class Flow(models.Model):
    """The current state of a flow; its definitions are the immutable `FlowRevision` rows."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="flows")
    namespace = models.CharField(max_length=300)
    flow_id = models.CharField(max_length=200)
    revision = models.PositiveIntegerField(default=1)
    source = models.TextField()
    disabled = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)
    updated = models.DateTimeField(default=timezone.now)

    objects = FlowQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "namespace", "flow_id"], name="flow_unique_per_tenant")
        ]
        ordering = ["tenant_id", "namespace", "flow_id"]

    def __str__(self) -> str:
        return f"{self.namespace}.{self.flow_id}"


class FlowRevision(models.Model):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="revisions")
    revision = models.PositiveIntegerField()
    source = models.TextField()
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["flow", "revision"], name="flow_revision_unique")]
        ordering = ["flow_id", "-revision"]

    def __str__(self) -> str:
        return f"{self.flow} rev {self.revision}"


class ExecutionQuerySet(models.QuerySet):
    def for_tenant(self, tenant: str) -> ExecutionQuerySet:
        return self.filter(tenant_id=tenant)


class Execution(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_id)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="executions")
    namespace = models.CharField(max_length=300)
    flow_id = models.CharField(max_length=200)
    flow_revision = models.PositiveIntegerField()
    revision_ref = models.ForeignKey(FlowRevision, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=STATE_CHOICES, default=State.CREATED)
    histories = models.JSONField(default=list)  # [{"state", "date"}]
    start_date = models.DateTimeField(default=timezone.now)
    end_date = models.DateTimeField(null=True, blank=True)
    inputs = models.JSONField(default=dict)
    outputs = models.JSONField(null=True, blank=True)
    labels = models.JSONField(default=list)  # [{"key", "value"}]
    variables = models.JSONField(default=dict)  # internal: run variables (secrets to mask, ...)
    parent_id = models.CharField(max_length=32, null=True, blank=True, db_index=True)
    parent_taskrun_id = models.CharField(max_length=32, null=True, blank=True)
    original_id = models.CharField(max_length=32, null=True, blank=True)
    trigger = models.JSONField(null=True, blank=True)
    schedule_date = models.DateTimeField(null=True, blank=True)
    # Paused by hand (not by a Pause task): results are recorded, nothing new starts.
    paused_by_user = models.BooleanField(default=False)
    # A timer was armed for it (retry, pause, sleep, SLA): its end deletes its timers.
    has_timers = models.BooleanField(default=False)
    deleted = models.BooleanField(default=False)

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "namespace", "flow_id", "-start_date"], name="execution_by_flow"),
            models.Index(fields=["tenant", "state"], name="execution_by_state"),
            models.Index(fields=["tenant", "-start_date"], name="execution_recent"),
            # Concurrency admission counts a flow's running executions.
            models.Index(fields=["tenant", "namespace", "flow_id", "state"], name="execution_flow_state"),
            # The reaper looks at unfinished executions across tenants.
            models.Index(
                fields=["state", "start_date"],
                name="execution_unfinished",
                condition=~models.Q(state__in=sorted(state.value for state in TERMINAL_STATES)),
            ),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class TaskRun(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_id)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="taskruns")
    seq = models.PositiveIntegerField()  # creation order within the execution
    task_id = models.CharField(max_length=200)
    parent_taskrun_id = models.CharField(max_length=32, null=True, blank=True)
    value = models.TextField(null=True, blank=True)
    iteration = models.PositiveIntegerField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=STATE_CHOICES, default=State.CREATED)
    histories = models.JSONField(default=list)
    attempts = models.JSONField(default=list)  # [{"state", "histories": [...], "startDate", "endDate"}]
    attempt = models.PositiveIntegerField(default=0)  # number of the current attempt (1-based; 0 = none)
    outputs = models.JSONField(null=True, blank=True)
    worker_group = models.CharField(max_length=100, blank=True, default="")
    submitted_at = models.DateTimeField(null=True, blank=True)  # when the current attempt was sent
    lease_until = models.DateTimeField(null=True, blank=True)  # renewed by the worker's heartbeat
    claimed_at = models.DateTimeField(null=True, blank=True)  # when the current attempt started running
    # The Celery message (task id) whose worker runs the current attempt: the heartbeat renews the
    # leases of the runs claimed by the messages its worker is processing.
    claimed_by = models.CharField(max_length=64, blank=True, default="")
    memo = models.JSONField(default=dict)  # executor notes (chosen branch, loop values...), never shown
    start_date = models.DateTimeField(default=timezone.now)
    end_date = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["execution", "seq"], name="taskrun_seq_unique")]
        indexes = [
            # The reaper's view: runs sent to or held by a worker.
            models.Index(
                fields=["state", "lease_until"],
                name="taskrun_on_worker",
                condition=models.Q(state__in=[State.SUBMITTED.value, State.RUNNING.value]),
            ),
        ]
        ordering = ["execution_id", "seq"]

    def __str__(self) -> str:
        return f"{self.task_id} ({self.id})"


class LogEntry(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    namespace = models.CharField(max_length=300)
    flow_id = models.CharField(max_length=200)
    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="logs", db_constraint=False
    )
    taskrun_id = models.CharField(max_length=32, null=True, blank=True)
    task_id = models.CharField(max_length=200, null=True, blank=True)
    attempt_number = models.PositiveIntegerField(null=True, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=8)
    message = models.TextField()

    class Meta:
        indexes = [models.Index(fields=["execution", "id"], name="log_by_execution")]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.level} {self.message[:60]}"


class KVEntry(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    namespace = models.CharField(max_length=300)
    key = models.CharField(max_length=300)
    value = models.JSONField(null=True)
    value_type = models.CharField(max_length=16, default="STRING")
    expires_at = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(default=timezone.now)
    description = models.TextField(blank=True, default="")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "namespace", "key"], name="kv_unique")]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.key}"


class Timer(models.Model):
    """Something that must happen at `due_at`: released by the tick (celery-beat), never parked in
    the broker. One row per (execution, kind, target), so arming a timer twice keeps one."""

    class Kind(models.TextChoices):
        RETRY = "RETRY"  # send the next attempt of task run `target`
        PAUSE = "PAUSE"  # resume (or time out) the paused task run `target`
        SLA = "SLA"  # check the MAX_DURATION SLA `target`
        ADVANCE = "ADVANCE"  # advance the execution (subflow retry back-off)
        WAKE = "WAKE"  # end the wait of task run `target` (Sleep)
        START = "START"  # begin a scheduled execution (`scheduleDate`)

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="timers")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    target = models.CharField(max_length=200, blank=True, default="")
    due_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["execution", "kind", "target"], name="timer_unique_target")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.target} at {self.due_at}"


class Worker(models.Model):
    """A live worker process, as its heartbeat last reported it (for worker-group waiting reasons)."""

    hostname = models.CharField(primary_key=True, max_length=255)
    queues = models.JSONField(default=list)
    started = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.hostname


class KillSwitch(models.Model):
    """An operator's brake on a tenant, a namespace (and its children), a flow or one execution."""

    class Type(models.TextChoices):
        KILL = "KILL", "Kill running executions; new ones are KILLED at once"
        CANCEL = "CANCEL", "New executions CANCELLED; running task runs finish, then CANCELLED"
        IGNORE = "IGNORE", "Messages of matching executions are ignored"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="kill_switches")
    type = models.CharField(max_length=8, choices=Type.choices)
    namespace = models.CharField(max_length=300, blank=True, default="")
    flow_id = models.CharField(max_length=200, blank=True, default="")
    execution_id = models.CharField(max_length=32, blank=True, default="")
    start_date = models.DateTimeField()
    end_date = models.DateTimeField(null=True, blank=True)
    reason = models.TextField()
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True, default="")
    deleted = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["tenant", "deleted"], name="killswitch_by_tenant")]
        verbose_name_plural = "kill switches"

    def __str__(self) -> str:
        scope = self.execution_id or ".".join(part for part in (self.namespace, self.flow_id) if part) or "*"
        return f"{self.type} {self.tenant_id}/{scope}"


class KillSwitchAudit(models.Model):
    """Every change of a kill switch: who, when, what it looked like after."""

    switch = models.ForeignKey(KillSwitch, on_delete=models.PROTECT, related_name="audit")
    action = models.CharField(max_length=16)  # CREATED, UPDATED, DELETED
    user = models.CharField(max_length=150, blank=True, default="")
    at = models.DateTimeField(default=timezone.now)
    snapshot = models.JSONField(default=dict)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.switch_id} by {self.user or '-'}"


class Role(models.TextChoices):
    """What a user may do in a tenant (the API's permissions)."""

    ADMIN = "ADMIN", "Admin: everything in the tenant, users and invitations included"
    EDITOR = "EDITOR", "Editor: read and write flows, executions, files, KV and secrets"
    VIEWER = "VIEWER", "Viewer: read only"
    RESTRICTED = "RESTRICTED", "Restricted: editor, only in the chosen namespaces and their children"


class Membership(models.Model):
    """A user's role in a tenant. Superusers are admins of every tenant without one."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    namespaces = models.JSONField(default=list, blank=True)  # RESTRICTED: the namespaces it may touch
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} {self.role} in {self.tenant_id}"


class ApiToken(models.Model):
    """A bearer token of a user. Only a hash of its secret part is stored; it is shown once."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=200)
    key = models.CharField(max_length=16, unique=True)  # the public part, to find the row
    secret_hash = models.CharField(max_length=64)  # sha256 of the secret part (a 256-bit random)
    created = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"


class NamespaceFileRevision(models.Model):
    """One uploaded version of a namespace file. The current version is the file flows read; every
    version's bytes are also kept under the namespace's `_files_revisions` folder, named `blob`."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    namespace = models.CharField(max_length=300)
    path = models.CharField(max_length=512)  # relative to the namespace's files, no leading slash
    revision = models.PositiveIntegerField()
    size = models.BigIntegerField()
    blob = models.CharField(max_length=32, default=new_id)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "namespace", "path", "revision"], name="nsfile_revision_unique"
            )
        ]
        ordering = ["tenant_id", "namespace", "path", "revision"]

    def __str__(self) -> str:
        return f"{self.namespace}:/{self.path} rev {self.revision}"


class Secret(models.Model):
    """A namespace secret, encrypted at rest (`flows.services.secrets`); the plain value is never stored."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    namespace = models.CharField(max_length=300)
    key = models.CharField(max_length=255)
    encrypted_value = models.TextField()
    description = models.TextField(blank=True, default="")
    tags = models.JSONField(default=list, blank=True)  # [{"key", "value"}]
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "namespace", "key"], name="secret_unique_per_namespace")
        ]
        ordering = ["tenant_id", "namespace", "key"]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.key}"


class Invitation(models.Model):
    """An admin's invitation of an email address to a tenant with a role. Its id is the secret of
    the accept link, so it is long and random (`new_id`); it can be accepted once, before it expires."""

    id = models.CharField(primary_key=True, max_length=32, default=new_id)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    namespaces = models.JSONField(default=list, blank=True)  # RESTRICTED: the namespaces it may touch
    invited_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["tenant", "email"], name="invitation_by_email")]
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.email} as {self.role} in {self.tenant_id}"


class Banner(models.Model):
    """An announcement shown to every user between its start and end dates (instance-wide)."""

    class Type(models.TextChoices):
        INFO = "INFO"
        WARNING = "WARNING"
        ERROR = "ERROR"

    id = models.CharField(primary_key=True, max_length=32, default=new_id)
    message = models.TextField()
    type = models.CharField(max_length=8, choices=Type.choices, default=Type.INFO)
    start_date = models.DateTimeField(default=timezone.now)
    end_date = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-start_date", "id"]

    def __str__(self) -> str:
        return f"{self.type}: {self.message[:60]}"


class Credential(models.Model):
    """Server-to-server authentication configured once per tenant and used in flows as
    `{{ credential('name') }}`. Secret material (client secret, private key, assertion) is encrypted
    at rest like namespace secrets; the last access token is cached, encrypted too, until shortly
    before it expires."""

    class Type(models.TextChoices):
        OAUTH2_CLIENT_CREDENTIALS = "OAUTH2_CLIENT_CREDENTIALS"
        OAUTH2_JWT_BEARER = "OAUTH2_JWT_BEARER"
        OAUTH2_PRIVATE_KEY_JWT = "OAUTH2_PRIVATE_KEY_JWT"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    type = models.CharField(max_length=32, choices=Type.choices)
    config = models.JSONField(default=dict, blank=True)  # non-secret settings: tokenUrl, clientId, scope, ...
    encrypted_secrets = models.TextField(blank=True, default="")  # JSON of the secret settings, encrypted
    encrypted_token = models.TextField(blank=True, default="")  # the cached access token, encrypted
    token_expires_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="credential_unique_per_tenant")
        ]
        ordering = ["tenant_id", "name"]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.name}"


class Asset(models.Model):
    """A data asset (table, file, dataset, ...) that flows produce or read, declared through the API."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    asset_id = models.CharField(max_length=300)
    namespace = models.CharField(max_length=300, blank=True, default="")
    type = models.CharField(max_length=200, blank=True, default="")
    display_name = models.CharField(max_length=300, blank=True, default="")
    description = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "asset_id"], name="asset_unique_per_tenant")]
        ordering = ["tenant_id", "asset_id"]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.asset_id}"


class Trigger(models.Model):
    """The state of one trigger of a flow (Kestra's trigger context): when a schedule fires next and
    last fired, the last evaluation and its error, the operator's disabled flag, the evaluation lock."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    namespace = models.CharField(max_length=300)
    flow_id = models.CharField(max_length=200)
    trigger_id = models.CharField(max_length=200)
    type = models.CharField(max_length=200)
    config = models.JSONField(default=dict, blank=True)  # what the state was computed from (cron, zone)
    next_fire = models.DateTimeField(null=True, blank=True)
    last_fire = models.DateTimeField(null=True, blank=True)
    last_evaluation = models.DateTimeField(null=True, blank=True)
    disabled = models.BooleanField(default=False)  # set by an operator; the YAML's `disabled` also counts
    locked_until = models.DateTimeField(null=True, blank=True)  # a polling evaluation under way
    # the execution this (schedule or polling) trigger started and that still runs: Kestra's lock, the
    # trigger is not evaluated again until it ends (or an operator unlocks it)
    execution_id = models.CharField(max_length=32, blank=True, default="")
    error = models.TextField(blank=True, default="")
    # a running backfill: {"start", "end", "currentDate", "inputs", "labels", "paused"} (dates in UTC)
    backfill = models.JSONField(null=True, blank=True)
    # a Flow trigger's preconditions window: {"start", "end", "results": {condition: when met}} (UTC)
    window = models.JSONField(null=True, blank=True)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "namespace", "flow_id", "trigger_id"], name="trigger_unique_per_flow"
            )
        ]
        indexes = [models.Index(fields=["next_fire"], name="trigger_by_next_fire")]
        ordering = ["tenant_id", "namespace", "flow_id", "trigger_id"]

    def __str__(self) -> str:
        return f"{self.namespace}.{self.flow_id}:{self.trigger_id}"


class TriggerSlot(models.Model):
    """One fired slot of a schedule: unique, so each slot starts at most one execution even with two
    beats, a duplicated tick or a backfill over the same dates."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    namespace = models.CharField(max_length=300)
    flow_id = models.CharField(max_length=200)
    trigger_id = models.CharField(max_length=200)
    slot = models.DateTimeField()
    execution_id = models.CharField(max_length=32, blank=True, default="")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "namespace", "flow_id", "trigger_id", "slot"], name="trigger_slot_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.namespace}.{self.flow_id}:{self.trigger_id} @ {self.slot}"
