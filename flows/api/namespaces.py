"""/api/v1/{tenant}/namespaces: namespaces, namespace files, KV store and secrets (Kestra's paths and
shapes). Every view here checks the namespace against the user's access before touching anything."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.http import FileResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from flows.api.base import (
    StreamNegotiation,
    StrictFormParser,
    StrictJsonParser,
    StrictMultiPartParser,
    TenantView,
    TextParser,
    has_non_finite,
    has_nul,
    paged,
    query_int,
    query_sort,
)
from flows.api.errors import ApiError
from flows.api.schema import DeleteWithBodySchema, errors
from flows.api.shapes import (
    NO_CONTENT,
    PAGING,
    STRINGS,
    FileAttributesShape,
    FileRevisionShape,
    KVEntryShape,
    KVKeysShape,
    KVNamespaceShape,
    KVValueShape,
    NamespaceShape,
    SecretPatchShape,
    SecretShape,
    SecretsPageShape,
    SecretWriteShape,
    integer,
    paged_shape,
    query,
    sort,
)
from flows.models import Flow, KVEntry, Namespace
from flows.services import kv, nsfiles, secrets
from flows.services.variables import iso
from flows.spec.durations import parse_duration
from flows.spec.namespaces import lineage

T = "<str:tenant>"
NS = f"{T}/namespaces/<str:namespace>"

# Segments of letters, digits, `_` and `-`, joined by dots: nothing that could name another folder.
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")


_TAGS = ["Namespaces"]
_FILE_TAGS = ["Files"]
_KV_TAGS = ["KV"]
_SECRET_TAGS = ["Secrets"]
_PATH = query("path", "a path in the namespace's files, e.g. `/scripts/main.py`")
_BINARY = {(200, "application/octet-stream"): OpenApiTypes.BINARY}


class RawJsonParser(TextParser):
    """A JSON (or ION-like) body kept as text: Kestra's KV PUT reads `2024-01-31` as a DATE."""

    media_type = "application/json"


class NamespaceView(TenantView):
    """A view under /namespaces/{namespace}: the name is checked, then the user's access to it."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        namespace = kwargs["namespace"]
        if len(namespace) > 300 or not _NAMESPACE.fullmatch(namespace):
            raise ApiError(
                f"invalid namespace `{namespace}`: dot-separated names of letters, digits, `_` and `-`",
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                path="namespace",
            )
        self.check_namespace(namespace, write=request.method not in ("GET", "HEAD", "OPTIONS"))


# -- namespaces


def _with_parents(names: set[str]) -> set[str]:
    """`a.b.c` also stands for `a` and `a.b`, as in Kestra's namespace tree."""
    return {parent for name in names for parent in lineage(name)}


def namespace_dict(name: str) -> dict[str, Any]:
    return {"id": name, "deleted": False}


class NamespaceSearch(TenantView):
    """Namespaces of the tenant's flows and of the Namespace table, with their parents."""

    @extend_schema(
        operation_id="searchNamespaces",
        summary="The namespaces of the tenant (of its flows, and their parents)",
        tags=_TAGS,
        parameters=[query("q", "text in the name"), sort("id"), *PAGING],
        responses={
            200: paged_shape("PagedNamespaces", NamespaceShape(many=True)),
        },
    )
    def get(self, request: Request, tenant: str) -> Response:
        names = set(Namespace.objects.filter(tenant_id=tenant).values_list("name", flat=True))
        names |= set(
            Flow.objects.for_tenant(tenant).filter(deleted=False).values_list("namespace", flat=True)
        )
        visible = [name for name in _with_parents(names) if self.access.sees(name)]
        text = (request.query_params.get("q") or "").lower()
        if text:
            visible = [name for name in visible if text in name.lower()]
        descending = query_sort(request, {"id": "id"}, ["id"]) == ["-id"]
        return paged(request, sorted(visible, reverse=descending), namespace_dict)


class NamespaceDetail(NamespaceView):
    @extend_schema(
        operation_id="getNamespace",
        summary="A namespace",
        tags=_TAGS,
        responses={200: NamespaceShape, **errors(422)},
    )
    def get(self, request: Request, tenant: str, namespace: str) -> Response:
        return Response(namespace_dict(namespace))


# -- namespace files


def _attributes_dict(attributes: nsfiles.FileAttributes) -> dict[str, Any]:
    """Kestra's FileAttributes: dates in epoch milliseconds, type `File` or `Directory`."""
    return {
        "fileName": attributes.name,
        "lastModifiedTime": int(attributes.modified.timestamp() * 1000),
        "creationTime": int(attributes.created.timestamp() * 1000),
        "type": "Directory" if attributes.is_directory else "File",
        "size": attributes.size,
        "metadata": {},
    }


class NamespaceFiles(NamespaceView):
    """GET: a file's bytes (`?revision=` for an earlier one); POST: upload (multipart `fileContent`;
    a `.zip` is unpacked at the root, as Kestra does); PUT: move (`?from=&to=`); DELETE: delete a
    file or a folder."""

    content_negotiation_class = StreamNegotiation
    parser_classes = [StrictMultiPartParser, StrictFormParser]

    @extend_schema(
        operation_id="getFileContent",
        summary="A namespace file's bytes",
        tags=_FILE_TAGS,
        parameters=[_PATH, integer("revision", "an earlier revision of the file")],
        responses={**_BINARY, **errors(422)},
    )
    def get(self, request: Request, tenant: str, namespace: str) -> FileResponse:
        revision = query_int(request, "revision", 1) if request.query_params.get("revision") else None
        local = nsfiles.file_to_read(tenant, namespace, request.query_params.get("path"), revision)
        response = FileResponse(open(local, "rb"), content_type="application/octet-stream")
        response["Cache-Control"] = "no-cache"
        return response

    @extend_schema(
        operation_id="createNamespaceFile",
        summary="Upload a namespace file (a `.zip` is unpacked at the root)",
        tags=_FILE_TAGS,
        parameters=[_PATH],
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"fileContent": {"type": "string", "format": "binary"}},
                "required": ["fileContent"],
            }
        },
        responses={**NO_CONTENT, **errors(409, 413, 422)},
    )
    def post(self, request: Request, tenant: str, namespace: str) -> Response:
        limit = settings.BATON_API_MAX_UPLOAD_BYTES
        # Refused before the body is read: an oversize upload is not even spooled to disk.
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit + 64 * 1024:
            raise ApiError(
                f"the upload is larger than {limit} bytes", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
            )
        raw_path = request.query_params.get("path")
        nsfiles.clean_path(raw_path, allow_root=True)  # a bad path is refused before the body is read
        upload = request.FILES.get("fileContent")
        if upload is None:
            raise ApiError(
                "send the file as the multipart part `fileContent`",
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                path="fileContent",
            )
        if upload.size > limit:
            raise ApiError(
                f"`fileContent` has {upload.size} bytes, more than the {limit} allowed",
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                path="fileContent",
            )
        if (upload.name or "").lower().endswith(".zip"):  # Kestra unpacks an uploaded zip at the root
            nsfiles.import_zip(tenant, namespace, upload, max_bytes=limit)
        else:
            nsfiles.put_file(tenant, namespace, raw_path, upload.chunks())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="moveFileDirectory",
        summary="Move or rename a namespace file or folder",
        tags=_FILE_TAGS,
        parameters=[query("from", "the current path"), query("to", "the new path")],
        request=None,
        responses={**NO_CONTENT, **errors(409, 422)},
    )
    def put(self, request: Request, tenant: str, namespace: str) -> Response:
        nsfiles.move(tenant, namespace, request.query_params.get("from"), request.query_params.get("to"))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="deleteFileDirectory",
        summary="Delete a namespace file or folder",
        tags=_FILE_TAGS,
        parameters=[_PATH],
        responses={**NO_CONTENT, **errors(422)},
    )
    def delete(self, request: Request, tenant: str, namespace: str) -> Response:
        nsfiles.delete(tenant, namespace, request.query_params.get("path"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class NamespaceDirectory(NamespaceView):
    @extend_schema(
        operation_id="listNamespaceDirectoryFiles",
        summary="The entries of a namespace folder, folders first",
        tags=_FILE_TAGS,
        parameters=[_PATH],
        responses={200: FileAttributesShape(many=True), **errors(422)},
    )
    def get(self, request: Request, tenant: str, namespace: str) -> Response:
        entries = nsfiles.list_directory(tenant, namespace, request.query_params.get("path"))
        return Response([_attributes_dict(entry) for entry in entries])

    @extend_schema(
        operation_id="createNamespaceDirectory",
        summary="Create a namespace folder (and its parents)",
        tags=_FILE_TAGS,
        parameters=[_PATH],
        request=None,
        responses={**NO_CONTENT, **errors(409, 422)},
    )
    def post(self, request: Request, tenant: str, namespace: str) -> Response:
        nsfiles.create_directory(tenant, namespace, request.query_params.get("path"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class NamespaceFileStats(NamespaceView):
    @extend_schema(
        operation_id="getFileMetadatas",
        summary="A namespace file's or folder's attributes",
        tags=_FILE_TAGS,
        parameters=[_PATH],
        responses={200: FileAttributesShape, **errors(422)},
    )
    def get(self, request: Request, tenant: str, namespace: str) -> Response:
        return Response(_attributes_dict(nsfiles.stats(tenant, namespace, request.query_params.get("path"))))


class NamespaceFileRevisions(NamespaceView):
    @extend_schema(
        operation_id="getFileRevisions",
        summary="The revisions of a namespace file",
        tags=_FILE_TAGS,
        parameters=[_PATH],
        responses={200: FileRevisionShape(many=True), **errors(422)},
    )
    def get(self, request: Request, tenant: str, namespace: str) -> Response:
        numbers = nsfiles.revisions(tenant, namespace, request.query_params.get("path"))
        return Response([{"revision": number} for number in numbers])


class NamespaceFilesExport(NamespaceView):
    content_negotiation_class = StreamNegotiation

    @extend_schema(
        operation_id="exportNamespaceFiles",
        summary="A zip of the namespace's files",
        tags=_FILE_TAGS,
        responses={**_BINARY, **errors(422)},
    )
    def get(self, request: Request, tenant: str, namespace: str) -> FileResponse:
        return FileResponse(
            nsfiles.export_zip(tenant, namespace),
            as_attachment=True,
            filename=f"{namespace}_files.zip",
            content_type="application/octet-stream",
        )


# -- KV store


def _kv_entry_dict(entry: KVEntry) -> dict[str, Any]:
    """Kestra's KVEntry."""
    return {
        "key": entry.key,
        "description": entry.description or None,
        "creationDate": iso(entry.created),
        "updateDate": iso(entry.updated),
        "expirationDate": iso(entry.expires_at) if entry.expires_at else None,
    }


class KVList(NamespaceView):
    """GET: the namespace's live keys (a list, as Kestra); DELETE: bulk delete `{"keys": [...]}`."""

    schema = DeleteWithBodySchema()

    @extend_schema(
        operation_id="listKeys",
        summary="The namespace's KV entries (not expired)",
        tags=_KV_TAGS,
        responses={200: KVEntryShape(many=True), **errors(422)},
    )
    def get(self, request: Request, tenant: str, namespace: str) -> Response:
        return Response([_kv_entry_dict(entry) for entry in kv.live_entries(tenant, namespace)])

    @extend_schema(
        operation_id="deleteKeyValues",
        summary="Delete these keys; answers those that existed",
        tags=_KV_TAGS,
        request={"application/json": KVKeysShape},
        responses={200: KVKeysShape, **errors(415, 422)},
    )
    def delete(self, request: Request, tenant: str, namespace: str) -> Response:
        keys = request.data.get("keys") if isinstance(request.data, dict) else None
        if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
            raise ApiError('send `{"keys": [...]}`: the keys to delete', path="keys")
        return Response({"keys": [key for key in keys if kv.delete_value(tenant, namespace, key)]})


class KVInheritance(NamespaceView):
    """The keys of the namespace, then of each parent namespace the user may see."""

    @extend_schema(
        operation_id="listKeysWithInheritence",  # sic: Kestra's name
        summary="The KV entries of the namespace and of each parent namespace",
        tags=_KV_TAGS,
        responses={200: KVNamespaceShape(many=True), **errors(422)},
    )
    def get(self, request: Request, tenant: str, namespace: str) -> Response:
        return Response(
            [
                {
                    "namespace": name,
                    "kvEntries": [_kv_entry_dict(entry) for entry in kv.live_entries(tenant, name)],
                }
                for name in lineage(namespace)
                if self.access.sees(name)
            ]
        )


class KVDetail(NamespaceView):
    parser_classes = [RawJsonParser, TextParser]

    @extend_schema(
        operation_id="getKeyValue",
        summary="A KV value and its type",
        tags=_KV_TAGS,
        responses={200: KVValueShape, **errors(410, 422)},
    )
    def get(self, request: Request, tenant: str, namespace: str, key: str) -> Response:
        typed = kv.get_value(tenant, namespace, key)
        return Response({"type": typed.type, "value": typed.value})

    @extend_schema(
        operation_id="setKeyValue",
        summary="Set a KV value: the body is read as Kestra does (a JSON value, a date, a duration, text)",
        tags=_KV_TAGS,
        parameters=[
            OpenApiParameter("ttl", str, OpenApiParameter.HEADER, description="ISO-8601 duration, e.g. PT1H"),
            OpenApiParameter("description", str, OpenApiParameter.HEADER),
        ],
        request={"application/json": OpenApiTypes.ANY, "text/plain": OpenApiTypes.STR},
        responses={200: KVEntryShape, **errors(413, 422)},
    )
    def put(self, request: Request, tenant: str, namespace: str, key: str) -> Response:
        kv.check_key(key)
        if int(request.META.get("CONTENT_LENGTH") or 0) > settings.BATON_API_MAX_UPLOAD_BYTES:
            raise ApiError("the value is too large", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        body = request.data or ""  # an empty body is parsed as no data at all
        if not isinstance(body, str):
            raise exceptions.UnsupportedMediaType(request.content_type)
        typed = kv.parse_value(body)
        # What the database cannot store (a 500 otherwise), PostgreSQL even where SQLite would.
        if has_nul(typed.value):
            raise ApiError("the value must not contain NUL characters", status.HTTP_422_UNPROCESSABLE_ENTITY)
        if has_non_finite(typed.value):
            raise ApiError("a number of the value is out of range", status.HTTP_422_UNPROCESSABLE_ENTITY)
        raw_ttl = request.headers.get("ttl")
        try:
            ttl = parse_duration(raw_ttl) if raw_ttl else None
        except ValueError as error:
            raise ApiError(
                f"header `ttl`: {error}", status.HTTP_422_UNPROCESSABLE_ENTITY, path="ttl"
            ) from error
        entry = kv.set_value(
            tenant,
            namespace,
            key,
            typed.value,
            value_type=typed.type,
            ttl=ttl,
            description=request.headers.get("description"),
        )
        return Response(_kv_entry_dict(entry))

    @extend_schema(
        operation_id="deleteKeyValue",
        summary="Delete a key; answers whether it existed",
        tags=_KV_TAGS,
        responses={200: OpenApiTypes.BOOL, **errors(422)},
    )
    def delete(self, request: Request, tenant: str, namespace: str, key: str) -> Response:
        kv.check_key(key)
        return Response(kv.delete_value(tenant, namespace, key))


# -- secrets


def _secret_dict(meta: secrets.SecretMeta) -> dict[str, Any]:
    return {"key": meta.key, "description": meta.description or None, "tags": meta.tags}


def _json_object(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApiError("send a JSON object", status.HTTP_422_UNPROCESSABLE_ENTITY)
    return request.data


class Secrets(NamespaceView):
    """GET: the namespace's secrets, keys and descriptions only (`q`, paging); PUT: create or
    replace one (`{key, value, description?, tags?}`)."""

    parser_classes = [StrictJsonParser]

    @extend_schema(
        operation_id="listNamespaceSecrets",
        summary="The namespace's secrets: keys, descriptions and tags, never values",
        tags=_SECRET_TAGS,
        parameters=[
            query("q", "text in the key"),
            query("filters[q][EQUALS]", "as `q`"),
            sort("key"),
            *PAGING,
        ],
        responses={200: SecretsPageShape, **errors(422)},
    )
    def get(self, request: Request, tenant: str, namespace: str) -> Response:
        metas = secrets.secrets_of(tenant, namespace)
        text = (request.query_params.get("q") or request.query_params.get("filters[q][EQUALS]") or "").lower()
        if text:
            metas = [meta for meta in metas if text in meta.key.lower()]
        if query_sort(request, {"key": "key"}, ["key"]) == ["-key"]:
            metas.reverse()
        page = paged(request, metas, _secret_dict)
        return Response({"readOnly": False, **page.data})

    @extend_schema(
        operation_id="createSecret",
        summary="Create or replace a secret",
        tags=_SECRET_TAGS,
        request=SecretWriteShape,
        responses={200: SecretShape(many=True), **errors(422)},
    )
    def put(self, request: Request, tenant: str, namespace: str) -> Response:
        body = _json_object(request)
        meta = secrets.put_secret(
            tenant, namespace, body.get("key"), body.get("value"), body.get("description"), body.get("tags")
        )
        return Response([_secret_dict(meta)])


class SecretDetail(NamespaceView):
    """PATCH: change a secret's description, tags or value; DELETE: delete it."""

    parser_classes = [StrictJsonParser]

    @extend_schema(
        operation_id="patchSecret",
        summary="Change a secret's value, description or tags",
        tags=_SECRET_TAGS,
        request=SecretPatchShape,
        responses={200: SecretShape(many=True), **errors(422)},
    )
    def patch(self, request: Request, tenant: str, namespace: str, key: str) -> Response:
        body = _json_object(request)
        meta = secrets.patch_secret(
            tenant,
            namespace,
            key,
            value=body.get("value"),
            description=body.get("description"),
            tags=body.get("tags"),
        )
        return Response([_secret_dict(meta)])

    @extend_schema(
        operation_id="deleteSecret",
        summary="Delete a secret; answers its key",
        tags=_SECRET_TAGS,
        responses={200: STRINGS, **errors(422)},
    )
    def delete(self, request: Request, tenant: str, namespace: str, key: str) -> Response:
        secrets.delete_secret(tenant, namespace, key)
        return Response([key])


class InheritedSecrets(NamespaceView):
    """`{namespace: [keys]}` for the namespace and each parent the user may see."""

    @extend_schema(
        operation_id="getInheritedSecrets",
        summary="The secret keys of the namespace and of each parent namespace, by namespace",
        tags=_SECRET_TAGS,
        responses={
            200: {"type": "object", "additionalProperties": STRINGS},
            **errors(422),
        },
    )
    def get(self, request: Request, tenant: str, namespace: str) -> Response:
        keys = secrets.inherited_keys(tenant, namespace)
        return Response({name: names for name, names in keys.items() if self.access.sees(name)})


urlpatterns = [
    # literal segments before captures: `search` is no namespace, `inheritance` no key
    path(f"{T}/namespaces/search", NamespaceSearch.as_view()),
    path(NS, NamespaceDetail.as_view()),
    path(f"{NS}/files", NamespaceFiles.as_view()),
    path(f"{NS}/files/directory", NamespaceDirectory.as_view()),
    path(f"{NS}/files/stats", NamespaceFileStats.as_view()),
    path(f"{NS}/files/revisions", NamespaceFileRevisions.as_view()),
    path(f"{NS}/files/export", NamespaceFilesExport.as_view()),
    path(f"{NS}/kv", KVList.as_view()),
    path(f"{NS}/kv/inheritance", KVInheritance.as_view()),
    path(f"{NS}/kv/<str:key>", KVDetail.as_view()),
    path(f"{NS}/secrets", Secrets.as_view()),
    path(f"{NS}/secrets/<str:key>", SecretDetail.as_view()),
    path(f"{NS}/inherited-secrets", InheritedSecrets.as_view()),
]
