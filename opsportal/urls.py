from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from apps.alerts import api as alerts_api
from apps.alerts import views as alerts_views
from apps.audit import api as audit_api
from apps.core import admin_views
from apps.tenancy import api as tenancy_api
from opsportal import errors, health

api_v1 = [
    path("tenancy/me", tenancy_api.WhoAmIView.as_view(), name="whoami"),
    path("tenancy/tenant", tenancy_api.CurrentTenantView.as_view(), name="current-tenant"),
    path("alerts", alerts_api.AlertList.as_view(), name="alerts"),
    path("alerts/dlq/stats", alerts_api.DeadLetterStats.as_view(), name="alerts-dlq-stats"),
    path("alerts/dlq/requeue", alerts_api.RequeueDeadLetters.as_view(), name="alerts-dlq-requeue"),
    path("alerts/<int:pk>", alerts_api.AlertDetail.as_view(), name="alert-detail"),
    path("alerts/<int:pk>/ack", alerts_api.AcknowledgeAlert.as_view(), name="alert-ack"),
    path("alerts/<int:pk>/resolve", alerts_api.ResolveAlert.as_view(), name="alert-resolve"),
    path("audit/events", audit_api.AuditEventList.as_view(), name="audit-events"),
    path("audit/evidence", audit_api.EvidenceList.as_view(), name="evidence-list"),
    path("audit/evidence/<int:pk>", audit_api.EvidenceDetail.as_view(), name="evidence-detail"),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(permission_classes=[AllowAny], authentication_classes=[]),
        name="schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="schema", permission_classes=[AllowAny], authentication_classes=[]
        ),
        name="api-docs",
    ),
    path("alerts/ack/<str:token>", alerts_views.ack_link, name="alert-ack-link"),
    path("admin/switch-tenant/", admin_views.switch_tenant, name="switch-tenant"),
    path("admin/", admin.site.urls),
]

handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.not_found
handler500 = errors.server_error
