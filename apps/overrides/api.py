"""REST API for overrides: request (throttled), list, detail, approve, reject, revoke."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.compliance.models import REPOSITORY_PATTERN
from apps.overrides import services
from apps.overrides.models import DEFAULT_DAYS, MAX_DAYS, MIN_REASON_LENGTH, Override
from apps.tenancy.roles import ALL_ROLES, READ_ROLES, Role
from opsportal.api.idempotency import idempotent
from opsportal.api.problems import Conflict
from opsportal.api.throttling import PrincipalRateThrottle
from opsportal.api.views import TenantListView, TenantScopedMixin

# Anyone in the tenant may ask (a developer is often a viewer); only deciders may decide.
REQUESTERS = ALL_ROLES
DECIDERS = {Role.COMPLIANCE_ADMIN}  # tenant_admin passes every role check


class OverrideSerializer(serializers.ModelSerializer):
    repository = serializers.CharField(source="pull_request.repository")
    pull_request = serializers.IntegerField(source="pull_request.number")

    class Meta:
        model = Override
        fields = [
            "id",
            "state",
            "repository",
            "pull_request",
            "violation",
            "rule",
            "fingerprint",
            "reason",
            "requested_days",
            "requested_by_label",
            "requested_at",
            "decided_by_label",
            "decided_at",
            "decision_reason",
            "expires_at",
            "ended_at",
            "version",
        ]


class RequestSerializer(serializers.Serializer):
    violation = serializers.IntegerField(min_value=1, required=False)
    repository = serializers.RegexField(REPOSITORY_PATTERN, required=False)
    pr = serializers.IntegerField(min_value=1, required=False)
    fingerprint = serializers.RegexField(r"^[0-9a-f]{40}$", required=False)
    reason = serializers.CharField(min_length=MIN_REASON_LENGTH, max_length=5000)
    expires_in_days = serializers.IntegerField(
        min_value=1, max_value=MAX_DAYS, required=False, default=DEFAULT_DAYS
    )

    def validate(self, attrs):
        by_triple = all(attrs.get(k) for k in ("repository", "pr", "fingerprint"))
        if bool(attrs.get("violation")) == by_triple:
            raise ValidationError(
                {"violation": ["Name the violation by id, or by repository, pr and fingerprint."]}
            )
        return attrs


class DecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class OverrideRequestThrottle(PrincipalRateThrottle):
    """10 requests per hour per user (or token): applies to creating only."""

    scope = "override_requests"

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


class OverrideList(TenantListView):
    """Overrides of the tenant, newest first; POST requests one."""

    model = Override
    serializer_class = OverrideSerializer
    required_roles = {"SAFE": READ_ROLES, "POST": REQUESTERS}
    filterset_fields = ["state", "rule"]
    throttle_classes = [PrincipalRateThrottle, OverrideRequestThrottle]

    def get_queryset(self):
        return super().get_queryset().select_related("pull_request")

    @extend_schema(
        request=RequestSerializer,
        responses={201: OverrideSerializer},
        summary="Request an override (four eyes: someone else must approve it)",
    )
    @idempotent
    def post(self, request):
        data = RequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        violation = services.find_violation(
            request.tenant,
            violation_id=values.get("violation"),
            repository=values.get("repository"),
            pull_request=values.get("pr"),
            fingerprint=values.get("fingerprint"),
        )
        if violation is None:
            raise NotFound("No such violation in this tenant.")
        try:
            override = services.request_override(
                violation, values["reason"], values["expires_in_days"]
            )
        except services.OverrideError as exc:
            raise ValidationError(exc.errors) from exc
        except services.DuplicateOverride as exc:
            raise Conflict(str(exc)) from exc
        return Response(OverrideSerializer(override).data, status=status.HTTP_201_CREATED)


class OverrideDetail(TenantScopedMixin, APIView):
    model = Override
    required_roles = READ_ROLES

    @extend_schema(responses=OverrideSerializer)
    def get(self, request, pk: int):
        override = self.get_queryset().select_related("pull_request").filter(pk=pk).first()
        if override is None:
            raise NotFound()
        return Response(OverrideSerializer(override).data)


class _Decide(TenantScopedMixin, APIView):
    model = Override
    required_roles = DECIDERS
    action = ""

    def decide(self, override: Override, reason: str) -> Override:
        raise NotImplementedError

    @extend_schema(request=DecisionSerializer, responses=OverrideSerializer)
    def post(self, request, pk: int):
        override = self.get_queryset().filter(pk=pk).first()
        if override is None:
            raise NotFound()
        data = DecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            override = self.decide(override, data.validated_data.get("reason", ""))
        except services.OverrideError as exc:
            raise ValidationError(exc.errors) from exc
        except services.FourEyesViolation as exc:
            raise PermissionDenied(str(exc)) from exc
        except services.InvalidTransition as exc:
            raise Conflict(str(exc)) from exc
        override = Override.objects.select_related("pull_request").get(pk=override.pk)
        return Response(OverrideSerializer(override).data)


class ApproveOverride(_Decide):
    """Approve: the violation stops blocking this pull request until the override expires."""

    def decide(self, override, reason):
        return services.approve_override(override, reason=reason)


class RejectOverride(_Decide):
    """Reject, with a reason the requester will read."""

    def decide(self, override, reason):
        return services.reject_override(override, reason)


class RevokeOverride(_Decide):
    """Withdraw an approval before it expires; the gate blocks again at once."""

    def decide(self, override, reason):
        return services.revoke_override(override, reason)
