from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.tenancy import services
from apps.tenancy.models import Tenant
from apps.tenancy.roles import READ_ROLES, Role
from opsportal.api.locking import etag_for


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "slug", "name", "time_zone", "version", "created_at"]
        read_only_fields = ["id", "slug", "created_at"]

    version = serializers.IntegerField(required=False)


class WhoAmISerializer(serializers.Serializer):
    tenant = TenantSerializer()
    role = serializers.CharField()
    principal = serializers.CharField()


class WhoAmIView(APIView):
    required_roles = READ_ROLES

    @extend_schema(responses=WhoAmISerializer, summary="The calling principal, tenant and role")
    def get(self, request):
        return Response(
            {
                "tenant": TenantSerializer(request.tenant).data,
                "role": request.tenant_role,
                "principal": str(request.user),
            }
        )


class CurrentTenantView(APIView):
    """The caller's tenant. PATCH needs the current `version` or an `If-Match` ETag."""

    required_roles = {"SAFE": READ_ROLES, "PATCH": {Role.TENANT_ADMIN}}

    @extend_schema(responses=TenantSerializer)
    def get(self, request):
        response = Response(TenantSerializer(request.tenant).data)
        response["ETag"] = etag_for(request.tenant)
        return response

    @extend_schema(request=TenantSerializer, responses=TenantSerializer)
    def patch(self, request):
        serializer = TenantSerializer(request.tenant, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changes = {k: v for k, v in serializer.validated_data.items() if k != "version"}
        tenant = services.update_tenant(
            request.tenant,
            changes=changes,
            expected_version=serializer.validated_data.get("version"),
            if_match=request.headers.get("If-Match"),
        )
        response = Response(TenantSerializer(tenant).data)
        response["ETag"] = etag_for(tenant)
        return response
