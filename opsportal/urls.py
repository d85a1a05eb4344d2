from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from apps.alerts import api as alerts_api
from apps.alerts import views as alerts_views
from apps.audit import api as audit_api
from apps.compliance import api as compliance_api
from apps.compliance import views as compliance_views
from apps.core import admin_views
from apps.drills import api as drills_api
from apps.flags import api as flags_api
from apps.flags import events as flag_events
from apps.flags import ofrep
from apps.overrides import api as overrides_api
from apps.privacy import api as privacy_api
from apps.privacy import views as privacy_views
from apps.slo import api as slo_api
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
    path("compliance/runs", compliance_api.RunIngest.as_view(), name="compliance-runs"),
    path("compliance/gate", compliance_api.Gate.as_view(), name="compliance-gate"),
    path("compliance/rules", compliance_api.RuleList.as_view(), name="compliance-rules"),
    path(
        "compliance/rules/<str:rule_id>",
        compliance_api.RuleDetail.as_view(),
        name="compliance-rule-detail",
    ),
    path(
        "compliance/violations",
        compliance_api.ViolationList.as_view(),
        name="compliance-violations",
    ),
    path("compliance/trends", compliance_api.Trends.as_view(), name="compliance-trends"),
    path("compliance/export", compliance_api.Export.as_view(), name="compliance-export"),
    path("overrides", overrides_api.OverrideList.as_view(), name="overrides"),
    path("overrides/<int:pk>", overrides_api.OverrideDetail.as_view(), name="override-detail"),
    path(
        "overrides/<int:pk>/approve",
        overrides_api.ApproveOverride.as_view(),
        name="override-approve",
    ),
    path(
        "overrides/<int:pk>/reject", overrides_api.RejectOverride.as_view(), name="override-reject"
    ),
    path(
        "overrides/<int:pk>/revoke", overrides_api.RevokeOverride.as_view(), name="override-revoke"
    ),
    path("slo/events", slo_api.Events.as_view(), name="slo-events"),
    path("slo/services", slo_api.ServiceList.as_view(), name="slo-services"),
    path("slo/slos", slo_api.SLOList.as_view(), name="slo-slos"),
    path("slo/slos/<slug:name>", slo_api.SLODetail.as_view(), name="slo-detail"),
    path("slo/openslo", slo_api.OpenSLOView.as_view(), name="slo-openslo"),
    path("drills", drills_api.DrillList.as_view(), name="drills"),
    path("drills/<int:pk>", drills_api.DrillDetail.as_view(), name="drill-detail"),
    path("drills/<int:pk>/runs", drills_api.DrillRuns.as_view(), name="drill-runs"),
    path("drills/runs/<int:pk>", drills_api.DrillRunDetail.as_view(), name="drill-run-detail"),
    path(
        "drills/runs/<int:pk>/cancel", drills_api.DrillRunCancel.as_view(), name="drill-run-cancel"
    ),
    path("privacy/requests", privacy_api.Requests.as_view(), name="privacy-requests"),
    path("privacy/consents", privacy_api.Consents.as_view(), name="privacy-consents"),
    path(
        "privacy/consents/export",
        privacy_api.ConsentExport.as_view(),
        name="privacy-consents-export",
    ),
    path(
        "privacy/activities",
        privacy_api.ProcessingActivities.as_view(),
        name="privacy-activities",
    ),
    path(
        "privacy/requests/<int:pk>",
        privacy_api.RequestDetail.as_view(),
        name="privacy-request-detail",
    ),
    path(
        "privacy/requests/<int:pk>/transition",
        privacy_api.RequestTransition.as_view(),
        name="privacy-request-transition",
    ),
    path(
        "privacy/requests/<int:pk>/extend",
        privacy_api.RequestExtend.as_view(),
        name="privacy-request-extend",
    ),
    path(
        "privacy/requests/<int:pk>/package",
        privacy_api.RequestPackage.as_view(),
        name="privacy-request-package",
    ),
    path(
        "privacy/requests/<int:pk>/verification",
        privacy_api.RequestVerification.as_view(),
        name="privacy-request-verification",
    ),
    path(
        "privacy/requests/<int:pk>/preview",
        privacy_api.RequestPreview.as_view(),
        name="privacy-request-preview",
    ),
    path("privacy/sources", privacy_api.DataMap.as_view(), name="privacy-sources"),
    path("privacy/sources/databases", privacy_api.Databases.as_view(), name="privacy-databases"),
    path("privacy/sources/tables", privacy_api.Tables.as_view(), name="privacy-tables"),
    path("privacy/sources/connectors", privacy_api.Connectors.as_view(), name="privacy-connectors"),
    path(
        "privacy/subjects/<str:subject>/restrictions",
        privacy_api.SubjectRestrictions.as_view(),
        name="privacy-subject-restrictions",
    ),
    path(
        "privacy/subjects/<str:subject>/restrictions/<int:pk>/lift",
        privacy_api.LiftRestriction.as_view(),
        name="privacy-restriction-lift",
    ),
    path(
        "privacy/connectors/callback/<str:token>",
        privacy_api.ConnectorCallback.as_view(),
        name="privacy-connector-callback",
    ),
    path("releases", slo_api.Releases.as_view(), name="releases"),
    path("releases/<int:pk>/verdict", slo_api.ReleaseVerdict.as_view(), name="release-verdict"),
    path("releases/<int:pk>/close", slo_api.ReleaseClose.as_view(), name="release-close"),
    path("flags", flags_api.FlagList.as_view(), name="flags"),
    path("flags/flagd/<slug:environment>.json", ofrep.flagd_sync, name="flags-flagd-sync"),
    path("flags/stale", flags_api.StaleFlags.as_view(), name="flags-stale"),
    path("flags/import", flags_api.ImportFlagd.as_view(), name="flags-import"),
    path("flags/rollouts", flags_api.RolloutList.as_view(), name="flag-rollouts"),
    path("flags/rollouts/signal", flags_api.RolloutSignal.as_view(), name="flag-rollout-signal"),
    path(
        "flags/rollouts/<int:pk>/<str:action>",
        flags_api.RolloutAction.as_view(),
        name="flag-rollout-action",
    ),
    path("flags/changes", flags_api.ChangeList.as_view(), name="flag-changes"),
    path(
        "flags/changes/<int:pk>/approve",
        flags_api.ApproveChange.as_view(),
        name="flag-change-approve",
    ),
    path(
        "flags/changes/<int:pk>/reject", flags_api.RejectChange.as_view(), name="flag-change-reject"
    ),
    path(
        "flags/changes/<int:pk>/cancel", flags_api.CancelChange.as_view(), name="flag-change-cancel"
    ),
    path("flags/segments", flags_api.SegmentList.as_view(), name="flag-segments"),
    path("flags/segments/<str:key>", flags_api.SegmentDetail.as_view(), name="flag-segment-detail"),
    path("flags/<str:key>", flags_api.FlagDetail.as_view(), name="flag-detail"),
    path(
        "flags/<str:key>/environments/<slug:environment>",
        flags_api.FlagStateDetail.as_view(),
        name="flag-state",
    ),
    path("flags/<str:key>/kill", flags_api.KillFlag.as_view(), name="flag-kill"),
    path(
        "flags/<str:key>/environments/<slug:environment>/rollout",
        flags_api.StartRollout.as_view(),
        name="flag-rollout-start",
    ),
    path("audit/events", audit_api.AuditEventList.as_view(), name="audit-events"),
    path("audit/evidence", audit_api.EvidenceList.as_view(), name="evidence-list"),
    path("audit/evidence/<int:pk>", audit_api.EvidenceDetail.as_view(), name="evidence-detail"),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("ofrep/v1/events", flag_events.event_stream, name="ofrep-events"),
    path("ofrep/v1/evaluate/flags", ofrep.evaluate_flags, name="ofrep-bulk"),
    path("ofrep/v1/evaluate/flags/<str:key>", ofrep.evaluate_flag, name="ofrep-flag"),
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
    path("privacy/packages/<str:token>", privacy_views.package_download, name="privacy-package"),
    path("admin/switch-tenant/", admin_views.switch_tenant, name="switch-tenant"),
    # Before the admin's own URLs: /admin/compliance/ (the app's index) is the dashboard.
    path(
        "admin/compliance/",
        admin.site.admin_view(compliance_views.dashboard),
        name="compliance-dashboard",
    ),
    path(
        "admin/compliance/rules/<str:rule_id>/",
        admin.site.admin_view(compliance_views.rule_detail),
        name="compliance-rule",
    ),
    path("admin/", admin.site.urls),
]

handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.not_found
handler500 = errors.server_error
