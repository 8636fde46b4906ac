"""/api/v1/{tenant}/executions/webhook/{namespace}/{flowId}/{key}: start a flow from an HTTP call.

No login: the key in the path is the secret (`flows.services.webhooks`). Answers 200 with the
execution (or only its outputs with `returnOutputs`), 204 when the trigger's conditions do not hold,
404 for an unknown flow, key or tenant, 422 when the trigger's inputs or conditions cannot render.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flows.api.executions import wait_terminal
from flows.models import Execution
from flows.serializers import execution_dict
from flows.services.webhooks import WebhookCall, fire_webhook


class Webhook(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []  # the body is read raw: JSON, forms, text or bytes

    @extend_schema(operation_id="webhookTrigger", request=None, responses={200: dict, 204: None, 404: dict})
    def post(self, request: Request, tenant: str, namespace: str, flow_id: str, key: str) -> Response:
        call = WebhookCall.parse(
            request.body,
            request.content_type or "",
            request.headers,
            {name: request.query_params.getlist(name) for name in request.query_params},
        )
        fired = fire_webhook(tenant, namespace, flow_id, key, call)
        if fired.execution is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        if fired.wait:
            wait_terminal(fired.execution.id)
        execution = Execution.objects.get(pk=fired.execution.id)
        if fired.wait and fired.return_outputs:
            return Response(execution_dict(execution, runs=[]).get("outputs") or {})
        return Response(execution_dict(execution, runs=[]))

    get = post
    put = post


urlpatterns = [
    path("<str:tenant>/executions/webhook/<str:namespace>/<str:flow_id>/<str:key>", Webhook.as_view()),
]
