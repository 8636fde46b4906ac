"""/api/v1/banners: announcements of the instance. Superusers write and search them; any signed-in
user reads the ones shown now (`GET /api/v1/banners/active`), which clients display."""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flows.api.base import body_datetime, field_error, paged, query_bool, query_choice
from flows.api.errors import ApiError
from flows.api.instance import InstanceAdminView
from flows.api.schema import BatonAutoSchema, errors
from flows.api.shapes import NO_CONTENT, PAGING, boolean, paged_shape, query
from flows.models import Banner
from flows.services import banners
from flows.services.variables import iso

# API field (camelCase) -> the service's field.
_FIELDS = {
    "message": "message",
    "type": "type",
    "startDate": "start_date",
    "endDate": "end_date",
    "active": "active",
}
_PATHS = {field: name for name, field in _FIELDS.items()}
# What a client may send back from a GET (a PUT of the object it read): ignored.
_READ_ONLY = {"id", "created", "updated", "shown"}


_TAGS = ["Banners"]
_TYPES = list(Banner.Type.values)


class BannerShape(serializers.Serializer):
    """A banner, read and written (one shape, so that its `type` enum gets its own name).

    POST: `message` is required, `type` defaults to INFO, `startDate` to now, `active` to true.
    PUT: the fields sent are changed, the others kept."""

    id = serializers.CharField(read_only=True)
    message = serializers.CharField(required=False, help_text="plain text (clients escape it)")
    type = serializers.ChoiceField(_TYPES, required=False)
    startDate = serializers.DateTimeField(required=False, allow_null=True)  # noqa: N815
    endDate = serializers.DateTimeField(required=False, allow_null=True)  # noqa: N815
    active = serializers.BooleanField(required=False, help_text="switched on (shown between its dates)")
    shown = serializers.BooleanField(read_only=True, help_text="active, and now between its dates")
    created = serializers.CharField(read_only=True)
    updated = serializers.CharField(read_only=True)


def banner_dict(banner: Banner) -> dict[str, Any]:
    return {
        "id": banner.pk,
        "message": banner.message,
        "type": str(banner.type),
        "startDate": iso(banner.start_date),
        "endDate": iso(banner.end_date),
        "active": banner.active,
        "shown": banners.is_banner_shown(banner),  # active, and now between its dates
        "created": iso(banner.created),
        "updated": iso(banner.updated),
    }


def _changes(request: Request) -> dict[str, Any]:
    """The body's fields as the service's keyword arguments, each type-checked (422 with its path)."""
    body = request.data
    if not isinstance(body, dict):
        raise ApiError("send a JSON object", status.HTTP_422_UNPROCESSABLE_ENTITY)
    unknown = sorted(set(body) - set(_FIELDS) - _READ_ONLY)
    if unknown:
        raise field_error(unknown[0], f"unknown field; one of: {', '.join(_FIELDS)}")
    changes: dict[str, Any] = {}
    for name in ("message", "type"):
        if name in body:
            if not isinstance(body[name], str):
                raise field_error(name, f"must be a string, got `{body[name]}`")
            if "\x00" in body[name]:
                raise field_error(name, "must not contain a NUL character")
            changes[name] = body[name]
    for name in ("startDate", "endDate"):
        if name in body:
            changes[_FIELDS[name]] = body_datetime(body[name], name)
    if "active" in body:
        if not isinstance(body["active"], bool):
            raise field_error("active", f"must be true or false, got `{body['active']}`")
        changes["active"] = body["active"]
    return changes


def _refused(error: banners.InvalidBanner) -> ApiError:
    return field_error(_PATHS.get(error.field, error.field), error.message)


class Banners(InstanceAdminView):
    @extend_schema(
        operation_id="createBanner",
        summary="Create a banner",
        tags=_TAGS,
        request=BannerShape,
        responses={201: BannerShape, **errors(422)},
    )
    def post(self, request: Request) -> Response:
        fields = {"message": "", **_changes(request)}
        try:
            banner = banners.create_banner(**fields)
        except banners.InvalidBanner as error:
            raise _refused(error) from None
        return Response(banner_dict(banner), status=status.HTTP_201_CREATED)


class BannerSearch(InstanceAdminView):
    @extend_schema(
        operation_id="searchBanners",
        summary="Search banners, the latest start first",
        tags=_TAGS,
        parameters=[
            query("type", "", enum=_TYPES),
            boolean("shown", "true: shown now; false: the others"),
            query("q", "text in the message"),
            *PAGING,
        ],
        responses={200: paged_shape("PagedBanners", BannerShape(many=True))},
    )
    def get(self, request: Request) -> Response:
        rows = Banner.objects.order_by("-start_date", "id")
        params = request.query_params
        kind = query_choice(request, "type", Banner.Type.values)
        if kind:
            rows = rows.filter(type=kind)
        if params.get("shown"):
            shown = banners.shown_now()
            rows = rows.filter(shown) if query_bool(request, "shown") else rows.exclude(shown)
        if params.get("q"):
            rows = rows.filter(message__icontains=params["q"])
        return paged(request, rows, banner_dict)


class ActiveBanners(APIView):
    """The banners to show now, the most severe first: for every signed-in user."""

    schema = BatonAutoSchema()

    @extend_schema(
        operation_id="activeBanners",
        summary="The banners to show now (active, between their dates), the most severe first",
        tags=_TAGS,
        responses={200: BannerShape(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response([banner_dict(banner) for banner in banners.active_banners()])


class BannerDetail(InstanceAdminView):
    def _banner(self, banner_id: str) -> Banner:
        banner = Banner.objects.filter(pk=banner_id).first()
        if banner is None:
            raise exceptions.NotFound(f"banner `{banner_id}` not found")
        return banner

    @extend_schema(operation_id="getBanner", summary="A banner", tags=_TAGS, responses={200: BannerShape})
    def get(self, request: Request, banner_id: str) -> Response:
        return Response(banner_dict(self._banner(banner_id)))

    @extend_schema(
        operation_id="updateBanner",
        summary="Change a banner (the fields sent)",
        tags=_TAGS,
        request=BannerShape,
        responses={200: BannerShape, **errors(422)},
    )
    def put(self, request: Request, banner_id: str) -> Response:
        banner = self._banner(banner_id)
        try:
            banners.update_banner(banner, **_changes(request))
        except banners.InvalidBanner as error:
            raise _refused(error) from None
        return Response(banner_dict(banner))

    @extend_schema(
        operation_id="deleteBanner", summary="Delete a banner", tags=_TAGS, responses={**NO_CONTENT}
    )
    def delete(self, request: Request, banner_id: str) -> Response:
        banners.delete_banner(self._banner(banner_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("banners", Banners.as_view()),
    path("banners/search", BannerSearch.as_view()),
    path("banners/active", ActiveBanners.as_view()),
    path("banners/<str:banner_id>", BannerDetail.as_view()),
]
