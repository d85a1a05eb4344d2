"""REST API of the SLO app: SLI ingestion, services and SLOs, OpenSLO, canary releases."""

from __future__ import annotations

from decimal import Decimal

import orjson
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ParseError, UnsupportedMediaType, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.slo import ingest, openslo, releases, selectors, services
from apps.slo.alerting import evaluation_end
from apps.slo.models import SLO, Release, Service
from apps.tenancy.roles import READ_ROLES, Role
from opsportal.api.idempotency import idempotent
from opsportal.api.problems import UnprocessableEntity
from opsportal.api.views import TenantListView
from opsportal.context import current_actor

PUSH_ROLES = {Role.CI, Role.OPERATOR}
WRITE_ROLES = {Role.OPERATOR}
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")


class BatchTooLarge(ValidationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class Events(APIView):
    """Per-minute SLI aggregates from services."""

    required_roles = PUSH_ROLES
    parser_classes: list = []

    @extend_schema(
        summary="Push per-minute SLI aggregates (up to 10,000 rows)",
        description=(
            'Body: `{"rows": [{service, route?, version?, minute, requests, errors, '
            "buckets?, counters?, error_samples?}]}`. `minute` is ISO 8601 with an offset, "
            "aligned to the minute; `buckets` are cumulative latency counts by upper bound in "
            'ms (`{"100": 950, "+Inf": 1000}`). A row replaces the stored row of the same '
            "service, route, version and minute (replays never double count). The batch is "
            "stored whole or not at all."
        ),
        request=OpenApiTypes.OBJECT,
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="Stored"),
            400: OpenApiResponse(description="Bad rows: errors name rows[i].field"),
            413: OpenApiResponse(description="More than 10,000 rows"),
            422: OpenApiResponse(description="Unknown services (unless auto-create is on)"),
        },
    )
    @idempotent
    def post(self, request):
        try:
            document = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from exc
        try:
            rows = ingest.validate_batch(
                document, now=timezone.now(), max_age=services.raw_retention()
            )
        except ingest.BatchTooLarge as exc:
            raise BatchTooLarge({"rows": [f"At most {ingest.MAX_ROWS} rows per batch."]}) from exc
        except ingest.BatchInvalid as exc:
            errors = dict(exc.errors)
            if exc.total > len(errors):
                errors["more"] = f"{exc.total - len(errors)} further problem(s) not listed."
            raise ValidationError(errors) from exc
        try:
            result = services.record_batch(request.tenant, rows)
        except services.UnknownServices as exc:
            raise UnprocessableEntity({"service": [str(exc)], "unknown": exc.names}) from exc
        return Response(
            {
                "rows": result.rows,
                "services": result.services,
                "created_services": result.created_services,
            }
        )


class ServiceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Service
        fields = [
            "id",
            "name",
            "display_name",
            "description",
            "owner",
            "no_data_minutes",
            "canary_policy",
            "report_ratios",
            "counter_aggregates",
            "last_data_at",
            "version",
        ]
        read_only_fields = ["id", "last_data_at", "version"]


class ServiceList(TenantListView):
    model = Service
    serializer_class = ServiceSerializer
    required_roles = {"GET": READ_ROLES, "POST": WRITE_ROLES}

    @extend_schema(summary="Create a service", request=ServiceSerializer)
    @idempotent
    def post(self, request):
        serializer = ServiceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if Service.objects.for_tenant(request.tenant).filter(
            name=serializer.validated_data["name"]
        ):
            raise UnprocessableEntity({"name": ["A service with this name exists."]})
        service = services.save_service(request.tenant, dict(serializer.validated_data))
        return Response(ServiceSerializer(service).data, status=status.HTTP_201_CREATED)


def slo_document(slo: SLO) -> dict:
    state = selectors.latest_status(slo)
    return {
        "id": slo.pk,
        "name": slo.name,
        "service": slo.service.name,
        "display_name": slo.display_name,
        "sli_type": slo.sli_type,
        "objective_percent": float(slo.objective_percent),
        "window_days": slo.window_days,
        "latency_threshold_ms": slo.latency_threshold_ms,
        "good_counter": slo.good_counter,
        "total_counter": slo.total_counter,
        "min_events": slo.min_events,
        "enabled": slo.enabled,
        "version": slo.version,
        "status": None
        if state is None
        else {
            "evaluated_at": state.evaluated_at.isoformat(),
            "sli": state.window_good / state.window_total if state.window_total else None,
            "events": state.window_total,
            "budget": _budget(slo, state),
            "budget_remaining": state.budget_remaining,
            "budget_status": selectors.budget_status(state.budget_remaining),
            "burn_rates": state.burn_rates,
            "firing": state.firing,
        },
    }


def _budget(slo: SLO, state) -> dict:
    """The window's error budget in events: allowed (total), spent (consumed), left."""
    budget = selectors.Budget(state.window_good, state.window_total, slo.objective)
    return {
        "events": budget.total,
        "allowed_bad_events": budget.allowed_bad,
        "bad_events": budget.bad,
        "consumed": budget.consumed,
        "remaining": budget.remaining,
    }


class SLOList(APIView):
    required_roles = READ_ROLES

    @extend_schema(
        operation_id="slo_slos_list",
        summary="SLOs with their latest budget and burn rates",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        slos = (
            SLO.objects.for_tenant(request.tenant)
            .select_related("service", "status")
            .order_by("service__name", "name")
        )
        return Response({"results": [slo_document(slo) for slo in slos]})


class SLODetail(APIView):
    required_roles = READ_ROLES

    @extend_schema(
        summary="One SLO with its latest budget and burn rates", responses=OpenApiTypes.OBJECT
    )
    def get(self, request, name: str):
        slo = (
            SLO.objects.for_tenant(request.tenant)
            .select_related("service", "status")
            .filter(name=name)
            .first()
        )
        if slo is None:
            raise NotFound(f"No SLO named {name!r}.")
        return Response(slo_document(slo))


class OpenSLOView(APIView):
    """Import (POST, application/yaml) and export (GET) in OpenSLO v1."""

    required_roles = {"GET": READ_ROLES, "POST": WRITE_ROLES}
    parser_classes: list = []

    @extend_schema(summary="Export services and SLOs as OpenSLO v1 YAML", responses={200: str})
    def get(self, request):
        return HttpResponse(
            services.export_openslo(request.tenant), content_type="application/yaml"
        )

    @extend_schema(
        summary="Import services and SLOs from OpenSLO v1 YAML",
        description="All or nothing. Features the portal does not support (alert policies, "
        "timeslice budgeting, calendar windows, non-opsportal metric sources …) are listed in "
        "`unsupported`, never dropped silently.",
        request={ct: OpenApiTypes.STR for ct in YAML_TYPES},
        responses={200: OpenApiTypes.OBJECT, 400: OpenApiResponse(description="Malformed")},
    )
    @idempotent
    def post(self, request):
        media_type = (request.content_type or "").split(";")[0].strip().lower()
        if media_type not in YAML_TYPES:
            raise UnsupportedMediaType(media_type, "Send OpenSLO as application/yaml.")
        if len(request.body) > openslo.MAX_BYTES:
            raise BatchTooLarge({"body": [f"At most {openslo.MAX_BYTES} bytes."]})
        try:
            text = request.body.decode()
            result = services.import_openslo(request.tenant, text)
        except UnicodeDecodeError as exc:
            raise ParseError("The body is not UTF-8.") from exc
        except openslo.OpenSLOError as exc:
            raise ValidationError(
                {f"documents[{p.document}].{p.path}": [p.message] for p in exc.errors}
            ) from exc
        return Response(
            {
                "services_created": result.services_created,
                "services_updated": result.services_updated,
                "slos_created": result.slos_created,
                "slos_updated": result.slos_updated,
                "unsupported": [
                    {
                        "document": p.document,
                        "kind": p.kind,
                        "name": p.name,
                        "path": p.path,
                        "message": p.message,
                    }
                    for p in result.unsupported
                ],
            }
        )


class ReleaseInput(serializers.Serializer):
    service = serializers.CharField(max_length=63)
    version = serializers.CharField(max_length=100)
    baseline_version = serializers.CharField(max_length=100)
    canary_weight = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal("0.01"), max_value=Decimal("100")
    )


class Releases(APIView):
    required_roles = {"POST": PUSH_ROLES}

    @extend_schema(
        summary="Start a canary release",
        request=ReleaseInput,
        responses={201: OpenApiTypes.OBJECT, 422: OpenApiResponse(description="Unknown service")},
    )
    @idempotent
    def post(self, request):
        data = ReleaseInput(data=request.data)
        data.is_valid(raise_exception=True)
        service = (
            Service.objects.for_tenant(request.tenant)
            .filter(name=data.validated_data["service"])
            .first()
        )
        if service is None:
            raise UnprocessableEntity({"service": ["Unknown service."]})
        release = releases.start_release(
            request.tenant,
            service,
            version=data.validated_data["version"],
            baseline_version=data.validated_data["baseline_version"],
            canary_weight=data.validated_data["canary_weight"],
            actor=current_actor().label,
        )
        response = Response(releases.verdict_document(release), status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/releases/{release.pk}/verdict"
        return response


def _release(request, pk: int) -> Release:
    release = (
        Release.objects.for_tenant(request.tenant).select_related("service").filter(pk=pk).first()
    )
    if release is None:
        raise NotFound("No such release.")
    return release


class ReleaseVerdict(APIView):
    required_roles = READ_ROLES

    @extend_schema(
        summary="The canary's verdict: promote, continue or rollback, with reasons and figures",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, pk: int):
        release = _release(request, pk)
        document = releases.verdict_document(release)
        document["data_until"] = evaluation_end().isoformat()
        return Response(document)


class ReleaseCloseInput(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False)


class ReleaseClose(APIView):
    required_roles = PUSH_ROLES

    @extend_schema(
        summary="Close a release (promoted or rolled back); resolves its verdict alerts",
        request=ReleaseCloseInput,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request, pk: int):
        release = _release(request, pk)
        reason = str(request.data.get("reason", "closed by release tooling"))[:200]
        releases.close_release(release, reason)
        return Response(releases.verdict_document(release))
