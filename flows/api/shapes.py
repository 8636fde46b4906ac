"""The JSON the API answers, described for the OpenAPI schema (drf-spectacular).

These serializers are never used to render or validate: the views build Kestra's camelCase
dicts themselves (`flows.serializers`, `flow_dict`, ...). They only tell the schema what those
dicts hold, so clients and the schemathesis check (tests/api/test_openapi.py) can rely on it.
A field added to one of those dicts belongs here too.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from flows.api.base import MAX_INT, MAX_PAGE_SIZE
from flows.api.schema import ErrorDetailShape
from flows.engine.states import State

# What clients see: SUBMITTED is Baton's own step and is shown as CREATED (flows.serializers).
PUBLIC_STATES = [state.value for state in State if state != State.SUBMITTED]
LOG_LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
NO_CONTENT = {204: OpenApiResponse(description="Done; no body")}
STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}


# -- shared pieces


class LabelShape(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField()


class HistoryShape(serializers.Serializer):
    state = serializers.CharField()
    date = serializers.DateTimeField()


class StateShape(serializers.Serializer):
    current = serializers.ChoiceField(PUBLIC_STATES)
    histories = HistoryShape(many=True)
    startDate = serializers.DateTimeField(allow_null=True)  # noqa: N815 (Kestra's name)
    endDate = serializers.DateTimeField(allow_null=True)  # noqa: N815
    duration = serializers.CharField(allow_null=True, help_text="ISO-8601 duration, e.g. PT1.2S")


def paged_shape(name: str, item: serializers.Serializer) -> serializers.Serializer:
    """`{"results": [...], "total": N}` of `item`."""
    return inline_serializer(name, {"results": item, "total": serializers.IntegerField(min_value=0)})


# -- flows


class FlowShape(serializers.Serializer):
    """Kestra's Flow: the definition's own fields (tasks, inputs, triggers, ...) and these."""

    id = serializers.CharField()
    namespace = serializers.CharField()
    tenantId = serializers.CharField()  # noqa: N815
    revision = serializers.IntegerField(min_value=1)
    disabled = serializers.BooleanField()
    deleted = serializers.BooleanField()
    updated = serializers.DateTimeField(help_text="when the current revision was saved")
    labels = serializers.ListField(child=serializers.JSONField(), required=False)
    source = serializers.CharField(required=False, help_text="The YAML as written (`?source=true`)")


class FlowValidationShape(serializers.Serializer):
    index = serializers.IntegerField(min_value=0)
    flow = serializers.CharField(allow_null=True)
    namespace = serializers.CharField(allow_null=True)
    constraints = serializers.CharField(allow_null=True)
    outdated = serializers.BooleanField()
    deprecationPaths = serializers.ListField(child=serializers.CharField())  # noqa: N815
    warnings = serializers.ListField(child=serializers.JSONField())
    infos = serializers.ListField(child=serializers.JSONField())
    errors = ErrorDetailShape(many=True)


class FlowGraphShape(serializers.Serializer):
    nodes = serializers.ListField(child=serializers.DictField())
    edges = serializers.ListField(child=serializers.DictField())
    clusters = serializers.ListField(child=serializers.DictField())


# -- executions


class AttemptShape(serializers.Serializer):
    state = serializers.DictField()
    metrics = serializers.ListField(child=serializers.JSONField(), required=False)


class TaskRunShape(serializers.Serializer):
    id = serializers.CharField()
    executionId = serializers.CharField()  # noqa: N815
    namespace = serializers.CharField()
    flowId = serializers.CharField()  # noqa: N815
    taskId = serializers.CharField()  # noqa: N815
    parentTaskRunId = serializers.CharField(allow_null=True)  # noqa: N815
    value = serializers.CharField(allow_null=True)
    iteration = serializers.IntegerField(allow_null=True)
    attempts = AttemptShape(many=True, allow_null=True)
    outputs = serializers.JSONField(allow_null=True)
    state = StateShape()


class ExecutionShape(serializers.Serializer):
    id = serializers.CharField()
    tenantId = serializers.CharField()  # noqa: N815
    namespace = serializers.CharField()
    flowId = serializers.CharField()  # noqa: N815
    flowRevision = serializers.IntegerField()  # noqa: N815
    inputs = serializers.JSONField(allow_null=True)
    outputs = serializers.JSONField(allow_null=True)
    labels = LabelShape(many=True)
    state = StateShape()
    taskRunList = TaskRunShape(many=True)  # noqa: N815
    parentId = serializers.CharField(allow_null=True)  # noqa: N815
    originalId = serializers.CharField()  # noqa: N815
    trigger = serializers.JSONField(allow_null=True)
    scheduleDate = serializers.DateTimeField(allow_null=True)  # noqa: N815
    deleted = serializers.BooleanField()
    waitingReasons = serializers.ListField(  # noqa: N815
        child=serializers.CharField(), required=False, help_text="Why a running execution does not move"
    )


class EvalResultShape(serializers.Serializer):
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    stackTrace = serializers.CharField(allow_null=True)  # noqa: N815


class BulkCountShape(serializers.Serializer):
    count = serializers.IntegerField(min_value=0)


class ChangeStatusShape(serializers.Serializer):
    """The body form of change-status (the query parameters take precedence)."""

    status = serializers.CharField(required=False, help_text="the state to set, e.g. FAILED")
    state = serializers.CharField(required=False, help_text="an alias of `status`")
    taskRunId = serializers.CharField(required=False)  # noqa: N815


# -- logs


class LogEntryShape(serializers.Serializer):
    namespace = serializers.CharField()
    flowId = serializers.CharField()  # noqa: N815
    taskId = serializers.CharField(allow_null=True)  # noqa: N815
    executionId = serializers.CharField()  # noqa: N815
    taskRunId = serializers.CharField(allow_null=True)  # noqa: N815
    attemptNumber = serializers.IntegerField(allow_null=True)  # noqa: N815
    timestamp = serializers.DateTimeField()
    level = serializers.ChoiceField(LOG_LEVELS)
    message = serializers.CharField(allow_blank=True)


# -- namespaces, files, KV, secrets


class NamespaceShape(serializers.Serializer):
    id = serializers.CharField()
    deleted = serializers.BooleanField()


class FileAttributesShape(serializers.Serializer):
    fileName = serializers.CharField()  # noqa: N815
    lastModifiedTime = serializers.IntegerField(help_text="epoch milliseconds")  # noqa: N815
    creationTime = serializers.IntegerField(help_text="epoch milliseconds")  # noqa: N815
    type = serializers.ChoiceField(["File", "Directory"])
    size = serializers.IntegerField(min_value=0)
    metadata = serializers.DictField()


class FileRevisionShape(serializers.Serializer):
    revision = serializers.IntegerField(min_value=1)


class KVEntryShape(serializers.Serializer):
    key = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    creationDate = serializers.DateTimeField()  # noqa: N815
    updateDate = serializers.DateTimeField()  # noqa: N815
    expirationDate = serializers.DateTimeField(allow_null=True)  # noqa: N815


class KVValueShape(serializers.Serializer):
    type = serializers.ChoiceField(["STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON"])
    value = serializers.JSONField(allow_null=True)


class KVNamespaceShape(serializers.Serializer):
    namespace = serializers.CharField()
    kvEntries = KVEntryShape(many=True)  # noqa: N815


class KVKeysShape(serializers.Serializer):
    keys = serializers.ListField(child=serializers.CharField())


class SecretShape(serializers.Serializer):
    key = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    tags = serializers.ListField(child=serializers.JSONField(), allow_null=True)


class SecretsPageShape(serializers.Serializer):
    readOnly = serializers.BooleanField()  # noqa: N815
    results = SecretShape(many=True)
    total = serializers.IntegerField(min_value=0)


class SecretWriteShape(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField()
    description = serializers.CharField(required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.JSONField(), required=False, allow_null=True)


class SecretPatchShape(serializers.Serializer):
    value = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_null=True)
    tags = serializers.ListField(child=serializers.JSONField(), required=False, allow_null=True)


# -- tenants


class TenantShape(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField(allow_blank=True)
    created = serializers.DateTimeField()


class TenantCreateShape(serializers.Serializer):
    id = serializers.CharField(help_text="lower-case letters, digits, `-` and `_`")
    name = serializers.CharField(required=False, allow_blank=True)


class TenantUpdateShape(serializers.Serializer):
    name = serializers.CharField(allow_blank=True)


# -- request bodies and parameters

YAML_BODY = {"application/x-yaml": {"type": "string", "description": "the flow as YAML text"}}
TEXT_BODY = {"text/plain": {"type": "string"}}
# Multipart form fields are the inputs; a file part is a FILE input.
INPUTS_BODY = {
    "multipart/form-data": {
        "type": "object",
        "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "string", "format": "binary"}]},
    }
}


def sse_schema(data: str) -> dict[str, Any]:
    """One Server-Sent Event (Open API 3.0 describes each event of a `text/event-stream` answer with
    the media type's `schema`); `data` says what JSON document its data is."""
    return {
        "type": "object",
        "properties": {
            "event": {"type": "string", "enum": ["message", "end"]},
            "data": {"type": "string", "description": f"JSON: {data}"},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
        "required": ["data"],
    }


def query(
    name: str, description: str = "", *, many: bool = False, required: bool = False, **schema: Any
) -> OpenApiParameter:
    """A query parameter (repeated if `many`); `schema` holds its JSON-schema keywords (a string
    unless `type` says otherwise)."""
    item: dict[str, Any] = {"type": "string", **schema}
    return OpenApiParameter(
        name,
        {"type": "array", "items": item} if many else item,
        OpenApiParameter.QUERY,
        description=description,
        required=required,
        explode=True if many else None,
    )


def integer(name: str, description: str = "", minimum: int = 1, maximum: int = MAX_INT) -> OpenApiParameter:
    return query(name, description, type="integer", minimum=minimum, maximum=maximum)


def boolean(name: str, description: str = "") -> OpenApiParameter:
    return query(name, description, type="boolean")


def sort(*fields: str) -> OpenApiParameter:
    """`?sort=field:asc|desc`, repeated (flows.api.base.query_sort), on these fields."""
    names = "|".join(re.escape(name) for name in sorted(fields))
    return query(
        "sort", "`field:asc` or `field:desc`, repeated", many=True, pattern=f"^({names})(:(asc|desc)?)?$"
    )


def date_time(name: str, description: str = "") -> OpenApiParameter:
    return query(name, description, format="date-time")


PAGING = [
    integer("page", "1-based page number"),
    integer("size", "rows per page (default 10)", maximum=MAX_PAGE_SIZE),
]
LABELS = query("labels", "`key:value`, repeated: all must match", many=True, pattern="^[^:]+:")
