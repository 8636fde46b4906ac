"""/api/v1/{tenant}/flows: flows as YAML in, Kestra's Flow JSON out."""

from __future__ import annotations

import re
from typing import Any

import yaml
from django.db import transaction
from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from flows.api.base import YAML_PARSERS, TenantView, paged, query_bool, query_int, query_labels, query_sort
from flows.api.errors import ApiError
from flows.api.schema import errors
from flows.api.shapes import (
    LABELS,
    NO_CONTENT,
    PAGING,
    STRINGS,
    YAML_BODY,
    FlowGraphShape,
    FlowShape,
    FlowValidationShape,
    boolean,
    integer,
    paged_shape,
    query,
    sort,
)
from flows.errors import FlowValidationError
from flows.models import Flow, FlowRevision
from flows.services.access import namespace_tree
from flows.services.flows import delete_flow, parse_flow, save_flow_revision, spec_of_source
from flows.services.variables import iso
from flows.spec.graph import flow_graph
from flows.spec.model import FlowSpec

_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*(?:#.*)?$", re.MULTILINE)
READ_ONLY_LABEL = "system.readOnly"


def split_documents(text: str) -> list[str]:
    """The YAML documents of a multi-document body, each exactly as written (empty ones dropped)."""
    return [part.strip("\n") + "\n" for part in _DOCUMENT_SEPARATOR.split(text) if part.strip()]


def flow_dict(
    flow: Flow, source: str | None = None, revision: int | None = None, with_source: bool = False
) -> dict[str, Any]:
    """Kestra's Flow JSON: the definition's fields, then revision, tenant, state and source."""
    text = flow.source if source is None else source
    try:
        definition = yaml.safe_load(text)
    except yaml.YAMLError:
        definition = None
    body: dict[str, Any] = dict(definition) if isinstance(definition, dict) else {}
    labels = body.get("labels")
    if isinstance(labels, dict):  # Kestra answers labels as a list of {key, value}
        body["labels"] = [{"key": str(key), "value": str(value)} for key, value in labels.items()]
    body.update(
        {
            "id": flow.flow_id,
            "namespace": flow.namespace,
            "tenantId": flow.tenant_id,
            "revision": flow.revision if revision is None else revision,
            "disabled": bool(body.get("disabled", flow.disabled)),
            "deleted": flow.deleted,
            "updated": iso(flow.updated),
        }
    )
    if with_source:
        body["source"] = text
    return body


def _refuse_read_only(flow: Flow) -> None:
    """403 for a flow whose stored source carries `system.readOnly: true`."""
    try:
        labels = spec_of_source(flow.source).labels
    except FlowValidationError:
        return
    if any(key == READ_ONLY_LABEL and value.lower() == "true" for key, value in labels):
        raise ApiError(
            f"flow `{flow.namespace}.{flow.flow_id}` is read-only (label {READ_ONLY_LABEL}: true)",
            status.HTTP_403_FORBIDDEN,
        )


_TAGS = ["Flows"]
_REVISION = integer("revision", "a revision number (default: the current one)", minimum=0)


class FlowCreate(TenantView):
    parser_classes = YAML_PARSERS

    @extend_schema(
        operation_id="createFlow",
        summary="Create a flow from its YAML source",
        tags=_TAGS,
        request=YAML_BODY,
        responses={200: FlowShape, **errors(409, 422)},
    )
    def post(self, request: Request, tenant: str) -> Response:
        source = _yaml_body(request)
        spec = parse_flow(source)
        self.check_namespace(spec.namespace, write=True)
        if (
            Flow.objects.for_tenant(tenant)
            .filter(namespace=spec.namespace, flow_id=spec.id, deleted=False)
            .exists()
        ):
            raise ApiError(
                f"flow `{spec.namespace}.{spec.id}` already exists", status.HTTP_409_CONFLICT, path="id"
            )
        flow = save_flow_revision(tenant, source)
        return Response(flow_dict(flow, with_source=True), status=status.HTTP_200_OK)


class FlowDetail(TenantView):
    parser_classes = YAML_PARSERS

    def _flow(self, namespace: str, flow_id: str, allow_deleted: bool = False) -> Flow:
        self.check_namespace(namespace)
        flows = Flow.objects.for_tenant(self.tenant).filter(namespace=namespace, flow_id=flow_id)
        if not allow_deleted:
            flows = flows.filter(deleted=False)
        flow = flows.first()
        if flow is None:
            raise exceptions.NotFound(f"flow `{namespace}.{flow_id}` not found")
        return flow

    def source_at(self, request: Request, flow: Flow) -> tuple[str, int]:
        """The source and number of the revision `?revision=N` asks for (the current one by default)."""
        revision = query_int(request, "revision", 0, minimum=0) or flow.revision
        if revision == flow.revision:
            return flow.source, revision
        source = (
            FlowRevision.objects.filter(flow=flow, revision=revision).values_list("source", flat=True).first()
        )
        if source is None:
            raise exceptions.NotFound(f"flow `{flow.namespace}.{flow.flow_id}` has no revision {revision}")
        return source, revision

    @extend_schema(
        operation_id="getFlow",
        summary="A flow (optionally an earlier revision, with its source)",
        tags=_TAGS,
        parameters=[
            _REVISION,
            boolean("source", "include the YAML source"),
            boolean("allowDeleted", "also a deleted flow"),
        ],
        responses={200: FlowShape},
    )
    def get(self, request: Request, tenant: str, namespace: str, flow_id: str) -> Response:
        flow = self._flow(namespace, flow_id, allow_deleted=query_bool(request, "allowDeleted"))
        source, revision = self.source_at(request, flow)
        return Response(
            flow_dict(flow, source=source, revision=revision, with_source=query_bool(request, "source"))
        )

    @extend_schema(
        operation_id="updateFlow",
        summary="Replace a flow's YAML: a new revision",
        tags=_TAGS,
        request=YAML_BODY,
        responses={200: FlowShape, **errors(422)},
    )
    def put(self, request: Request, tenant: str, namespace: str, flow_id: str) -> Response:
        source = _yaml_body(request)
        flow = self._flow(namespace, flow_id)
        self.check_namespace(namespace, write=True)
        spec = parse_flow(source)
        _same_flow(spec, namespace, flow_id)
        _refuse_read_only(flow)
        flow = save_flow_revision(tenant, source)
        return Response(flow_dict(flow, with_source=True))

    @extend_schema(
        operation_id="deleteFlow",
        summary="Delete a flow (its revisions are kept)",
        tags=_TAGS,
        responses=NO_CONTENT,
    )
    def delete(self, request: Request, tenant: str, namespace: str, flow_id: str) -> Response:
        flow = self._flow(namespace, flow_id)
        self.check_namespace(namespace, write=True)
        _refuse_read_only(flow)
        delete_flow(flow)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FlowRevisions(FlowDetail):
    http_method_names = ["get", "head", "options"]  # not the flow's PUT and DELETE

    @extend_schema(
        operation_id="listFlowRevisions",
        summary="Every revision of a flow, with its source",
        tags=_TAGS,
        responses={200: FlowShape(many=True)},
    )
    def get(self, request: Request, tenant: str, namespace: str, flow_id: str) -> Response:
        flow = self._flow(namespace, flow_id, allow_deleted=True)
        revisions = FlowRevision.objects.filter(flow=flow).order_by("revision")
        return Response(
            [flow_dict(flow, source=row.source, revision=row.revision, with_source=True) for row in revisions]
        )


class FlowSearch(TenantView):
    SORTS = {"id": "flow_id", "namespace": "namespace", "updated": "updated", "revision": "revision"}

    @extend_schema(
        operation_id="searchFlows",
        summary="Search flows",
        tags=_TAGS,
        parameters=[
            query("q", "text in the id or namespace"),
            query("namespace", "this namespace and those under it"),
            LABELS,
            sort(*SORTS),
            *PAGING,
        ],
        responses={200: paged_shape("PagedFlows", FlowShape(many=True))},
    )
    def get(self, request: Request, tenant: str) -> Response:
        flows = Flow.objects.for_tenant(tenant).filter(deleted=False).filter(self.access.namespace_filter())
        namespace = request.query_params.get("namespace")
        if namespace:
            flows = flows.filter(namespace_tree(namespace))
        text = request.query_params.get("q")
        if text:
            flows = flows.filter(Q(flow_id__icontains=text) | Q(namespace__icontains=text))
        labels = query_labels(request)
        ordering = query_sort(request, self.SORTS, ["namespace", "flow_id"])
        rows = list(flows.order_by(*ordering)) if labels else flows.order_by(*ordering)
        if labels:  # labels live in the YAML: filtered here, on the (small) list of flows
            rows = [flow for flow in rows if _has_labels(flow, labels)]
        return paged(request, rows, flow_dict)


def _has_labels(flow: Flow, wanted: list[tuple[str, str]]) -> bool:
    try:
        labels = set(spec_of_source(flow.source).labels)
    except FlowValidationError:
        return False
    return all(pair in labels for pair in wanted)


class DistinctNamespaces(TenantView):
    @extend_schema(
        operation_id="listDistinctNamespaces",
        summary="The namespaces that have flows",
        tags=_TAGS,
        responses={200: STRINGS},
    )
    def get(self, request: Request, tenant: str) -> Response:
        flows = Flow.objects.for_tenant(tenant).filter(deleted=False).filter(self.access.namespace_filter())
        return Response(sorted(set(flows.values_list("namespace", flat=True))))


class FlowValidate(TenantView):
    parser_classes = YAML_PARSERS

    @extend_schema(
        operation_id="validateFlows",
        summary="Validate one or more YAML documents (`---`-separated) without saving them",
        tags=_TAGS,
        request=YAML_BODY,
        responses={200: FlowValidationShape(many=True)},
    )
    def post(self, request: Request, tenant: str) -> Response:
        return Response(
            [
                _validation(index, document)
                for index, document in enumerate(split_documents(_yaml_body(request)))
            ]
        )


def _validation(index: int, document: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "index": index,
        "flow": None,
        "namespace": None,
        "constraints": None,
        "outdated": False,
        "deprecationPaths": [],
        "warnings": [],
        "infos": [],
        "errors": [],
    }
    try:
        spec = parse_flow(document)
    except FlowValidationError as error:
        try:
            loose = yaml.safe_load(document)
        except yaml.YAMLError:
            loose = None
        if isinstance(loose, dict):
            result["flow"] = loose.get("id") if isinstance(loose.get("id"), str) else None
            result["namespace"] = loose.get("namespace") if isinstance(loose.get("namespace"), str) else None
        result["constraints"] = str(error)
        result["errors"] = [
            {
                "message": violation.message,
                "path": violation.path,
                "line": violation.line,
                "column": violation.column,
            }
            for violation in error.violations
        ]
        return result
    result["flow"], result["namespace"] = spec.id, spec.namespace
    return result


class NamespaceFlows(TenantView):
    """GET: the flows of a namespace; POST: make the namespace hold exactly these flows (deploy)."""

    parser_classes = YAML_PARSERS

    @extend_schema(
        operation_id="listFlowsByNamespace",
        summary="The flows of a namespace",
        tags=_TAGS,
        responses={200: FlowShape(many=True)},
    )
    def get(self, request: Request, tenant: str, namespace: str) -> Response:
        self.check_namespace(namespace)
        flows = Flow.objects.for_tenant(tenant).filter(namespace=namespace, deleted=False).order_by("flow_id")
        return Response([flow_dict(flow) for flow in flows])

    @extend_schema(
        operation_id="updateFlowsInNamespace",
        summary="Make a namespace hold these flows (a multi-document YAML): the deploy primitive",
        tags=_TAGS,
        parameters=[boolean("delete", "also delete the namespace's other flows")],
        request=YAML_BODY,
        responses={200: FlowShape(many=True), **errors(422)},
    )
    def post(self, request: Request, tenant: str, namespace: str) -> Response:
        self.check_namespace(namespace, write=True)
        documents = split_documents(_yaml_body(request, allow_empty=True))
        specs: list[tuple[str, FlowSpec]] = []
        for index, document in enumerate(documents):
            try:
                spec = parse_flow(document)
            except FlowValidationError as error:
                raise ApiError(
                    f"flow at index {index} is invalid: {error}", status.HTTP_422_UNPROCESSABLE_ENTITY
                ) from error
            if spec.namespace != namespace:
                raise ApiError(
                    f"flow `{spec.id}` at index {index} is in namespace `{spec.namespace}`, not `{namespace}`",
                    status.HTTP_422_UNPROCESSABLE_ENTITY,
                    path="namespace",
                )
            specs.append((document, spec))
        ids = [spec.id for _, spec in specs]
        duplicated = sorted({flow_id for flow_id in ids if ids.count(flow_id) > 1})
        if duplicated:
            raise ApiError(
                f"flow ids appear twice: {', '.join(duplicated)}", status.HTTP_422_UNPROCESSABLE_ENTITY
            )
        with transaction.atomic():
            saved = [save_flow_revision(tenant, document) for document, _ in specs]
            if query_bool(request, "delete"):
                others = (
                    Flow.objects.for_tenant(tenant)
                    .filter(namespace=namespace, deleted=False)
                    .exclude(flow_id__in=ids)
                )
                for flow in others:
                    delete_flow(flow)
        return Response([flow_dict(flow) for flow in saved])


def _yaml_body(request: Request, allow_empty: bool = False) -> str:
    body = request.data
    if not isinstance(body, str):
        raise exceptions.UnsupportedMediaType(
            request.content_type, "send the flow as YAML text (Content-Type: application/x-yaml)"
        )
    if not body.strip() and not allow_empty:
        raise ApiError("the body is empty: send the flow's YAML", status.HTTP_422_UNPROCESSABLE_ENTITY)
    return body


def _same_flow(spec: FlowSpec, namespace: str, flow_id: str) -> None:
    if spec.namespace != namespace or spec.id != flow_id:
        raise ApiError(
            f"the YAML is flow `{spec.namespace}.{spec.id}`, the path says `{namespace}.{flow_id}`",
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            path="id",
        )


class FlowGraph(FlowDetail):
    http_method_names = ["get", "head", "options"]  # not the flow's PUT and DELETE

    @extend_schema(
        operation_id="generateFlowGraph",
        summary="A flow's topology: nodes, edges and clusters",
        tags=_TAGS,
        parameters=[_REVISION],
        responses={200: FlowGraphShape},
    )
    def get(self, request: Request, tenant: str, namespace: str, flow_id: str) -> Response:
        source, _ = self.source_at(request, self._flow(namespace, flow_id))
        return Response(flow_graph(spec_of_source(source)))
