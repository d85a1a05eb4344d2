"""REST API for alerts: raise, list, acknowledge, resolve, and the dead-letter queue."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.alerts import selectors, services
from apps.alerts.models import Alert, Delivery, Tier
from apps.tenancy.roles import READ_ROLES, Role
from opsportal.api.idempotency import idempotent
from opsportal.api.problems import Conflict
from opsportal.api.views import TenantDetailView, TenantListView, TenantScopedMixin

RESPONDERS = {Role.OPERATOR, Role.COMPLIANCE_ADMIN, Role.PRIVACY_OFFICER}
RAISERS = {Role.OPERATOR, Role.CI}


class DeliverySerializer(serializers.ModelSerializer):
    channel = serializers.CharField(source="channel.name")
    channel_kind = serializers.CharField(source="channel.kind")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "channel",
            "channel_kind",
            "purpose",
            "status",
            "attempts",
            "next_attempt_at",
            "delivered_at",
            "dead_at",
            "last_error",
            "idempotency_key",
        ]


class AlertSerializer(serializers.ModelSerializer):
    class Meta:
        model = Alert
        fields = [
            "id",
            "source",
            "tier",
            "dedup_key",
            "title",
            "summary",
            "details",
            "links",
            "status",
            "notify_state",
            "count",
            "first_seen_at",
            "last_seen_at",
            "acknowledged_at",
            "acknowledged_by",
            "resolved_at",
            "resolved_by",
            "escalated_at",
            "version",
        ]


class AlertDetailSerializer(AlertSerializer):
    deliveries = DeliverySerializer(many=True, read_only=True)

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "deliveries"]


class LinkSerializer(serializers.Serializer):
    href = serializers.URLField(max_length=2000)
    text = serializers.CharField(max_length=200, required=False, allow_blank=True)


class RaiseSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=64)
    tier = serializers.ChoiceField(choices=Tier.choices)
    dedup_key = serializers.CharField(max_length=200)
    title = serializers.CharField(max_length=200)
    summary = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    details = serializers.DictField(required=False)
    links = LinkSerializer(many=True, required=False)


class AlertList(TenantListView):
    """Alerts of the caller's tenant, newest activity first; raise one with POST."""

    model = Alert
    serializer_class = AlertSerializer
    required_roles = {"SAFE": READ_ROLES, "POST": RAISERS}
    filterset_fields = ["status", "tier", "source"]

    @extend_schema(
        request=RaiseSerializer,
        responses={201: AlertSerializer, 200: AlertSerializer},
        summary="Raise an alert (deduplicated by dedup_key while it is open)",
    )
    @idempotent
    def post(self, request):
        serializer = RaiseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.raise_alert(request.tenant, **serializer.validated_data)
        return Response(
            AlertSerializer(result.alert).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class AlertDetail(TenantDetailView):
    model = Alert
    serializer_class = AlertDetailSerializer
    required_roles = READ_ROLES


class _Transition(TenantScopedMixin, APIView):
    model = Alert
    required_roles = RESPONDERS

    def transition(self, alert: Alert, by: str) -> Alert:
        raise NotImplementedError

    @extend_schema(request=None, responses=AlertSerializer)
    def post(self, request, pk: int):
        alert = self.get_queryset().filter(pk=pk).first()
        if alert is None:
            from rest_framework.exceptions import NotFound

            raise NotFound()
        try:
            alert = self.transition(alert, str(request.user))
        except services.InvalidTransition as exc:
            raise Conflict(str(exc)) from exc
        return Response(AlertSerializer(alert).data)


class AcknowledgeAlert(_Transition):
    """Acknowledge: stops escalation and repeats; PagerDuty and webhooks are told."""

    def transition(self, alert: Alert, by: str) -> Alert:
        return services.acknowledge_alert(alert, by)


class ResolveAlert(_Transition):
    def transition(self, alert: Alert, by: str) -> Alert:
        return services.close_alert(alert, by)


class DeadLetterStats(APIView):
    required_roles = READ_ROLES

    @extend_schema(
        responses=inline_serializer(
            "DeadLetterStats",
            {
                "total": serializers.IntegerField(),
                "by_channel": serializers.ListField(child=serializers.DictField()),
                "by_age": serializers.DictField(child=serializers.IntegerField()),
                "oldest_dead_at": serializers.DateTimeField(allow_null=True),
            },
        ),
        summary="Dead-lettered deliveries by channel and age",
    )
    def get(self, request):
        return Response(selectors.dead_letter_stats(request.tenant))


class RequeueSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=10000
    )
    channel = serializers.IntegerField(required=False, min_value=1)


class RequeueDeadLetters(APIView):
    required_roles = {Role.OPERATOR}

    @extend_schema(
        request=RequeueSerializer,
        responses=inline_serializer("Requeued", {"requeued": serializers.IntegerField()}),
        summary="Send dead letters again: all, by ids, or by channel id",
    )
    @idempotent
    def post(self, request):
        serializer = RequeueSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        count = services.requeue_dead_letters(
            request.tenant,
            ids=serializer.validated_data.get("ids"),
            channel_id=serializer.validated_data.get("channel"),
        )
        return Response({"requeued": count})
