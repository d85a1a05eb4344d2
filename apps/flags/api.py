"""Management REST API for flags, per-environment states, segments and the kill switch.

Reads: every role. Writes: `operator` (and `tenant_admin`). Updates need the current `version`
in the body or an `If-Match` ETag (409 / 412 otherwise). Invalid rules get 422 naming the field.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.flags import changes as flag_changes
from apps.flags import flagd_import, rollouts, selectors, services
from apps.flags.models import (
    Flag,
    FlagChange,
    FlagKind,
    FlagState,
    RolloutPlan,
    Segment,
    ValueType,
)
from apps.tenancy.roles import READ_ROLES, Role
from opsportal.api.idempotency import idempotent
from opsportal.api.locking import etag_for
from opsportal.api.problems import Conflict, UnprocessableEntity
from opsportal.api.views import TenantListView, TenantScopedMixin

WRITERS = {Role.OPERATOR}


def _unprocessable(exc: services.FlagError) -> UnprocessableEntity:
    return UnprocessableEntity(exc.errors)


class FlagStateSerializer(serializers.ModelSerializer):
    environment = serializers.CharField(source="environment.key", read_only=True)

    class Meta:
        model = FlagState
        fields = [
            "environment",
            "enabled",
            "default_variant",
            "rules",
            "fallthrough",
            "killed_at",
            "version",
            "updated_at",
        ]


class FlagSerializer(serializers.ModelSerializer):
    environments = serializers.SerializerMethodField()

    class Meta:
        model = Flag
        fields = [
            "key",
            "name",
            "description",
            "value_type",
            "variants",
            "kind",
            "owner",
            "tags",
            "archived",
            "version",
            "created_at",
            "updated_at",
            "environments",
        ]

    def get_environments(self, flag: Flag) -> list[dict]:
        return FlagStateSerializer(flag.states.all(), many=True).data


class FlagCreateSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    value_type = serializers.ChoiceField(ValueType.choices, default=ValueType.BOOLEAN)
    variants = serializers.JSONField(required=False)
    default_variant = serializers.CharField(required=False)
    kind = serializers.ChoiceField(FlagKind.choices, default=FlagKind.RELEASE)
    owner = serializers.CharField(required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=serializers.CharField(), required=False, default=list)


class FlagUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    variants = serializers.JSONField(required=False)
    kind = serializers.ChoiceField(FlagKind.choices, required=False)
    owner = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    archived = serializers.BooleanField(required=False)
    version = serializers.IntegerField(required=False)


class StateUpdateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    default_variant = serializers.CharField(required=False)
    rules = serializers.JSONField(required=False)
    fallthrough = serializers.JSONField(required=False)
    version = serializers.IntegerField(required=False)
    apply_at = serializers.DateTimeField(
        required=False, help_text="Schedule the change instead of applying it now."
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class FlagChangeSerializer(serializers.ModelSerializer):
    flag = serializers.CharField(source="state.flag.key", read_only=True)
    environment = serializers.CharField(source="state.environment.key", read_only=True)

    class Meta:
        model = FlagChange
        fields = [
            "id",
            "flag",
            "environment",
            "changes",
            "status",
            "apply_at",
            "note",
            "requested_by_label",
            "requested_at",
            "decided_by_label",
            "decided_at",
            "decision_reason",
            "applied_at",
            "error",
            "version",
        ]


class ChangeDecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class KillSerializer(serializers.Serializer):
    environments = serializers.ListField(child=serializers.SlugField(), required=False)


class KillResultSerializer(serializers.Serializer):
    states = FlagStateSerializer(many=True)
    change_requests = serializers.ListField(child=serializers.DictField())


class SegmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Segment
        fields = ["key", "name", "description", "conditions", "version", "updated_at"]
        read_only_fields = ["version", "updated_at"]
        extra_kwargs = {"key": {"validators": []}}


class SegmentUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    conditions = serializers.JSONField(required=False)
    version = serializers.IntegerField(required=False)


def _with_etag(data: dict, instance) -> Response:
    response = Response(data)
    response["ETag"] = etag_for(instance)
    return response


class FlagList(TenantListView):
    """The tenant's flags with their state in every environment; POST creates one (off)."""

    model = Flag
    serializer_class = FlagSerializer
    required_roles = {"SAFE": READ_ROLES, "POST": WRITERS}
    filterset_fields = ["kind", "archived"]

    def get_queryset(self):
        return selectors.flags_with_states(super().get_queryset())

    @extend_schema(request=FlagCreateSerializer, responses={201: FlagSerializer})
    @idempotent
    def post(self, request):
        data = FlagCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            flag = services.create_flag(request.tenant, **data.validated_data)
        except services.FlagError as exc:
            raise _unprocessable(exc) from exc
        flag = selectors.flags_with_states(Flag.objects.filter(pk=flag.pk)).get()
        response = Response(FlagSerializer(flag).data, status=status.HTTP_201_CREATED)
        response["ETag"] = etag_for(flag)
        return response


class _FlagLookup(TenantScopedMixin, APIView):
    model = Flag

    def flag(self, key: str) -> Flag:
        flag = selectors.flags_with_states(self.get_queryset()).filter(key=key).first()
        if flag is None:
            raise NotFound(f"No flag {key!r} in this tenant.")
        return flag


class FlagDetail(_FlagLookup):
    required_roles = {"SAFE": READ_ROLES, "PATCH": WRITERS}

    @extend_schema(responses=FlagSerializer)
    def get(self, request, key: str):
        flag = self.flag(key)
        return _with_etag(FlagSerializer(flag).data, flag)

    @extend_schema(request=FlagUpdateSerializer, responses=FlagSerializer)
    def patch(self, request, key: str):
        data = FlagUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = {k: v for k, v in data.validated_data.items() if k != "version"}
        try:
            flag = services.update_flag(
                self.flag(key),
                changes=changes,
                expected_version=data.validated_data.get("version"),
                if_match=request.headers.get("If-Match"),
            )
        except services.FlagError as exc:
            raise _unprocessable(exc) from exc
        flag = self.flag(flag.key)
        return _with_etag(FlagSerializer(flag).data, flag)


class FlagStateDetail(_FlagLookup):
    """What a flag serves in one environment. PATCH with `version` or If-Match."""

    required_roles = {"SAFE": READ_ROLES, "PATCH": WRITERS, "PUT": WRITERS}

    def state(self, key: str, environment: str) -> FlagState:
        state = (
            FlagState.objects.for_tenant(self.request.tenant)
            .select_related("environment", "flag")
            .filter(flag__key=key, environment__key=environment)
            .first()
        )
        if state is None:
            raise NotFound(f"No flag {key!r} in environment {environment!r}.")
        return state

    @extend_schema(responses=FlagStateSerializer)
    def get(self, request, key: str, environment: str):
        state = self.state(key, environment)
        return _with_etag(FlagStateSerializer(state).data, state)

    @extend_schema(
        request=StateUpdateSerializer,
        responses={200: FlagStateSerializer, 202: FlagChangeSerializer},
        description="200 with the new state when applied now; 202 with a change request when "
        "the environment needs approval or `apply_at` schedules it.",
    )
    def patch(self, request, key: str, environment: str):
        data = StateUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        extra = ("version", "apply_at", "note")
        changes = {k: v for k, v in data.validated_data.items() if k not in extra}
        try:
            outcome = flag_changes.propose_state_change(
                self.state(key, environment),
                changes=changes,
                expected_version=data.validated_data.get("version"),
                if_match=request.headers.get("If-Match"),
                apply_at=data.validated_data.get("apply_at"),
                note=data.validated_data.get("note", ""),
            )
        except services.FlagError as exc:
            raise _unprocessable(exc) from exc
        if isinstance(outcome, FlagChange):
            return Response(FlagChangeSerializer(outcome).data, status=status.HTTP_202_ACCEPTED)
        state = self.state(key, environment)
        return _with_etag(FlagStateSerializer(state).data, state)

    put = patch


class KillFlag(_FlagLookup):
    """Turn a flag off now, in the named environments (default: all). Answers the new states."""

    required_roles = {"POST": WRITERS}

    @extend_schema(request=KillSerializer, responses=KillResultSerializer)
    def post(self, request, key: str):
        data = KillSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        flag = self.flag(key)
        wanted = data.validated_data.get("environments")
        environments = None
        if wanted:
            environments = list(selectors.environments(request.tenant).filter(key__in=wanted))
            missing = sorted(set(wanted) - {e.key for e in environments})
            if missing:
                raise ValidationError({"environments": [f"Unknown: {', '.join(missing)}."]})
        if environments is None:
            environments = list(selectors.environments(request.tenant))
        _killed, waiting = flag_changes.kill_or_request(flag, environments)
        states = FlagState.objects.for_tenant(request.tenant).filter(
            flag=flag, environment__in=environments
        )
        return Response(
            {
                "states": FlagStateSerializer(states.select_related("environment"), many=True).data,
                "change_requests": FlagChangeSerializer(waiting, many=True).data,
            }
        )


class StaleFlagSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    owner = serializers.CharField()
    reasons = serializers.ListField(child=serializers.CharField())


class StaleFlags(TenantScopedMixin, APIView):
    """Potentially stale flags and why: past their kind's lifetime, unused, or one variant."""

    model = Flag
    required_roles = READ_ROLES

    @extend_schema(responses=StaleFlagSerializer(many=True))
    def get(self, request):
        report = [
            {"key": f.key, "name": f.name, "kind": f.kind, "owner": f.owner, "reasons": reasons}
            for f, reasons in selectors.stale_flags(request.tenant)
        ]
        return Response(StaleFlagSerializer(report, many=True).data)


class SegmentList(TenantListView):
    model = Segment
    serializer_class = SegmentSerializer
    required_roles = {"SAFE": READ_ROLES, "POST": WRITERS}

    @extend_schema(request=SegmentSerializer, responses={201: SegmentSerializer})
    @idempotent
    def post(self, request):
        data = SegmentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            segment = services.create_segment(request.tenant, **data.validated_data)
        except services.FlagError as exc:
            raise _unprocessable(exc) from exc
        response = Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)
        response["ETag"] = etag_for(segment)
        return response


class SegmentDetail(TenantScopedMixin, APIView):
    model = Segment
    required_roles = {"SAFE": READ_ROLES, "PATCH": WRITERS, "DELETE": WRITERS}

    def segment(self, key: str) -> Segment:
        segment = self.get_queryset().filter(key=key).first()
        if segment is None:
            raise NotFound(f"No segment {key!r} in this tenant.")
        return segment

    @extend_schema(responses=SegmentSerializer)
    def get(self, request, key: str):
        segment = self.segment(key)
        return _with_etag(SegmentSerializer(segment).data, segment)

    @extend_schema(request=SegmentUpdateSerializer, responses=SegmentSerializer)
    def patch(self, request, key: str):
        data = SegmentUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = {k: v for k, v in data.validated_data.items() if k != "version"}
        try:
            segment = services.update_segment(
                self.segment(key),
                changes=changes,
                expected_version=data.validated_data.get("version"),
                if_match=request.headers.get("If-Match"),
            )
        except services.FlagError as exc:
            raise _unprocessable(exc) from exc
        return _with_etag(SegmentSerializer(segment).data, segment)

    @extend_schema(responses={204: None})
    def delete(self, request, key: str):
        try:
            services.delete_segment(self.segment(key))
        except services.InUse as exc:
            raise Conflict(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChangeList(TenantListView):
    """Change requests and scheduled changes, newest first; filter by `status`."""

    model = FlagChange
    serializer_class = FlagChangeSerializer
    required_roles = READ_ROLES
    filterset_fields = ["status"]

    def get_queryset(self):
        return super().get_queryset().select_related("state__flag", "state__environment")


class _Decide(TenantScopedMixin, APIView):
    model = FlagChange
    required_roles = {"POST": WRITERS}
    action = ""

    def decide(self, change: FlagChange, reason: str) -> FlagChange:
        raise NotImplementedError

    @extend_schema(request=ChangeDecisionSerializer, responses=FlagChangeSerializer)
    def post(self, request, pk: int):
        data = ChangeDecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        change = self.get_queryset().filter(pk=pk).first()
        if change is None:
            raise NotFound()
        try:
            change = self.decide(change, data.validated_data.get("reason", ""))
        except flag_changes.InvalidTransition as exc:
            raise Conflict(str(exc)) from exc
        except flag_changes.FourEyesViolation as exc:
            raise PermissionDenied(str(exc)) from exc
        except services.FlagError as exc:
            raise _unprocessable(exc) from exc
        change = FlagChange.objects.select_related("state__flag", "state__environment").get(
            pk=change.pk
        )
        return Response(FlagChangeSerializer(change).data)


class ApproveChange(_Decide):
    def decide(self, change, reason):
        return flag_changes.approve_change(change, reason)


class RejectChange(_Decide):
    def decide(self, change, reason):
        return flag_changes.reject_change(change, reason)


class CancelChange(_Decide):
    def decide(self, change, reason):
        return flag_changes.cancel_change(change)


class RolloutSerializer(serializers.ModelSerializer):
    flag = serializers.CharField(source="state.flag.key", read_only=True)
    environment = serializers.CharField(source="state.environment.key", read_only=True)
    percentage = serializers.IntegerField(read_only=True)

    class Meta:
        model = RolloutPlan
        fields = [
            "id",
            "flag",
            "environment",
            "variant",
            "other_variant",
            "stages",
            "stage_index",
            "percentage",
            "stage_started_at",
            "min_dwell_minutes",
            "auto_advance",
            "halt_on",
            "status",
            "status_reason",
            "created_by_label",
            "created_at",
            "version",
        ]


class RolloutStartSerializer(serializers.Serializer):
    stages = serializers.ListField(child=serializers.IntegerField(), required=False)
    variant = serializers.CharField(required=False, default="on")
    other_variant = serializers.CharField(required=False, default="off")
    min_dwell_minutes = serializers.IntegerField(required=False, default=60, min_value=0)
    auto_advance = serializers.BooleanField(required=False, default=False)
    halt_on = serializers.ListField(child=serializers.CharField(), required=False, default=list)


def _rollout_response(plan: RolloutPlan, code: int = status.HTTP_200_OK) -> Response:
    plan = RolloutPlan.objects.select_related("state__flag", "state__environment").get(pk=plan.pk)
    return Response(RolloutSerializer(plan).data, status=code)


class StartRollout(FlagStateDetail):
    """Start a progressive rollout of the flag in this environment (stage 0 served at once)."""

    required_roles = {"POST": WRITERS}
    http_method_names = ["post", "options"]

    @extend_schema(request=RolloutStartSerializer, responses={201: RolloutSerializer})
    @idempotent
    def post(self, request, key: str, environment: str):
        data = RolloutStartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            plan = rollouts.start_rollout(self.state(key, environment), **data.validated_data)
        except services.FlagError as exc:
            raise _unprocessable(exc) from exc
        except rollouts.RolloutError as exc:
            raise Conflict(str(exc)) from exc
        return _rollout_response(plan, status.HTTP_201_CREATED)


class RolloutList(TenantListView):
    """Rollout plans, newest first; filter by `status`."""

    model = RolloutPlan
    serializer_class = RolloutSerializer
    required_roles = READ_ROLES
    filterset_fields = ["status"]

    def get_queryset(self):
        return super().get_queryset().select_related("state__flag", "state__environment")


class RolloutActionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    force = serializers.BooleanField(required=False, default=False)


class RolloutAction(TenantScopedMixin, APIView):
    """POST …/rollouts/{id}/advance | halt | pause | resume | cancel."""

    model = RolloutPlan
    required_roles = {"POST": WRITERS}

    @extend_schema(request=RolloutActionSerializer, responses=RolloutSerializer)
    def post(self, request, pk: int, action: str):
        data = RolloutActionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        plan = self.get_queryset().filter(pk=pk).first()
        if plan is None:
            raise NotFound()
        reason = data.validated_data.get("reason") or "halted by an operator"
        handlers = {
            "advance": lambda: rollouts.advance(plan, force=data.validated_data["force"]),
            "halt": lambda: rollouts.halt(plan, reason),
            "pause": lambda: rollouts.pause(plan),
            "resume": lambda: rollouts.resume(plan),
            "cancel": lambda: rollouts.cancel(plan),
        }
        if action not in handlers:
            raise NotFound()
        try:
            plan = handlers[action]()
        except rollouts.RolloutError as exc:
            raise Conflict(str(exc)) from exc
        except services.FlagError as exc:
            raise _unprocessable(exc) from exc
        return _rollout_response(plan)


class RolloutSignalSerializer(serializers.Serializer):
    signal = serializers.CharField(max_length=200)
    reason = serializers.CharField(max_length=2000)


class RolloutSignal(TenantScopedMixin, APIView):
    """For release tooling and alerting: a signal (`slo:checkout`, `canary:web`) halts every
    rollout that lists it in `halt_on`, one stage back."""

    model = RolloutPlan
    required_roles = {"POST": WRITERS | {Role.CI}}

    @extend_schema(request=RolloutSignalSerializer, responses=RolloutSerializer(many=True))
    def post(self, request):
        data = RolloutSignalSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        halted = rollouts.halt_for_signal(
            request.tenant, data.validated_data["signal"], data.validated_data["reason"]
        )
        plans = RolloutPlan.objects.filter(pk__in=[p.pk for p in halted]).select_related(
            "state__flag", "state__environment"
        )
        return Response(RolloutSerializer(plans, many=True).data)


class ImportReportSerializer(serializers.Serializer):
    imported = serializers.ListField(child=serializers.CharField())
    segments = serializers.ListField(child=serializers.CharField())
    unsupported = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ImportFlagd(TenantScopedMixin, APIView):
    """Import a flagd flag file (the body) into `?environment=`; `?dry_run=true` only reports.

    Flags that do not fit are listed under `unsupported` with the reason and left alone.
    Environments that need approval accept only dry runs.
    """

    model = Flag
    required_roles = {"POST": WRITERS}

    @extend_schema(request=dict, responses=ImportReportSerializer)
    def post(self, request):
        environment = (
            selectors.environments(request.tenant)
            .filter(key=request.query_params.get("environment", ""))
            .first()
        )
        if environment is None:
            raise ValidationError({"environment": ["Name one of the tenant's environments."]})
        dry_run = request.query_params.get("dry_run", "").lower() in ("1", "true", "yes")
        try:
            report = flagd_import.import_document(
                request.tenant, environment, request.data, dry_run=dry_run
            )
        except services.FlagError as exc:
            raise _unprocessable(exc) from exc
        return Response(ImportReportSerializer(report.as_dict()).data)
