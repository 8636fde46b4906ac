"""Routes of the REST API (shared API.md). Literal segments come before `{namespace}` captures."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from flows.api import executions, flows, instance, logs, schema  # noqa: F401 (schema registers extensions)

T = "<str:tenant>"

urlpatterns = [
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # instance administration (before `{tenant}/...`: `tenants` is not a tenant)
    path("tenants", instance.Tenants.as_view()),
    path("tenants/search", instance.TenantSearch.as_view()),
    path("tenants/<str:tenant_id>", instance.TenantDetail.as_view()),
    path("", include("flows.api.killswitches")),
    path("", include("flows.api.banners")),
    path("", include("flows.api.invitations")),  # also /invitation/accept/{id}, open to anonymous
    path("", include("flows.api.webhooks")),  # /{tenant}/executions/webhook/...: its key is the secret
    # flows
    path(f"{T}/flows", flows.FlowCreate.as_view()),
    path(f"{T}/flows/search", flows.FlowSearch.as_view()),
    path(f"{T}/flows/validate", flows.FlowValidate.as_view()),
    path(f"{T}/flows/distinct-namespaces", flows.DistinctNamespaces.as_view()),
    path(f"{T}/flows/<str:namespace>", flows.NamespaceFlows.as_view()),
    path(f"{T}/flows/<str:namespace>/<str:flow_id>", flows.FlowDetail.as_view()),
    path(f"{T}/flows/<str:namespace>/<str:flow_id>/revisions", flows.FlowRevisions.as_view()),
    path(f"{T}/flows/<str:namespace>/<str:flow_id>/graph", flows.FlowGraph.as_view()),
    # executions
    path(f"{T}/executions/search", executions.ExecutionSearch.as_view()),
    *[
        path(
            f"{T}/executions/{action}/{selection}",
            executions.ExecutionBulk.as_view(action=action, by_query=selection == "by-query"),
        )
        for action in ("kill", "restart", "resume", "replay")
        for selection in ("by-ids", "by-query")
    ],
    path(f"{T}/executions/<str:execution_id>", executions.ExecutionDetail.as_view()),
    path(f"{T}/executions/<str:execution_id>/file", executions.ExecutionFile.as_view()),
    path(f"{T}/executions/<str:execution_id>/follow", executions.ExecutionFollow.as_view()),
    path(f"{T}/executions/<str:execution_id>/actions/eval", executions.ExecutionEval.as_view()),
    path(f"{T}/executions/<str:execution_id>/actions/kill", executions.ExecutionKill.as_view()),
    path(f"{T}/executions/<str:execution_id>/actions/pause", executions.ExecutionPause.as_view()),
    path(f"{T}/executions/<str:execution_id>/actions/resume", executions.ExecutionResume.as_view()),
    path(f"{T}/executions/<str:execution_id>/actions/restart", executions.ExecutionRestart.as_view()),
    path(f"{T}/executions/<str:execution_id>/actions/replay", executions.ExecutionReplay.as_view()),
    path(
        f"{T}/executions/<str:execution_id>/actions/change-status", executions.ExecutionChangeStatus.as_view()
    ),
    path(f"{T}/executions/<str:namespace>/<str:flow_id>", executions.ExecutionStart.as_view()),
    # logs
    path(f"{T}/logs/search", logs.LogSearch.as_view()),
    path(f"{T}/logs/<str:execution_id>", logs.ExecutionLogs.as_view()),
    path(f"{T}/logs/<str:execution_id>/download", logs.ExecutionLogsDownload.as_view()),
    path(f"{T}/logs/<str:execution_id>/follow", logs.ExecutionLogsFollow.as_view()),
    # namespaces, namespace files, KV, secrets
    path("", include("flows.api.namespaces")),
    path("", include("flows.api.credentials")),
    path("", include("flows.api.assets")),
    path("", include("flows.api.triggers")),
]
