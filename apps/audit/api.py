from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from apps.audit import services
from apps.audit.models import AuditEvent, EvidenceArtifact
from apps.tenancy.roles import READ_ROLES, Role
from opsportal.api.idempotency import idempotent
from opsportal.api.views import TenantDetailView, TenantListView


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "chain",
            "seq",
            "actor_label",
            "action",
            "target_type",
            "target_id",
            "before",
            "after",
            "request_id",
            "created_at",
            "hash",
        ]


class EvidenceSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvidenceArtifact
        fields = ["id", "kind", "period", "content", "sha256", "created_at"]
        read_only_fields = ["id", "sha256", "created_at"]

    kind = serializers.RegexField(r"^[a-z0-9_.-]{1,64}$")


class AuditEventList(TenantListView):
    model = AuditEvent
    serializer_class = AuditEventSerializer
    required_roles = READ_ROLES
    filterset_fields = ["action", "target_type"]


class EvidenceList(TenantListView):
    """List evidence artifacts, or store one (e.g. a CI pipeline's release evidence)."""

    model = EvidenceArtifact
    serializer_class = EvidenceSerializer
    required_roles = {"SAFE": READ_ROLES, "POST": {Role.OPERATOR, Role.CI}}
    filterset_fields = ["kind", "period"]

    @extend_schema(request=EvidenceSerializer, responses={201: EvidenceSerializer})
    @idempotent
    def post(self, request):
        serializer = EvidenceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        artifact = services.store_evidence(tenant_id=request.tenant.pk, **serializer.validated_data)
        response = Response(EvidenceSerializer(artifact).data, status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/audit/evidence/{artifact.pk}"
        return response


class EvidenceDetail(TenantDetailView):
    model = EvidenceArtifact
    serializer_class = EvidenceSerializer
    required_roles = READ_ROLES
