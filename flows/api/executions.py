"""/api/v1/{tenant}/executions: start, look at and act on executions."""

from __future__ import annotations

import base64
import json
import mimetypes
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from flows.api.base import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    YAML_PARSERS,
    StreamNegotiation,
    TenantView,
    paged,
    query_bool,
    query_datetime,
    query_int,
    query_labels,
    query_sort,
    with_label,
)
from flows.api.errors import ApiError
from flows.api.schema import DeleteWithBodySchema, errors
from flows.api.shapes import (
    INPUTS_BODY,
    LABELS,
    NO_CONTENT,
    PAGING,
    PUBLIC_STATES,
    TEXT_BODY,
    BulkCountShape,
    ChangeStatusShape,
    EvalResultShape,
    ExecutionShape,
    boolean,
    date_time,
    integer,
    query,
    sort,
    sse_schema,
)
from flows.engine.states import TERMINAL_STATES, State
from flows.errors import ExpressionError
from flows.models import Execution
from flows.serializers import execution_dict
from flows.services import control
from flows.services.access import namespace_tree
from flows.services.executions import NotPaused, resume_execution, start_execution
from flows.services.waiting import waiting_reasons
from flows.storage import execution_prefix, storage_for_uri
from flows.storage.base import StorageError, key_of

_PUBLIC_STATES = {state.value for state in State} - {State.SUBMITTED.value}


@contextmanager
def uploaded_inputs(request: Request) -> Iterator[dict[str, Any]]:
    """Multipart (or form) fields as inputs, for the block's duration. File parts are written to a
    temporary folder under their own name and passed as `@path`, which the input parser stores as
    the execution's file; the folder is gone when the block ends."""
    with tempfile.TemporaryDirectory(prefix="baton-upload-") as folder:
        yield _inputs_of(request, Path(folder))


def _inputs_of(request: Request, folder: Path) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for key in request.data:
        if key in request.FILES:
            continue
        values = request.data.getlist(key) if hasattr(request.data, "getlist") else [request.data[key]]
        inputs[key] = values if len(values) > 1 else values[0]
    for key, upload in request.FILES.items():
        name = PurePosixPath(upload.name or key).name or key  # never a path from the client
        target = folder / key
        target.mkdir(parents=True, exist_ok=True)
        with open(target / name, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        inputs[key] = f"@{target / name}"
    return inputs


_TAGS = ["Executions"]


class ExecutionView(TenantView):
    def execution(self, execution_id: str, write: bool = False) -> Execution:
        execution = Execution.objects.for_tenant(self.tenant).filter(id=execution_id, deleted=False).first()
        if execution is None or not self.access.sees(execution.namespace):
            raise exceptions.NotFound(f"execution `{execution_id}` not found")
        if write:
            self.check_namespace(execution.namespace, write=True)
        return execution

    def answer(self, execution_id: str) -> Response:
        execution = Execution.objects.get(pk=execution_id)
        return Response(execution_dict(execution))


class ExecutionStart(ExecutionView):
    @extend_schema(
        operation_id="createExecution",
        summary="Start an execution of a flow; inputs are the multipart form fields (files as file parts)",
        tags=_TAGS,
        parameters=[
            integer("revision", "the flow revision to run (default: the current one)", minimum=0),
            boolean("wait", "answer once the execution has ended (at most BATON_API_WAIT_SECONDS)"),
            LABELS,
            date_time("scheduleDate", "start at this date instead of now"),
        ],
        request=INPUTS_BODY,
        responses={200: ExecutionShape, **errors(409, 413, 422)},
    )
    def post(self, request: Request, tenant: str, namespace: str, flow_id: str) -> Response:
        self.check_namespace(namespace, write=True)
        revision = query_int(request, "revision", 0, minimum=0) or None
        wait = query_bool(request, "wait")
        labels = query_labels(request)
        schedule_date = query_datetime(request, "scheduleDate")
        with uploaded_inputs(request) as inputs:
            execution = start_execution(
                tenant=tenant,
                namespace=namespace,
                flow_id=flow_id,
                inputs=inputs,
                labels=labels,
                revision=revision,
                schedule_date=schedule_date,
            )
        if wait:
            wait_terminal(execution.id)
        return self.answer(execution.id)


def wait_terminal(execution_id: str) -> None:
    """Hold the request until the execution has ended (its outputs are committed), at most
    BATON_API_WAIT_SECONDS; a short poll of one indexed row."""
    deadline = time.monotonic() + settings.BATON_API_WAIT_SECONDS
    pause = 0.005
    terminal = [state.value for state in TERMINAL_STATES]
    while not Execution.objects.filter(pk=execution_id, state__in=terminal).exists():
        if time.monotonic() > deadline:
            return  # answered as it is: the client sees the state it reached
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


class ExecutionDetail(ExecutionView):
    @extend_schema(
        operation_id="getExecution", summary="An execution", tags=_TAGS, responses={200: ExecutionShape}
    )
    def get(self, request: Request, tenant: str, execution_id: str) -> Response:
        execution = self.execution(execution_id)
        body = execution_dict(execution)
        reasons = waiting_reasons(execution)
        if reasons:
            body["waitingReasons"] = reasons
        return Response(body)

    @extend_schema(
        operation_id="deleteExecution",
        summary="Delete an execution (by default with its logs and files)",
        tags=_TAGS,
        parameters=[boolean("deleteLogs", "default true"), boolean("deleteStorage", "default true")],
        responses={**NO_CONTENT, **errors(409)},
    )
    def delete(self, request: Request, tenant: str, execution_id: str) -> Response:
        self.execution(execution_id, write=True)
        control.delete_execution(
            execution_id,
            tenant,
            delete_logs=query_bool(request, "deleteLogs", True),
            delete_storage=query_bool(request, "deleteStorage", True),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


SEARCH_PARAMETERS = [
    query("namespace", "this namespace and those under it"),
    query("flowId"),
    query("state", "any of these states", many=True, enum=PUBLIC_STATES),
    LABELS,
    date_time("startDate", "started at or after (default: BATON_API_SEARCH_DAYS days ago)"),
    date_time("endDate", "started at or before"),
    query("q", "an execution id, or text in the flow id or namespace"),
    query("parentId", "executions started by this one (subflows)"),
]


class ExecutionSearch(ExecutionView):
    SORTS = {
        "startDate": "start_date",
        "state.startDate": "start_date",
        "endDate": "end_date",
        "state.endDate": "end_date",
        "id": "id",
        "namespace": "namespace",
        "flowId": "flow_id",
        "state.current": "state",
    }

    @extend_schema(
        operation_id="searchExecutions",
        summary="Search executions (started in the last BATON_API_SEARCH_DAYS days unless `startDate`)",
        tags=_TAGS,
        parameters=[
            *SEARCH_PARAMETERS,
            sort(*SORTS),
            *PAGING,
            query("after", "cursor: the `nextCursor` of the previous page (newest-first order only)"),
        ],
        responses={
            200: inline_serializer(
                "PagedExecutions",
                {
                    "results": ExecutionShape(many=True),
                    "total": serializers.IntegerField(min_value=0),
                    "nextCursor": serializers.CharField(required=False),
                },
            )
        },
    )
    def get(self, request: Request, tenant: str) -> Response:
        ordering = query_sort(request, self.SORTS, ["-start_date", "-id"])
        rows = self.filtered(request, tenant).order_by(*ordering)
        render = lambda execution: execution_dict(execution, runs=[])  # noqa: E731
        cursor = request.query_params.get("after")
        if cursor is None and "page" in request.query_params:
            return paged(request, rows, render)
        return self.cursor_page(request, rows, render, cursor, ordering)

    def cursor_page(
        self,
        request: Request,
        rows: QuerySet[Execution],
        render: Any,
        cursor: str | None,
        ordering: list[str],
    ) -> Response:
        """Keyset paging on (startDate, id), newest first: each page is an indexed range, however deep.
        The answer carries `nextCursor` while more rows follow."""
        size = query_int(request, "size", DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        total = rows.count()
        if cursor is not None:
            if ordering != ["-start_date", "-id"]:
                raise ApiError("`after` pages in the default order only (no `sort`)", path="after")
            start, last_id = _decode_cursor(cursor)
            rows = rows.filter(Q(start_date__lt=start) | Q(start_date=start, id__lt=last_id))
        window = list(rows[: size + 1])
        body: dict[str, Any] = {"results": [render(row) for row in window[:size]], "total": total}
        if len(window) > size and ordering == ["-start_date", "-id"]:
            body["nextCursor"] = _encode_cursor(window[size - 1])
        return Response(body)

    def filtered(self, request: Request, tenant: str) -> QuerySet[Execution]:
        """The executions the search's query parameters select."""
        executions = (
            Execution.objects.for_tenant(tenant).filter(deleted=False).filter(self.access.namespace_filter())
        )
        params = request.query_params
        # Without a start date the search covers the last BATON_API_SEARCH_DAYS days: an indexed,
        # bounded range rather than the whole history.
        start = query_datetime(request, "startDate") or timezone.now() - timedelta(
            days=settings.BATON_API_SEARCH_DAYS
        )
        executions = executions.filter(start_date__gte=start)
        end = query_datetime(request, "endDate")
        if end is not None:
            executions = executions.filter(start_date__lte=end)
        if params.get("namespace"):
            namespace = params["namespace"]
            executions = executions.filter(namespace_tree(namespace))
        if params.get("flowId"):
            executions = executions.filter(flow_id=params["flowId"])
        states = params.getlist("state")
        unknown = sorted(set(states) - _PUBLIC_STATES)
        if unknown:
            raise ApiError(f"unknown state(s): {', '.join(unknown)}", path="state")
        if states:
            wanted = set(states) | ({State.SUBMITTED.value} if State.CREATED.value in states else set())
            executions = executions.filter(state__in=sorted(wanted))
        for key, value in query_labels(request):
            executions = with_label(executions, "labels", key, value)
        if params.get("q"):
            text = params["q"]
            executions = executions.filter(
                Q(id=text) | Q(flow_id__icontains=text) | Q(namespace__icontains=text)
            )
        if params.get("parentId"):
            executions = executions.filter(parent_id=params["parentId"])
        return executions


def _encode_cursor(execution: Execution) -> str:
    raw = f"{execution.start_date.isoformat()}|{execution.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        start, last_id = raw.split("|", 1)
        when = datetime.fromisoformat(start)
    except (ValueError, UnicodeDecodeError):
        raise ApiError("`after` is not a cursor this API gave", path="after") from None
    return when, last_id


class ExecutionKill(ExecutionView):
    @extend_schema(
        operation_id="killExecution",
        summary="Kill an execution (and its subflow executions)",
        tags=_TAGS,
        responses={202: OpenApiResponse(description="Killing"), **errors(409)},
    )
    def delete(self, request: Request, tenant: str, execution_id: str) -> Response:
        self.execution(execution_id, write=True)
        control.kill_execution(
            execution_id, tenant=tenant, reason=f"killed through the API by {request.user}"
        )
        return Response(status=status.HTTP_202_ACCEPTED)


class ExecutionPause(ExecutionView):
    @extend_schema(
        operation_id="pauseExecution",
        summary="Pause a running execution",
        tags=_TAGS,
        request=None,
        responses={**NO_CONTENT, **errors(409)},
    )
    def post(self, request: Request, tenant: str, execution_id: str) -> Response:
        self.execution(execution_id, write=True)
        control.pause_execution(execution_id, tenant=tenant)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExecutionResume(ExecutionView):
    @extend_schema(
        operation_id="resumeExecution",
        summary="Resume a paused execution; the form fields are the inputs of its Pause task's onResume",
        tags=_TAGS,
        request=INPUTS_BODY,
        responses={**NO_CONTENT, **errors(409, 413, 422)},
    )
    def post(self, request: Request, tenant: str, execution_id: str) -> Response:
        self.execution(execution_id, write=True)
        with uploaded_inputs(request) as inputs:
            resume_execution(execution_id, inputs=inputs, tenant=tenant)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExecutionRestart(ExecutionView):
    @extend_schema(
        operation_id="restartExecution",
        summary="Restart the failed task runs of an execution, in the same execution",
        tags=_TAGS,
        request=None,
        responses={200: ExecutionShape, **errors(409)},
    )
    def post(self, request: Request, tenant: str, execution_id: str) -> Response:
        self.execution(execution_id, write=True)
        control.restart_execution(execution_id, tenant=tenant)
        return self.answer(execution_id)


class ExecutionReplay(ExecutionView):
    @extend_schema(
        operation_id="replayExecution",
        summary="A new execution from this one, from a task run on (`taskRunId`); form fields are new inputs",
        tags=_TAGS,
        parameters=[query("taskRunId", "replay from this task run (default: from the start)")],
        request=INPUTS_BODY,
        responses={200: ExecutionShape, **errors(409, 413, 422)},
    )
    def post(self, request: Request, tenant: str, execution_id: str) -> Response:
        self.execution(execution_id, write=True)
        with uploaded_inputs(request) as inputs:
            replayed = control.replay_execution(
                execution_id,
                taskrun_id=request.query_params.get("taskRunId") or None,
                inputs=inputs or None,
                tenant=tenant,
            )
        return self.answer(replayed.id)


class ExecutionChangeStatus(ExecutionView):
    """Set the state of an ended execution (`status`), or of one of its task runs (`taskRunId` and
    `status`); in the query or a JSON body (`state` is accepted for `status`)."""

    @extend_schema(
        operation_id="updateExecutionStatus",
        summary="Force the state of an ended execution or of one of its task runs",
        tags=_TAGS,
        parameters=[
            query("status", "the state to set", enum=PUBLIC_STATES),
            query("taskRunId", "set the state of this task run instead"),
        ],
        request={"application/json": ChangeStatusShape},
        responses={200: ExecutionShape, **errors(409, 422)},
    )
    def post(self, request: Request, tenant: str, execution_id: str) -> Response:
        self.execution(execution_id, write=True)
        data = {**(request.data if isinstance(request.data, dict) else {}), **request.query_params.dict()}
        taskrun_id = data.get("taskRunId")
        state = data.get("status") or data.get("state")
        if not state:
            raise ApiError("give `status`: the state to set", path="status")
        if taskrun_id:
            control.change_taskrun_state(execution_id, str(taskrun_id), str(state), tenant=tenant)
        else:
            control.change_execution_state(execution_id, str(state), tenant=tenant)
        return self.answer(execution_id)


class ExecutionFile(ExecutionView):
    """Download a file of the execution (`?path=kestra:///...`): only files under its own prefix."""

    content_negotiation_class = StreamNegotiation

    @extend_schema(exclude=True)  # createExecution of a flow named `file`, described there
    def post(self, request: Request, tenant: str, execution_id: str) -> Response:
        # POST /executions/{namespace}/file starts the flow named `file` (the path is shared).
        return ExecutionStart.post(self, request, tenant, execution_id, "file")  # type: ignore[arg-type]

    @extend_schema(
        operation_id="downloadFileFromExecution",
        summary="Download an output file of the execution",
        tags=_TAGS,
        parameters=[query("path", "the file's kestra:/// URI", required=True)],
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, tenant: str, execution_id: str) -> FileResponse:
        execution = self.execution(execution_id)
        uri = request.query_params.get("path", "")
        try:
            key = key_of(uri)
        except StorageError as error:
            raise ApiError(
                f"`path` must be a kestra:// URI of this execution: {error}", path="path"
            ) from error
        prefix = execution_prefix(execution.namespace, execution.flow_id, execution.id) + "/"
        if not key.startswith(prefix):
            raise exceptions.NotFound(f"no file `{uri}` in execution `{execution_id}`")
        storage = storage_for_uri(tenant, uri)
        if not storage.exists(tenant, uri):
            raise exceptions.NotFound(f"no file `{uri}` in execution `{execution_id}`")
        name = PurePosixPath(key).name
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return FileResponse(
            storage.open(tenant, uri), as_attachment=True, filename=name, content_type=content_type
        )


class ExecutionEval(ExecutionView):
    """Render an expression (the text body) in the execution's context: `{"result", "error"}`."""

    parser_classes = YAML_PARSERS

    @extend_schema(
        operation_id="evalTaskRunExpression",
        summary="Render an expression (the text body) in the execution's context",
        tags=_TAGS,
        request=TEXT_BODY,
        responses={200: EvalResultShape},
    )
    def post(self, request: Request, tenant: str, execution_id: str) -> Response:
        execution = self.execution(execution_id, write=True)
        expression = request.data if isinstance(request.data, str) else ""
        if not expression.strip():
            raise ApiError("send the expression as the text body (Content-Type: text/plain)", path="body")
        try:
            result = control.evaluate_expression(execution, expression)
        except ExpressionError as error:
            return Response({"result": None, "error": str(error), "stackTrace": None})
        return Response({"result": result, "error": None, "stackTrace": None})


# How often a followed execution is looked at again (seconds): two indexed queries per look.
FOLLOW_INTERVAL = 0.25


def sse(data: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, default=str, separators=(',', ':'))}\n\n"


class ExecutionFollow(ExecutionView):
    """Server-Sent Events: the execution each time it changes, until it has ended."""

    content_negotiation_class = StreamNegotiation

    @extend_schema(
        operation_id="followExecution",
        summary="Server-Sent Events: the execution each time it changes, then an `end` event",
        tags=_TAGS,
        responses={
            (200, "text/event-stream"): sse_schema("the Execution; the `end` event carries its final state")
        },
    )
    def get(self, request: Request, tenant: str, execution_id: str) -> StreamingHttpResponse:
        self.execution(execution_id)

        def events() -> Iterator[str]:
            last: dict[str, Any] | None = None
            deadline = time.monotonic() + settings.BATON_API_WAIT_SECONDS
            while time.monotonic() < deadline:
                execution = Execution.objects.filter(pk=execution_id).first()
                if execution is None:
                    return
                current = execution_dict(execution)
                if current != last:
                    yield sse(current)
                    last = current
                if execution.is_terminal:
                    yield sse(current, event="end")
                    return
                time.sleep(FOLLOW_INTERVAL)

        return event_stream(events())


def event_stream(events: Iterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
    return response


class BulkSchema(DeleteWithBodySchema):
    """The eight bulk operations share one view class: each is named and described here. Either
    method works on each path; the schema shows Kestra's (DELETE to kill, POST otherwise)."""

    view: ExecutionBulk

    def is_excluded(self) -> bool:
        return self.method != ("DELETE" if self.view.action == "kill" else "POST")

    def get_operation_id(self) -> str:
        return f"{self.view.action}ExecutionsBy{'Query' if self.view.by_query else 'Ids'}"

    def get_summary(self) -> str:
        selection = (
            "the executions the search parameters select" if self.view.by_query else "these executions"
        )
        return f"{self.view.action.capitalize()} {selection}; answers how many it applied to"

    def get_tags(self) -> list[str]:
        return _TAGS

    def get_override_parameters(self) -> list[Any]:
        return SEARCH_PARAMETERS if self.view.by_query else []

    def get_request_serializer(self) -> Any:
        if self.view.by_query:
            return None
        return {"application/json": {"type": "array", "items": {"type": "string"}}}

    def get_response_serializers(self) -> Any:
        return {200: BulkCountShape, **errors(404)}


class ExecutionBulk(ExecutionSearch):
    """`/executions/{kill,restart,resume,replay}/by-ids` (a JSON list of ids) and `/by-query` (the
    search's filters): the action on each execution; answers `{"count": N}` of those it applied to.
    Unknown ids refuse the whole request and change nothing."""

    action = ""
    by_query = False

    def _apply(self, request: Request, tenant: str) -> Response:
        if self.by_query:
            ids = list(
                self.filtered(request, tenant).values_list("id", flat=True)[: settings.BATON_API_BULK_MAX]
            )
        else:
            ids = request.data if isinstance(request.data, list) else None
            if ids is None or not all(isinstance(item, str) for item in ids):
                raise ApiError("send a JSON list of execution ids", path="body")
            found = set(
                Execution.objects.for_tenant(tenant)
                .filter(id__in=ids, deleted=False)
                .filter(self.access.namespace_filter())
                .values_list("id", flat=True)
            )
            missing = [item for item in ids if item not in found]
            if missing:
                raise ApiError(f"executions not found: {', '.join(missing[:20])}", status.HTTP_404_NOT_FOUND)
        # Both selections went through the access's namespace filter, and a user who may see a
        # namespace may write there (VIEWERs are refused before): no further check per execution.
        count = 0
        for execution_id in ids:
            try:
                self._one(execution_id, tenant, request)
            except (control.ControlError, NotPaused):
                continue  # not in a state this action applies to: skipped, as Kestra's bulk does
            count += 1
        return Response({"count": count})

    def _one(self, execution_id: str, tenant: str, request: Request) -> None:
        user = f"bulk {self.action} through the API by {request.user}"
        if self.action == "kill":
            control.kill_execution(execution_id, tenant=tenant, reason=user)
        elif self.action == "restart":
            control.restart_execution(execution_id, tenant=tenant)
        elif self.action == "resume":
            resume_execution(execution_id, tenant=tenant)
        else:
            control.replay_execution(execution_id, tenant=tenant)

    http_method_names = ["post", "delete", "options"]  # not the search's GET
    schema = BulkSchema()

    def post(self, request: Request, tenant: str) -> Response:
        return self._apply(request, tenant)

    def delete(self, request: Request, tenant: str) -> Response:
        return self._apply(request, tenant)
