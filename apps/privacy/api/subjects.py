"""What applications read about a subject (restrictions and objections per purpose), and the
callback through which webhook connectors answer late."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import APIException, NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.services import enqueue
from apps.privacy import connectors, restrictions
from apps.privacy.models import RequestType, SubjectRestriction
from apps.tenancy.rls import all_tenants_context
from apps.tenancy.roles import READ_ROLES, Role
from opsportal.api.problems import unprocessable


def _restriction(item: SubjectRestriction) -> dict:
    return {
        "id": item.pk,
        "kind": item.kind,
        "purpose": item.purpose,
        "since": item.since.isoformat(),
        "request": item.request_id,
    }


class SubjectRestrictions(APIView):
    """Applications ask before they process: a purpose listed here (or `*`) must not be used."""

    required_roles = READ_ROLES

    @extend_schema(
        summary="Active restrictions and objections of a subject (email or external id)",
        description="`processing_allowed(purpose)` is false when a restriction names that "
        "purpose or `*`; an erasure in progress or done stops every purpose.",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, subject: str):
        found = restrictions.restrictions_of(request.tenant, subject)
        return Response(
            {
                "restrictions": [_restriction(item) for item in found],
                "stopped_purposes": sorted({item.purpose for item in found}),
                "all_processing_stopped": any(item.purpose == "*" for item in found),
            }
        )


class LiftInput(serializers.Serializer):
    note = serializers.CharField()


class LiftRestriction(APIView):
    required_roles = {Role.PRIVACY_OFFICER}

    @extend_schema(
        summary="Lift a restriction (Art. 18(3): tell the subject first); erasure stops stay",
        request=LiftInput,
        responses={200: OpenApiTypes.OBJECT, 422: OpenApiResponse(description="Not liftable")},
    )
    def post(self, request, subject: str, pk: int):
        data = LiftInput(data=request.data)
        data.is_valid(raise_exception=True)
        if pk not in {item.pk for item in restrictions.restrictions_of(request.tenant, subject)}:
            raise NotFound("No such active restriction for this subject.")
        try:
            lifted = restrictions.lift_restriction(
                request.tenant, pk, note=data.validated_data["note"]
            )
        except DjangoValidationError as exc:
            raise unprocessable(exc) from exc
        return Response({**_restriction(lifted), "lifted_at": lifted.lifted_at.isoformat()})


class _Refused(APIException):
    def __init__(self, status_code: int, detail: str):
        self.status_code = status_code
        super().__init__(detail)


class ConnectorCallback(APIView):
    """No session or token: the signed URL names the call, the body's HMAC proves the sender."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_scope = "connector_callback"

    @extend_schema(
        summary="A webhook connector's late answer (signed like the portal's requests)",
        request=OpenApiTypes.OBJECT,
        responses={202: OpenApiTypes.OBJECT, 401: OpenApiResponse(description="Bad signature")},
    )
    def post(self, request, token: str):
        with all_tenants_context():
            try:
                call = connectors.receive_callback(token, request.body, request.headers)
            except connectors.CallbackRefused as exc:
                raise _Refused(exc.status, str(exc)) from exc
            if call.request.request_type in (RequestType.ACCESS, RequestType.PORTABILITY):
                enqueue("privacy.build_package", request_id=call.request_id)
            elif call.action in ("erase", "rectify"):
                enqueue("privacy.execute_request", request_id=call.request_id)
        return Response({"call": call.pk, "status": call.status}, status=202)
