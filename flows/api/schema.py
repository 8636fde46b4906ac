"""How the OpenAPI schema (drf-spectacular) describes Baton: authentication, Kestra's error shape,
and the error answers every operation shares. The answers of each view are in `flows.api.shapes`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "flows.api.auth.TokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer"}


class BasicScheme(OpenApiAuthenticationExtension):
    target_class = "flows.api.auth.BasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "basic"}


class ErrorDetailShape(serializers.Serializer):
    message = serializers.CharField()
    path = serializers.CharField(required=False)
    line = serializers.IntegerField(required=False, allow_null=True)
    column = serializers.IntegerField(required=False, allow_null=True)


# flows.api.errors.error_body: `{"message", "_embedded": {"errors": [{"message", "path"?}]}}`
ERROR = inline_serializer(
    "Error",
    {
        "message": serializers.CharField(),
        "_embedded": inline_serializer("ErrorEmbedded", {"errors": ErrorDetailShape(many=True)}),
    },
)

_ERROR_DESCRIPTIONS = {
    400: "Bad request: a malformed parameter or body",
    401: "No or wrong credentials",
    403: "The user may not do this",
    404: "Not found (or not visible to this user)",
    409: "Conflict with the current state",
    410: "Gone: the value has expired",
    413: "The body is too large",
    415: "Unsupported media type of the body",
    422: "Unprocessable: the body or a parameter is invalid",
}
# What any operation can answer (422: a NUL character in the path or query, flows.api.base.refuse_nul);
# BatonAutoSchema adds them, and 415 where there is a body.
COMMON_ERRORS = (400, 401, 403, 404, 422)


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """`@extend_schema(responses=...)` entries for these error statuses, in Kestra's error shape."""
    return {code: OpenApiResponse(ERROR, description=_ERROR_DESCRIPTIONS[code]) for code in codes}


class BatonAutoSchema(AutoSchema):
    """Adds the error answers any operation can give to those its `@extend_schema` declares: a
    bad or unprocessable parameter, no credentials, no rights, not found; and with a body, an
    unsupported media type."""

    def get_serializer_name(self, serializer: Any, direction: Any) -> str:
        # `flows.api.shapes.FlowShape` is the component `Flow`, as Kestra names it.
        name = super().get_serializer_name(serializer, direction)
        return name.removesuffix("Shape") or name

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        codes = list(COMMON_ERRORS) + ([415] if self._get_request_body() is not None else [])
        for code, response in errors(*codes).items():
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(response, str(code), direction=direction)
        return dict(sorted(responses.items()))


class DeleteWithBodySchema(BatonAutoSchema):
    """For a view whose DELETE takes a body (Kestra's bulk deletes), which drf-spectacular only
    describes for POST, PUT and PATCH."""

    def _get_request_body(self, direction: Any = "request") -> Any:
        if self.method != "DELETE":
            return super()._get_request_body(direction)
        self.method = "POST"
        try:
            body = super()._get_request_body(direction)
        finally:
            self.method = "DELETE"
        if body is not None:
            body["required"] = True
        return body
