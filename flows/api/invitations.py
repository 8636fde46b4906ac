"""/api/v1/{tenant}/invitations (the tenant's ADMINs) and /api/v1/invitation/accept/{id} (open: the id
is the secret of the link). The logic lives in `flows.services.invitations`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flows.api.base import TenantView, paged, refuse_nul
from flows.api.errors import ApiError
from flows.api.schema import BatonAutoSchema, errors
from flows.api.shapes import NO_CONTENT, PAGING, paged_shape, query
from flows.models import Invitation, Role
from flows.services import invitations
from flows.services.variables import iso

T = "<str:tenant>"

# The service's field -> the API's (camelCase).
_PATHS = {"tenant": "tenantId"}
_TAGS = ["Invitations"]
_ROLES = list(Role.values)
_STATUSES = [str(status) for status in invitations.Status]


class InvitationShape(serializers.Serializer):
    id = serializers.CharField(help_text="the secret of the accept link")
    tenantId = serializers.CharField()  # noqa: N815
    email = serializers.CharField()
    role = serializers.ChoiceField(_ROLES)
    namespaces = serializers.ListField(
        child=serializers.CharField(), help_text="RESTRICTED: where it may act"
    )
    status = serializers.ChoiceField(_STATUSES)
    invitedBy = serializers.CharField(allow_null=True)  # noqa: N815
    created = serializers.CharField()
    expiresAt = serializers.CharField()  # noqa: N815
    acceptedAt = serializers.CharField(allow_null=True)  # noqa: N815
    acceptedBy = serializers.CharField(allow_null=True)  # noqa: N815
    link = serializers.CharField(help_text="the accept link, to pass on if the email does not arrive")


class InvitationSentShape(InvitationShape):
    emailSent = serializers.BooleanField(help_text="false: the mail server refused it (pass the link on)")  # noqa: N815


class InvitationCreateShape(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(_ROLES, required=False, help_text="VIEWER unless told")
    namespaces = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="required with RESTRICTED, only then"
    )


class InvitationOfferShape(serializers.Serializer):
    tenantId = serializers.CharField()  # noqa: N815
    email = serializers.CharField()
    role = serializers.ChoiceField(_ROLES)
    namespaces = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(_STATUSES)
    expiresAt = serializers.CharField()  # noqa: N815


class AccountShape(serializers.Serializer):
    """Without credentials on the request: the new account. With them: nothing (that user accepts)."""

    username = serializers.CharField(required=False)
    password = serializers.CharField(required=False, help_text="Django's password validators apply")
    name = serializers.CharField(required=False, help_text="first and last name")


class AcceptedShape(serializers.Serializer):
    username = serializers.CharField()
    created = serializers.BooleanField(help_text="a new user was created")
    tenantId = serializers.CharField()  # noqa: N815
    role = serializers.ChoiceField(_ROLES)
    namespaces = serializers.ListField(child=serializers.CharField())


def _base_url(request: Request) -> str:
    return request.build_absolute_uri("/")


def invitation_dict(invitation: Invitation, base_url: str) -> dict[str, Any]:
    return {
        "id": invitation.pk,
        "tenantId": invitation.tenant_id,
        "email": invitation.email,
        "role": invitation.role,
        "namespaces": list(invitation.namespaces or []),
        "status": str(invitations.status_of(invitation)),
        "invitedBy": invitation.invited_by.get_username() if invitation.invited_by else None,
        "created": iso(invitation.created),
        "expiresAt": iso(invitation.expires_at),
        "acceptedAt": iso(invitation.accepted_at),
        "acceptedBy": invitation.accepted_by.get_username() if invitation.accepted_by else None,
        "link": invitations.invitation_link(invitation, base_url),
    }


def _refused(error: invitations.InvalidInvitation) -> ApiError:
    path = _PATHS.get(error.field, error.field)
    return ApiError(f"{path}: {error.message}", status.HTTP_422_UNPROCESSABLE_ENTITY, path=path)


def _body(request: Request, fields: tuple[str, ...]) -> dict[str, Any]:
    body = request.data
    if not isinstance(body, dict):
        raise ApiError("send a JSON object", status.HTTP_422_UNPROCESSABLE_ENTITY)
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(
            f"{unknown[0]}: unknown field; one of: {', '.join(fields)}",
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            path=unknown[0],
        )
    for name in fields:
        if name in body and name != "namespaces" and not isinstance(body[name], str):
            raise ApiError(
                f"{name}: must be a string, got `{body[name]}`",
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                path=name,
            )
    return body


def _related(invitations_query: Any) -> Any:
    return invitations_query.select_related("invited_by", "accepted_by")


class Invitations(TenantView):
    admin_only = True

    @extend_schema(
        operation_id="createInvitation",
        summary="Invite an email address with a role (the email carries the accept link)",
        tags=_TAGS,
        request=InvitationCreateShape,
        responses={201: InvitationSentShape, **errors(422)},
    )
    def post(self, request: Request, tenant: str) -> Response:
        body = _body(request, ("email", "role", "namespaces"))
        try:
            invitation = invitations.create_invitation(
                tenant=tenant,
                email=body.get("email", ""),
                role=body.get("role", "VIEWER"),
                namespaces=body.get("namespaces", []),
                invited_by=request.user,
            )
        except invitations.InvalidInvitation as error:
            raise _refused(error) from None
        answer = invitation_dict(invitation, _base_url(request))
        answer["emailSent"] = invitations.send_invitation(invitation, answer["link"])
        return Response(answer, status=status.HTTP_201_CREATED)


class InvitationSearch(TenantView):
    admin_only = True

    @extend_schema(
        operation_id="searchInvitations",
        summary="Search the tenant's invitations, newest first",
        tags=_TAGS,
        parameters=[
            query("status", "", enum=_STATUSES),
            query("email", "this address (any case)"),
            query("role", "", enum=_ROLES),
            query("q", "text in the address"),
            *PAGING,
        ],
        responses={200: paged_shape("PagedInvitations", InvitationShape(many=True))},
    )
    def get(self, request: Request, tenant: str) -> Response:
        rows = _related(Invitation.objects.filter(tenant_id=tenant)).order_by("-created", "id")
        params = request.query_params
        if params.get("status"):
            try:
                wanted = invitations.Status(params["status"].upper())
            except ValueError:
                raise ApiError(
                    f"`status` must be one of {', '.join(invitations.Status)}, got `{params['status']}`",
                    path="status",
                ) from None
            rows = rows.filter(invitations.with_status(wanted))
        if params.get("email"):
            rows = rows.filter(email__iexact=params["email"])
        if params.get("role"):
            rows = rows.filter(role=params["role"].upper())
        if params.get("q"):
            rows = rows.filter(email__icontains=params["q"])
        base_url = _base_url(request)
        return paged(request, rows, lambda invitation: invitation_dict(invitation, base_url))


class InvitationDetail(TenantView):
    admin_only = True

    def _invitation(self, tenant: str, invitation_id: str) -> Invitation:
        invitation = _related(Invitation.objects.filter(tenant_id=tenant, pk=invitation_id)).first()
        if invitation is None:
            raise exceptions.NotFound("invitation not found")
        return invitation

    @extend_schema(
        operation_id="getInvitation", summary="An invitation", tags=_TAGS, responses={200: InvitationShape}
    )
    def get(self, request: Request, tenant: str, invitation_id: str) -> Response:
        return Response(invitation_dict(self._invitation(tenant, invitation_id), _base_url(request)))

    @extend_schema(
        operation_id="deleteInvitation",
        summary="Withdraw an invitation (a role it gave stays)",
        tags=_TAGS,
        responses={**NO_CONTENT},
    )
    def delete(self, request: Request, tenant: str, invitation_id: str) -> Response:
        invitations.delete_invitation(self._invitation(tenant, invitation_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationAccept(APIView):
    """Open to anonymous callers: whoever holds the link may see what it offers (GET) and accept it
    (POST), with a new account in the body or as the user the request authenticates."""

    permission_classes = [AllowAny]
    schema = BatonAutoSchema()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        refuse_nul(request, kwargs)

    @extend_schema(
        operation_id="getInvitationOffer",
        summary="What an invitation link offers (no credentials needed)",
        tags=_TAGS,
        responses={200: InvitationOfferShape},
    )
    def get(self, request: Request, invitation_id: str) -> Response:
        invitation = Invitation.objects.filter(pk=invitation_id).first()
        if invitation is None:
            raise exceptions.NotFound("invitation not found (or withdrawn)")
        return Response(
            {
                "tenantId": invitation.tenant_id,
                "email": invitation.email,
                "role": invitation.role,
                "namespaces": list(invitation.namespaces or []),
                "status": str(invitations.status_of(invitation)),
                "expiresAt": iso(invitation.expires_at),
            }
        )

    @extend_schema(
        operation_id="acceptInvitation",
        summary="Accept an invitation, as a new user (body) or as the signed-in user",
        tags=_TAGS,
        request=AccountShape,
        responses={201: AcceptedShape, 200: AcceptedShape, **errors(409, 410, 422)},
    )
    def post(self, request: Request, invitation_id: str) -> Response:
        user = request.user if isinstance(request.user, User) and request.user.is_authenticated else None
        # A signed-in caller takes the invitation for its own account: a body is not needed then.
        body = _body(request, ("username", "password", "name")) if user is None else {}
        try:
            invitation, accepted_by, created = invitations.accept_invitation(
                invitation_id,
                user=user,
                username=body.get("username", ""),
                password=body.get("password", ""),
                name=body.get("name", ""),
            )
        except invitations.InvalidInvitation as error:
            raise _refused(error) from None
        return Response(
            {
                "username": accepted_by.get_username(),
                "created": created,
                "tenantId": invitation.tenant_id,
                "role": invitation.role,
                "namespaces": list(invitation.namespaces or []),
            },
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


urlpatterns = [
    path(f"{T}/invitations", Invitations.as_view()),
    path(f"{T}/invitations/search", InvitationSearch.as_view()),
    path(f"{T}/invitations/<str:invitation_id>", InvitationDetail.as_view()),
    path("invitation/accept/<str:invitation_id>", InvitationAccept.as_view(), name="invitation-accept"),
]
