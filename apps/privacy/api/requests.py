"""REST API of the privacy app: data subject requests, their transitions, extension and identity
verification. Privacy officers (and tenant admins) only: these are personal data."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.privacy import consents, deadlines, rights, services, verification
from apps.privacy.models import Jurisdiction, PrivacyRequest, RequestType, Status
from apps.tenancy.roles import Role
from opsportal.api.idempotency import idempotent
from opsportal.api.problems import Conflict, UnprocessableEntity, unprocessable
from opsportal.context import current_actor

PRIVACY_ROLES = {Role.PRIVACY_OFFICER}


class DueDateCursor(CursorPagination):
    """Keyset pagination by due date (then id), the order officers work in."""

    ordering = ("due_on", "id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500


class RequestInput(serializers.Serializer):
    request_type = serializers.ChoiceField(choices=RequestType.choices)
    jurisdiction = serializers.ChoiceField(choices=Jurisdiction.choices, required=False)
    subject_email = serializers.EmailField(required=False, allow_blank=True)
    subject_external_id = serializers.CharField(max_length=200, required=False, allow_blank=True)
    channel = serializers.CharField(max_length=40, required=False, default="api")
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    corrections = serializers.JSONField(
        required=False, help_text='Rectification: {"source": {"field": "corrected value"}}.'
    )
    purposes = serializers.ListField(
        child=serializers.CharField(max_length=80),
        required=False,
        help_text="Restriction/objection: the purposes covered (default: all, `*`).",
    )


def request_document(request: PrivacyRequest) -> dict:
    statute = deadlines.STATUTES[request.jurisdiction]
    return {
        "id": request.pk,
        "request_type": request.request_type,
        "jurisdiction": request.jurisdiction,
        "statute": statute.source,
        "subject": {"email": request.subject_email, "external_id": request.subject_external_id},
        "channel": request.channel,
        "status": request.status,
        "allowed_transitions": services.allowed_transitions(request),
        "received_at": request.received_at.isoformat(),
        "due_on": request.due_on.isoformat(),
        "acknowledge_by": request.acknowledge_by.isoformat() if request.acknowledge_by else None,
        "extended": request.extended,
        "extension": {
            "reason": request.extension_reason,
            "notice_on": request.extension_notice_on.isoformat(),
        }
        if request.extended
        else None,
        "paused_since": request.paused_since.isoformat() if request.paused_since else None,
        "paused_seconds": request.paused_seconds,
        "duplicate_of": request.duplicate_of_id,
        "verified_at": request.verified_at.isoformat() if request.verified_at else None,
        "verification_method": request.verification_method,
        "last_note": request.last_note,
        "corrections": request.corrections or None,
        "purposes": request.purposes or None,
        "plan": request.plan or None,
        "planned_at": request.planned_at.isoformat() if request.planned_at else None,
        "outcome": request.outcome or None,
        "evidence_sha256": request.evidence.sha256 if request.evidence_id else None,
        "version": request.version,
    }


def _conflict(exc: services.InvalidTransition) -> Conflict:
    """409 whose `errors.allowed` lists the moves that are allowed from here."""
    return Conflict({"status": [str(exc)], "allowed": exc.allowed})


class Requests(APIView):
    required_roles = PRIVACY_ROLES

    @extend_schema(
        operation_id="privacy_requests_list",
        summary="Requests by due date (cursor-paginated; ?status= filters)",
        parameters=[OpenApiParameter("status", str), OpenApiParameter("cursor", str)],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        rows = PrivacyRequest.objects.for_tenant(request.tenant).select_related("evidence")
        status_filter = request.query_params.get("status")
        if status_filter:
            rows = rows.filter(status=status_filter)
        paginator = DueDateCursor()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response([request_document(r) for r in page])

    @extend_schema(
        summary="Record a data subject request (deadline computed from the jurisdiction)",
        request=RequestInput,
        responses={201: OpenApiTypes.OBJECT, 422: OpenApiResponse(description="No subject")},
    )
    @idempotent
    def post(self, request):
        data = RequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            created = services.create_request(request.tenant, **data.validated_data)
        except DjangoValidationError as exc:
            raise unprocessable(exc) from exc
        response = Response(request_document(created), status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/privacy/requests/{created.pk}"
        return response


def _request(request, pk: int) -> PrivacyRequest:
    found = (
        PrivacyRequest.objects.for_tenant(request.tenant)
        .select_related("evidence", "tenant")
        .filter(pk=pk)
        .first()
    )
    if found is None:
        raise NotFound("No such request.")
    return found


class RequestDetail(APIView):
    required_roles = PRIVACY_ROLES

    @extend_schema(summary="One request", responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: int):
        return Response(request_document(_request(request, pk)))


class TransitionInput(serializers.Serializer):
    to = serializers.ChoiceField(choices=Status.choices)
    note = serializers.CharField(required=False, allow_blank=True, default="")
    version = serializers.IntegerField(
        required=False, help_text="The version you read; a stale one gets 409 and changes nothing"
    )


class RequestTransition(APIView):
    required_roles = PRIVACY_ROLES

    @extend_schema(
        summary="Move a request through its lifecycle",
        description="409 lists the allowed moves when this one is not. `verified` by hand needs "
        "a note; `paused` stops the clock and leaving it adds the paused time to the due date.",
        request=TransitionInput,
        responses={200: OpenApiTypes.OBJECT, 409: OpenApiResponse(description="Not allowed")},
    )
    def post(self, request, pk: int):
        data = TransitionInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            moved = services.transition(
                _request(request, pk),
                data.validated_data["to"],
                note=data.validated_data["note"],
                by=current_actor().label,
                version=data.validated_data.get("version"),
            )
        except services.InvalidTransition as exc:
            raise _conflict(exc) from exc
        except services.StaleVersion as exc:
            raise Conflict({"version": [str(exc)]}) from exc
        except DjangoValidationError as exc:
            raise unprocessable(exc) from exc
        return Response(request_document(moved))


class RequestPreview(APIView):
    required_roles = PRIVACY_ROLES

    @extend_schema(
        summary="Dry run of an erasure or rectification: what would change, per source and "
        "field, with counts (stored as the request's plan; starting needs one)",
        request=None,
        responses={200: OpenApiTypes.OBJECT, 422: OpenApiResponse(description="Not now")},
    )
    def post(self, request, pk: int):
        try:
            planned = rights.preview(_request(request, pk))
        except DjangoValidationError as exc:
            raise unprocessable(exc) from exc
        return Response(request_document(planned))


class ExtendInput(serializers.Serializer):
    reason = serializers.CharField()
    notice_on = serializers.DateField()


class RequestExtend(APIView):
    required_roles = PRIVACY_ROLES

    @extend_schema(
        summary="Extend the deadline once (reason and the day the subject was told)",
        request=ExtendInput,
        responses=OpenApiTypes.OBJECT,
    )
    def post(self, request, pk: int):
        data = ExtendInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            extended = services.extend(_request(request, pk), **data.validated_data)
        except services.InvalidTransition as exc:
            raise _conflict(exc) from exc
        except DjangoValidationError as exc:
            raise unprocessable(exc) from exc
        return Response(request_document(extended))


class VerifyInput(serializers.Serializer):
    code = serializers.CharField(max_length=20)


class RequestVerification(APIView):
    """POST without a body mails a code to the subject; with `code` it checks it."""

    required_roles = PRIVACY_ROLES

    @extend_schema(
        summary="Send a one-time code to the subject (no body) or check one (`code`)",
        request=VerifyInput,
        responses={200: OpenApiTypes.OBJECT, 422: OpenApiResponse(description="Code refused")},
    )
    def post(self, request, pk: int):
        target = _request(request, pk)
        try:
            if "code" not in request.data:
                pending = verification.send_verification_code(target)
                body = request_document(pending)
                body["code_sent_to"] = pending.subject_email
                return Response(body, status=status.HTTP_202_ACCEPTED)
            data = VerifyInput(data=request.data)
            data.is_valid(raise_exception=True)
            verified = verification.verify_code(target, data.validated_data["code"])
        except verification.VerificationFailed as exc:
            raise UnprocessableEntity({"code": [str(exc)]}) from exc
        except services.InvalidTransition as exc:
            raise _conflict(exc) from exc
        except DjangoValidationError as exc:
            raise unprocessable(exc) from exc
        return Response(request_document(verified))


CONSENT_ROLES = {"GET": {Role.PRIVACY_OFFICER}, "POST": {Role.PRIVACY_OFFICER, Role.OPERATOR}}


class ConsentInput(serializers.Serializer):
    subject = serializers.CharField(max_length=200)
    purpose = serializers.SlugField(max_length=80)
    granted = serializers.BooleanField()
    policy_version = serializers.CharField(max_length=40)
    source = serializers.CharField(max_length=80)
    given_at = serializers.DateTimeField(required=False)


class Consents(APIView):
    """Append-only consent records (POST), and a subject's current state and history (GET)."""

    required_roles = CONSENT_ROLES

    @extend_schema(
        summary="Current consent per purpose for `?subject=`, and the history",
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        subject = request.query_params.get("subject", "").strip()
        if not subject:
            raise serializers.ValidationError(
                {"subject": ["Give ?subject= (an email or external id)."]}
            )
        return Response(consents.state_of(request.tenant, subject))

    @extend_schema(
        summary="Record consent given or withdrawn (append-only)",
        request=ConsentInput,
        responses={201: OpenApiTypes.OBJECT},
    )
    @idempotent
    def post(self, request):
        data = ConsentInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields.setdefault("given_at", timezone.now())
        try:
            record = consents.record_consent(request.tenant, **fields)
        except DjangoValidationError as exc:
            raise unprocessable(exc) from exc
        return Response(
            {"id": record.pk, **consents.row_of(record)}, status=status.HTTP_201_CREATED
        )


class _CSVPassthrough(BaseRenderer):
    """Lets DRF's `?format=csv` negotiation through; the views build the CSV themselves."""

    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


EXPORT_RENDERERS = [JSONRenderer, _CSVPassthrough]


def _export_format(request) -> str:
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise UnprocessableEntity({"format": ["json or csv"]})
    return fmt


class ConsentExport(APIView):
    required_roles = {Role.PRIVACY_OFFICER}
    renderer_classes = EXPORT_RENDERERS

    @extend_schema(summary="Every consent record, streamed (?format=json|csv)", responses=str)
    def get(self, request):
        fmt = _export_format(request)
        response = StreamingHttpResponse(
            consents.export_stream(request.tenant, fmt),
            content_type="text/csv" if fmt == "csv" else "application/json",
        )
        response["Content-Disposition"] = f'attachment; filename="consents.{fmt}"'
        return response


class ProcessingActivities(APIView):
    required_roles = {Role.PRIVACY_OFFICER}
    renderer_classes = EXPORT_RENDERERS

    @extend_schema(
        summary="The Article 30 record of processing activities (?format=json|csv)",
        responses=str,
    )
    def get(self, request):
        fmt = _export_format(request)
        return HttpResponse(
            consents.activities_export(request.tenant, fmt),
            content_type="text/csv" if fmt == "csv" else "application/json",
        )


INLINE_LIMIT_BYTES = 1024 * 1024


class Gone(APIException):
    status_code = status.HTTP_410_GONE
    default_code = "gone"


class RequestPackage(APIView):
    required_roles = PRIVACY_ROLES

    @extend_schema(
        summary="The access/portability package: a signed download link (valid "
        "PRIVACY_DOWNLOAD_DAYS), its SHA-256 and manifest; `?inline=1` also returns the files "
        "as JSON when the package is under 1 MB",
        responses={200: OpenApiTypes.OBJECT, 409: OpenApiResponse(description="Not built yet")},
    )
    def get(self, request, pk: int):
        target = _request(request, pk)
        if not target.package_sha256:
            raise Conflict({"package": [f"No package yet: the request is {target.status}."]})
        path = Path(target.package_path) if target.package_path else None
        if path is None or not path.is_file():
            raise Gone("The package was deleted (retention or erasure); ask for a new one.")
        token = services.download_token(target)
        body = {
            "download_url": request.build_absolute_uri(f"/privacy/packages/{token}"),
            "expires_in_days": settings.PRIVACY_DOWNLOAD_DAYS,
            "sha256": target.package_sha256,
            "manifest": target.package_manifest,
        }
        if request.query_params.get("inline"):
            with zipfile.ZipFile(path) as archive:
                entries = [i for i in archive.infolist() if i.filename.endswith(".json")]
                if sum(i.file_size for i in entries) < INLINE_LIMIT_BYTES:  # unpacked size
                    body["files"] = {i.filename: json.loads(archive.read(i)) for i in entries}
        return Response(body)
