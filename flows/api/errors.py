"""Every API error in Kestra's shape: `{"message", "_embedded": {"errors": [{"message", "path"}]}}`."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from flows.errors import BatonError, FlowValidationError

logger = logging.getLogger(__name__)


class ApiError(BatonError):
    """A request the API refuses, with the status to answer."""

    code = "bad_request"
    http_status = 400

    def __init__(self, message: str, http_status: int | None = None, path: str = "") -> None:
        super().__init__(message)
        if http_status is not None:
            self.http_status = http_status
        self.path = path


def error_body(message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"message": message, "_embedded": {"errors": errors or [{"message": message}]}}


def _drf_errors(detail: Any, path: str = "") -> list[dict[str, Any]]:
    """Flatten a DRF validation detail ({field: [messages]}) into Kestra's error list."""
    if isinstance(detail, dict):
        return [error for key, value in detail.items() for error in _drf_errors(value, _join(path, key))]
    if isinstance(detail, list):
        return [error for item in detail for error in _drf_errors(item, path)]
    return [{"message": f"{path}: {detail}" if path else str(detail), "path": path}]


def _join(path: str, key: Any) -> str:
    if key == "non_field_errors":
        return path
    return f"{path}.{key}" if path else str(key)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: Baton and DRF errors as 4xx in Kestra's shape, anything else a 500."""
    headers: dict[str, str] = {}
    if isinstance(exc, FlowValidationError):
        errors = [
            {
                "message": str(violation),
                "path": violation.path,
                **({"line": violation.line, "column": violation.column} if violation.line else {}),
            }
            for violation in exc.violations
        ]
        return Response(error_body(f"Invalid flow: {exc}", errors), status=exc.http_status)
    if isinstance(exc, BatonError) and 400 <= exc.http_status < 500:
        path = getattr(exc, "path", "")
        return Response(
            error_body(str(exc), [{"message": str(exc), **({"path": path} if path else {})}]),
            status=exc.http_status,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "not found")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, exceptions.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if isinstance(exc, exceptions.ValidationError):
            errors = _drf_errors(exc.detail)
            message = "; ".join(error["message"] for error in errors)
            return Response(error_body(message, errors), status=exc.status_code, headers=headers)
        message = str(exc.detail)
        if isinstance(exc, exceptions.UnsupportedMediaType) and context.get("view") is not None:
            accepted = ", ".join(parser.media_type for parser in context["view"].parser_classes)
            message = f"{message} This endpoint accepts: {accepted}."
        return Response(error_body(message), status=exc.status_code, headers=headers)
    logger.exception("API error on %s", context.get("request") and context["request"].path)
    return Response(error_body("internal server error"), status=status.HTTP_500_INTERNAL_SERVER_ERROR)
