"""/api/v1/{tenant}/logs: an execution's log entries, as JSON or plain text."""

from __future__ import annotations

import time
from collections.abc import Iterator

from django.conf import settings
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from flows.api.base import StreamNegotiation, paged, query_datetime, query_int
from flows.api.errors import ApiError
from flows.api.executions import FOLLOW_INTERVAL, ExecutionView, event_stream, sse
from flows.api.shapes import (
    LOG_LEVELS,
    PAGING,
    LogEntryShape,
    date_time,
    integer,
    paged_shape,
    query,
    sse_schema,
)
from flows.engine.states import TERMINAL_STATES
from flows.models import Execution, LogEntry
from flows.serializers import log_dict
from flows.services.runtime import normalize_level

LEVELS = LOG_LEVELS
_TAGS = ["Logs"]
_MIN_LEVEL = query("minLevel", "this level and the more severe ones", enum=LEVELS)
# Filters of one execution's entries.
_ENTRY_FILTERS = [
    _MIN_LEVEL,
    query("taskRunId"),
    query("taskId"),
    integer("attempt", "the attempt number", minimum=0),
]


def _min_level(request: Request) -> list[str] | None:
    raw = request.query_params.get("minLevel")
    if not raw:
        return None
    refused = ApiError(f"`minLevel` must be one of {', '.join(LEVELS)}, got `{raw}`", path="minLevel")
    try:
        level = normalize_level(raw)
    except ValueError:
        raise refused from None
    if level not in LEVELS:
        raise refused
    return LEVELS[LEVELS.index(level) :]


class ExecutionLogs(ExecutionView):
    def entries(self, request: Request, execution_id: str) -> QuerySet[LogEntry]:
        execution = self.execution(execution_id)
        entries = LogEntry.objects.filter(execution_id=execution.id, tenant_id=self.tenant)
        levels = _min_level(request)
        if levels:
            entries = entries.filter(level__in=levels)
        params = request.query_params
        if params.get("taskRunId"):
            entries = entries.filter(taskrun_id=params["taskRunId"])
        if params.get("taskId"):
            entries = entries.filter(task_id=params["taskId"])
        if params.get("attempt"):
            entries = entries.filter(attempt_number=query_int(request, "attempt", 0, minimum=0))
        return entries.order_by("id")

    @extend_schema(
        operation_id="listLogsFromExecution",
        summary="The log entries of an execution, oldest first",
        tags=_TAGS,
        parameters=_ENTRY_FILTERS,
        responses={200: LogEntryShape(many=True)},
    )
    def get(self, request: Request, tenant: str, execution_id: str) -> Response:
        return Response([log_dict(entry) for entry in self.entries(request, execution_id)])


class ExecutionLogsDownload(ExecutionLogs):
    content_negotiation_class = StreamNegotiation

    @extend_schema(
        operation_id="downloadLogsFromExecution",
        summary="The log of an execution as plain text, one entry a line",
        tags=_TAGS,
        parameters=_ENTRY_FILTERS,
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request: Request, tenant: str, execution_id: str) -> StreamingHttpResponse:  # type: ignore[override]
        entries = self.entries(request, execution_id)

        def lines() -> Iterator[str]:
            for entry in entries.iterator(chunk_size=1000):
                where = f" {entry.task_id}" if entry.task_id else ""
                yield f"{entry.timestamp.isoformat()} {entry.level}{where} {entry.message}\n"

        response = StreamingHttpResponse(lines(), content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{execution_id}.log"'
        return response


class LogSearch(ExecutionView):
    @extend_schema(
        operation_id="searchLogs",
        summary="Search log entries, newest first",
        tags=_TAGS,
        parameters=[
            query("namespace", "namespaces starting with this"),
            query("flowId"),
            _MIN_LEVEL,
            date_time("startDate", "written at or after"),
            date_time("endDate", "written at or before"),
            query("q", "text in the message"),
            *PAGING,
        ],
        responses={200: paged_shape("PagedLogEntries", LogEntryShape(many=True))},
    )
    def get(self, request: Request, tenant: str) -> Response:
        entries = LogEntry.objects.filter(tenant_id=tenant).filter(self.access.namespace_filter())
        params = request.query_params
        if params.get("namespace"):
            entries = entries.filter(namespace__startswith=params["namespace"])
        if params.get("flowId"):
            entries = entries.filter(flow_id=params["flowId"])
        levels = _min_level(request)
        if levels:
            entries = entries.filter(level__in=levels)
        start = query_datetime(request, "startDate")
        if start is not None:
            entries = entries.filter(timestamp__gte=start)
        end = query_datetime(request, "endDate")
        if end is not None:
            entries = entries.filter(timestamp__lte=end)
        if params.get("q"):
            entries = entries.filter(message__icontains=params["q"])
        return paged(request, entries.order_by("-id"), log_dict)


class ExecutionLogsFollow(ExecutionLogs):
    """Server-Sent Events: each log entry as it is written, until the execution has ended and every
    entry has been sent."""

    content_negotiation_class = StreamNegotiation

    @extend_schema(
        operation_id="followLogsFromExecution",
        summary="Server-Sent Events: each log entry as it is written, then an `end` event",
        tags=_TAGS,
        parameters=_ENTRY_FILTERS,
        responses={
            (200, "text/event-stream"): sse_schema("a LogEntry; the `end` event carries `{executionId}`")
        },
    )
    def get(self, request: Request, tenant: str, execution_id: str) -> StreamingHttpResponse:  # type: ignore[override]
        entries = self.entries(request, execution_id)

        def events() -> Iterator[str]:
            last_id = 0
            deadline = time.monotonic() + settings.BATON_API_WAIT_SECONDS
            while time.monotonic() < deadline:
                ended = Execution.objects.filter(pk=execution_id, state__in=TERMINAL_VALUES).exists()
                for entry in entries.filter(id__gt=last_id)[:1000]:
                    last_id = entry.id
                    yield sse(log_dict(entry))
                if ended and not entries.filter(id__gt=last_id).exists():
                    yield sse({"executionId": execution_id}, event="end")
                    return
                time.sleep(FOLLOW_INTERVAL)

        return event_stream(events())


TERMINAL_VALUES = sorted(state.value for state in TERMINAL_STATES)
