"""/api/v1/{tenant}/credentials: server-to-server credentials for `credential()`. Any role reads their
settings; only the tenant's admins create, change or delete them. Secret settings (`clientSecret`,
`privateKey`, `hmacSecret`) are write-only and no answer carries a token."""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from flows.api.base import StrictJsonParser, TenantView, paged, query_sort
from flows.api.errors import ApiError
from flows.services import credentials
from flows.services.variables import iso

T = "<str:tenant>"

_SORTS = {"name": "name", "type": "type", "created": "created", "updated": "updated"}


def credential_dict(info: credentials.CredentialInfo) -> dict[str, Any]:
    return {
        "id": info.name,
        "name": info.name,
        "description": info.description or None,
        "type": info.type,
        **info.config,
        "storedSecrets": list(info.stored_secrets),
        "created": iso(info.created),
        "updated": iso(info.updated),
        "tokenExpiresAt": iso(info.token_expires_at),
    }


def _json_object(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApiError("send a JSON object", status.HTTP_422_UNPROCESSABLE_ENTITY)
    return request.data


class CredentialView(TenantView):
    """Reads need any role in the tenant; writes need its ADMIN role."""

    parser_classes = [StrictJsonParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not self.access.is_admin:
            raise exceptions.PermissionDenied("credentials are changed by the tenant's admins")


def _search(request: Request, tenant: str) -> Response:
    text = request.query_params.get("q") or request.query_params.get("filters[q][EQUALS]") or ""
    rows = credentials.search_credentials(tenant, text, query_sort(request, _SORTS, ["name"]))
    return paged(request, rows, lambda row: credential_dict(credentials.describe(row)))


class Credentials(CredentialView):
    """GET: the tenant's credentials (`q`, `sort`, paging); POST: create one."""

    def get(self, request: Request, tenant: str) -> Response:
        return _search(request, tenant)

    def post(self, request: Request, tenant: str) -> Response:
        info = credentials.create_credential(tenant, _json_object(request))
        return Response(credential_dict(info), status=status.HTTP_201_CREATED)


class CredentialSearch(CredentialView):
    def get(self, request: Request, tenant: str) -> Response:
        return _search(request, tenant)


class CredentialDetail(CredentialView):
    """GET: one credential's settings; PUT: replace them (an omitted secret setting keeps its
    stored value); DELETE: delete it."""

    def get(self, request: Request, tenant: str, name: str) -> Response:
        return Response(credential_dict(credentials.get_credential(tenant, name)))

    def put(self, request: Request, tenant: str, name: str) -> Response:
        return Response(credential_dict(credentials.update_credential(tenant, name, _json_object(request))))

    def delete(self, request: Request, tenant: str, name: str) -> Response:
        credentials.delete_credential(tenant, name)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CredentialTest(TenantView):
    """POST: fetch a token now and say whether it worked (and the token endpoint's error if not);
    the token itself is never answered. Editors may test: they can use the credential in flows."""

    def post(self, request: Request, tenant: str, name: str) -> Response:
        try:
            token = credentials.fetch_new_token(tenant, name)
        except credentials.CredentialUnavailable as error:
            return Response(
                {
                    "success": False,
                    "message": str(error),
                    "error": error.error,
                    "errorDescription": error.error_description,
                }
            )
        return Response(
            {
                "success": True,
                "tokenType": token.token_type,
                "expiresIn": token.expires_in,
                "expiresAt": iso(token.expires_at),
                "scope": token.scope,
            }
        )


urlpatterns = [
    path(f"{T}/credentials", Credentials.as_view()),
    path(f"{T}/credentials/search", CredentialSearch.as_view()),  # before the `{id}` capture
    path(f"{T}/credentials/<str:name>", CredentialDetail.as_view()),
    path(f"{T}/credentials/<str:name>/test", CredentialTest.as_view()),
]
