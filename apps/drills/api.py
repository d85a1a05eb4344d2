"""REST API of the drills app: drills (create, read, update), runs (queue, read, cancel)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.drills import services
from apps.drills.models import Drill, DrillKind, DrillRun, TargetKind
from apps.tenancy.roles import READ_ROLES, Role
from opsportal.api.idempotency import idempotent
from opsportal.api.locking import check_preconditions, etag_for
from opsportal.api.problems import Conflict, unprocessable
from opsportal.api.views import TenantListView
from opsportal.context import current_actor

WRITE_ROLES = {Role.OPERATOR}


class DrillSerializer(serializers.ModelSerializer):
    dsn = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="External target: a PostgreSQL DSN. Stored encrypted; never returned.",
    )
    next_run_at = serializers.SerializerMethodField()

    class Meta:
        model = Drill
        fields = ["id", *services.EDITABLE, "dsn", "dsn_hint", "version", "next_run_at"]
        read_only_fields = ["id", "dsn_hint", "version", "next_run_at"]
        extra_kwargs = {"name": {"validators": []}}

    def get_next_run_at(self, drill: Drill) -> str | None:
        try:
            at = services.next_run_at(drill)
        except DjangoValidationError:
            return None
        return at.isoformat() if at else None


class DrillUpdateSerializer(DrillSerializer):
    version = serializers.IntegerField(required=False)

    class Meta(DrillSerializer.Meta):
        read_only_fields = ["id", "dsn_hint", "next_run_at"]


def _may_target_portal(request) -> bool:
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.is_superuser)


class DrillList(TenantListView):
    model = Drill
    serializer_class = DrillSerializer
    required_roles = {"GET": READ_ROLES, "POST": WRITE_ROLES}

    @extend_schema(
        summary="Create a drill",
        description="An invalid DSN, cron expression, time zone or rollback state gets 422 "
        "naming the field. Only a superuser may drill the portal's own database.",
        request=DrillSerializer,
        responses={201: DrillSerializer, 422: OpenApiResponse(description="Invalid drill")},
    )
    @idempotent
    def post(self, request):
        data = DrillSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        dsn = fields.pop("dsn", None)
        drill = Drill(tenant=request.tenant, **fields)
        try:
            drill = services.save_drill(
                drill, dsn=dsn, may_target_portal=_may_target_portal(request)
            )
        except DjangoValidationError as exc:
            raise unprocessable(exc) from exc
        response = Response(DrillSerializer(drill).data, status=status.HTTP_201_CREATED)
        response["ETag"] = etag_for(drill)
        return response


def _drill(request, pk: int) -> Drill:
    drill = Drill.objects.for_tenant(request.tenant).filter(pk=pk).first()
    if drill is None:
        raise NotFound("No such drill.")
    return drill


class DrillDetail(APIView):
    required_roles = {"GET": READ_ROLES, "PATCH": WRITE_ROLES}

    @extend_schema(summary="One drill", responses=DrillSerializer)
    def get(self, request, pk: int):
        drill = _drill(request, pk)
        response = Response(DrillSerializer(drill).data)
        response["ETag"] = etag_for(drill)
        return response

    @extend_schema(
        summary="Change a drill (send `version` or If-Match)",
        request=DrillUpdateSerializer,
        responses={200: DrillSerializer, 409: OpenApiResponse(description="Stale version")},
    )
    def patch(self, request, pk: int):
        data = DrillUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        version = fields.pop("version", None)
        dsn = fields.pop("dsn", None)
        with transaction.atomic():
            drill = Drill.objects.select_for_update().get(pk=_drill(request, pk).pk)
            check_preconditions(drill, request.headers.get("If-Match"), version)
            for key, value in fields.items():
                setattr(drill, key, value)
            may_portal = _may_target_portal(request) or (
                drill.target == TargetKind.PORTAL and "target" not in fields
            )
            try:
                drill = services.save_drill(drill, dsn=dsn, may_target_portal=may_portal)
            except DjangoValidationError as exc:
                raise unprocessable(exc) from exc
        response = Response(DrillSerializer(drill).data)
        response["ETag"] = etag_for(drill)
        return response


def run_document(run: DrillRun) -> dict:
    return {
        "id": run.pk,
        "drill": run.drill.name,
        "drill_id": run.drill_id,
        "kind": run.kind,
        "status": run.status,
        "trigger": run.trigger,
        "requested_by": run.requested_by,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "phases": run.phases,
        "backup": {"bytes": run.backup_bytes, "sha256": run.backup_sha256}
        if run.backup_sha256
        else None,
        "tables": run.tables,
        "mismatches": run.mismatches,
        "warnings": run.warnings,
        "rto_seconds": run.rto_seconds,
        "rto_target_seconds": run.drill.rto_target_seconds,
        "rto_met": run.rto_met,
        "rpo_seconds": run.rpo_seconds,
        "rpo_target_seconds": run.drill.rpo_target_seconds
        if run.kind == DrillKind.BACKUP_RESTORE
        else None,
        "rpo_met": run.rpo_met,
        "rollback": (run.report or {}).get("rollback") or None,
        "error": run.error,
        "evidence_sha256": run.evidence.sha256 if run.evidence_id else None,
        "links": {"self": f"/api/v1/drills/runs/{run.pk}"},
    }


class DrillRuns(APIView):
    required_roles = {"POST": WRITE_ROLES}

    @extend_schema(
        summary="Queue a run of the drill",
        description="The run executes on a Celery worker; poll the returned link. 409 when a "
        "drill is already queued or running (drills never run at once).",
        request=None,
        responses={
            202: OpenApiTypes.OBJECT,
            409: OpenApiResponse(description="A drill is already queued or running"),
        },
    )
    @idempotent
    def post(self, request, pk: int):
        drill = _drill(request, pk)
        try:
            run = services.request_run(drill, trigger="api", requested_by=current_actor().label)
        except services.RunConflict as exc:
            raise Conflict(str(exc)) from exc
        response = Response(run_document(run), status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/drills/runs/{run.pk}"
        return response


def _run(request, pk: int) -> DrillRun:
    run = (
        DrillRun.objects.for_tenant(request.tenant)
        .select_related("drill", "evidence")
        .filter(pk=pk)
        .first()
    )
    if run is None:
        raise NotFound("No such run.")
    return run


class DrillRunDetail(APIView):
    required_roles = READ_ROLES

    @extend_schema(
        summary="A run: status, phases with timings, per-table verification, RTO and RPO",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, pk: int):
        return Response(run_document(_run(request, pk)))


class DrillRunCancel(APIView):
    required_roles = WRITE_ROLES

    @extend_schema(
        summary="Cancel a queued or running run (the shadow database is dropped)",
        request=None,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request, pk: int):
        run = services.cancel_run(_run(request, pk), by=current_actor().label)
        return Response(run_document(_run(request, run.pk)))
