"""The data map over the API (privacy officers): list every source with its fields, declare
external PostgreSQL databases and tables and webhook connectors. A malformed DSN, an unknown
masking strategy or a column the live table does not have gets 422 naming the field; nothing is
saved then. DSNs and secrets are write-only."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.privacy import datamap
from apps.privacy.models import ExternalDatabase, ExternalTable, SubjectKind, WebhookConnector
from apps.tenancy.roles import Role
from opsportal.api.idempotency import idempotent
from opsportal.api.problems import unprocessable

ROLES = {Role.PRIVACY_OFFICER}


class DataMap(APIView):
    required_roles = ROLES

    @extend_schema(
        operation_id="privacy_sources_list",
        summary="Every source of personal data: kind, fields with category, masking strategy "
        "and legal hold (never a DSN or secret)",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        return Response({"sources": datamap.describe(request.tenant)})


class DatabaseInput(serializers.Serializer):
    name = serializers.SlugField(max_length=80)
    dsn = serializers.CharField(max_length=2000, write_only=True)


def _database_document(database: ExternalDatabase) -> dict:
    return {
        "id": database.pk,
        "name": database.name,
        "dsn_hint": database.dsn_hint,
        "enabled": database.enabled,
        "version": database.version,
    }


class Databases(APIView):
    # A DSN reaches a database with the DSN's own rights: declaring one is for tenant admins.
    required_roles = {Role.TENANT_ADMIN}

    @extend_schema(
        summary="Declare an external PostgreSQL database (tenant admins; DSN checked by connecting,"
        " stored encrypted, never returned; never the portal's own database)",
        request=DatabaseInput,
        responses={201: OpenApiTypes.OBJECT, 422: OpenApiResponse(description="Bad DSN")},
    )
    @idempotent
    def post(self, request):
        data = DatabaseInput(data=request.data)
        data.is_valid(raise_exception=True)
        database = ExternalDatabase(tenant=request.tenant, name=data.validated_data["name"])
        try:
            datamap.save_database(database, dsn=data.validated_data["dsn"])
        except DjangoValidationError as exc:
            raise unprocessable(exc) from exc
        return Response(_database_document(database), status=status.HTTP_201_CREATED)


class TableInput(serializers.Serializer):
    database = serializers.SlugField(help_text="The database's name")
    table = serializers.CharField(max_length=127)
    key_column = serializers.CharField(max_length=63, default="id")
    subject_column = serializers.CharField(max_length=63)
    subject_kind = serializers.ChoiceField(choices=SubjectKind.choices, default=SubjectKind.EMAIL)
    columns = serializers.JSONField(
        help_text='{"column": {"category": "contact", "strategy": "keyed_hash", '
        '"replacement": "", "legal_hold": ""}}'
    )


class Tables(APIView):
    required_roles = ROLES

    @extend_schema(
        summary="Declare a table of an external database (checked against the live table)",
        request=TableInput,
        responses={201: OpenApiTypes.OBJECT, 422: OpenApiResponse(description="Invalid")},
    )
    @idempotent
    def post(self, request):
        data = TableInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        database = (
            ExternalDatabase.objects.for_tenant(request.tenant)
            .filter(name=fields.pop("database"))
            .first()
        )
        try:
            if database is None:
                raise DjangoValidationError({"database": "No such database."})
            table = ExternalTable(tenant=request.tenant, database=database, **fields)
            datamap.save_table(table)
        except DjangoValidationError as exc:
            raise unprocessable(exc) from exc
        return Response(
            {"id": table.pk, "source": table.source_name, "columns": table.columns},
            status=status.HTTP_201_CREATED,
        )


class ConnectorInput(serializers.Serializer):
    name = serializers.SlugField(max_length=80)
    url = serializers.CharField(max_length=500)
    # Required here (the admin can generate one): an API response would be kept for
    # Idempotency-Key replays, and a secret is never stored in clear.
    secret = serializers.CharField(
        write_only=True, min_length=16, help_text="The shared signing secret (16+ characters)"
    )
    timeout_seconds = serializers.IntegerField(default=10)


class Connectors(APIView):
    required_roles = ROLES

    @extend_schema(
        summary="Declare a webhook connector (its signing secret is stored encrypted)",
        request=ConnectorInput,
        responses={201: OpenApiTypes.OBJECT, 422: OpenApiResponse(description="Invalid")},
    )
    @idempotent
    def post(self, request):
        data = ConnectorInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        secret = fields.pop("secret")
        connector = WebhookConnector(tenant=request.tenant, **fields)
        try:
            datamap.save_connector(connector, secret=secret)
        except DjangoValidationError as exc:
            raise unprocessable(exc) from exc
        body = {
            "id": connector.pk,
            "source": connector.source_name,
            "url": connector.url,
            "secret_hint": connector.secret_hint,
        }
        return Response(body, status=status.HTTP_201_CREATED)
