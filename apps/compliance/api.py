"""REST API of the compliance gate: run ingestion, the gate, rules, violations, trends, export."""

from __future__ import annotations

import csv
import json
import re
from datetime import date, timedelta

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ParseError, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.compliance import selectors, services
from apps.compliance.ingest import (
    SUPPORTED_CONTENT_TYPES,
    RunFormatError,
    TooManyResults,
    UnsupportedFormat,
    gc_paused,
    parse_run,
)
from apps.compliance.models import (
    REPOSITORY_PATTERN,
    SourceFormat,
    Tier,
    Violation,
    ViolationStatus,
)
from apps.tenancy.rls import tenant_context
from apps.tenancy.roles import READ_ROLES, Role
from opsportal.api.idempotency import REPLAYED_HEADER, idempotent
from opsportal.api.problems import UnprocessableEntity
from opsportal.api.views import TenantListView

CI_ROLES = {Role.CI}
FORMAT_OF = {
    "application/sarif+json": SourceFormat.SARIF,
    "application/vnd.conftest+json": SourceFormat.CONFTEST,
}
COMMIT_PATTERN = re.compile(r"^[0-9a-fA-F]{7,64}$")
REPOSITORY = re.compile(REPOSITORY_PATTERN)
MAX_TREND_DAYS = 731


class PayloadTooLarge(ValidationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


def _media_type(request) -> str:
    return (request.content_type or "").split(";")[0].strip().lower()


def _identity(request, parsed, source_format: str) -> services.RunIdentity:
    """Repository, pull request, commit and tool: from the native body, else the query string
    (SARIF may also name the commit and tool itself). Body and query must not disagree."""
    query = request.query_params
    errors: dict[str, list[str]] = {}

    def pick(name: str, from_body, query_name: str | None = None):
        from_query = query.get(query_name or name)
        if from_body not in (None, "") and from_query not in (None, "", str(from_body)):
            errors[name] = [f"The body says {from_body!r}, the query string {from_query!r}."]
        return from_body if from_body not in (None, "") else from_query

    repository = pick("repository", parsed.repository)
    number = pick("pull_request", parsed.pull_request, "pr")
    commit_sha = pick("commit_sha", parsed.commit_sha)
    # SARIF and Conftest only suggest a tool name (the driver's, or "conftest"): the query
    # string's wins, so that two scans of one commit can be told apart.
    if source_format == SourceFormat.NATIVE:
        tool = pick("tool", parsed.tool)
    else:
        tool = query.get("tool") or parsed.tool or source_format
    if not repository or not REPOSITORY.match(str(repository)):
        errors.setdefault("repository", ["Required, as owner/name."])
    try:
        number = int(number)
        if number < 1:
            raise ValueError
    except (TypeError, ValueError):
        errors.setdefault("pull_request", ["Required: the pull request number (query: pr)."])
    if not commit_sha or not COMMIT_PATTERN.match(str(commit_sha)):
        errors.setdefault("commit_sha", ["Required: 7 to 64 hexadecimal characters."])
    if not tool or len(str(tool)) > 100:
        errors.setdefault("tool", ["Required: the tool's name, at most 100 characters."])
    if errors:
        raise ValidationError(errors)
    return services.RunIdentity(
        source_root=query.get("source_root", "")[:1000],
        repository=str(repository),
        pull_request=number,
        commit_sha=str(commit_sha).lower(),
        tool=str(tool),
        source_format=source_format,
    )


class RunIngest(APIView):
    """Post one tool's results for one commit of a pull request; get the decision back."""

    required_roles = CI_ROLES
    parser_classes: list = []  # the body is read raw: three formats, parsed by apps.compliance

    @extend_schema(
        summary="Record a CI run and get the merge decision",
        description=(
            "Content-Type selects the format: `application/json` (native), "
            "`application/sarif+json` (SARIF 2.1.0), `application/vnd.conftest+json` "
            "(`conftest test -o json`). For SARIF and Conftest pass `repository`, `pr`, "
            "`commit_sha` and `tool` in the query string. A repeat of the same repository, "
            "pull request, commit and tool returns the first run (200, Idempotent-Replayed)."
        ),
        parameters=[
            OpenApiParameter("repository", str, description="owner/name"),
            OpenApiParameter("pr", int, description="pull request number"),
            OpenApiParameter("commit_sha", str),
            OpenApiParameter("tool", str),
            OpenApiParameter(
                "source_root",
                str,
                description="checkout directory stripped from absolute file paths "
                "(default: the GitHub Actions layout …/<name>/<name>/ is recognised)",
            ),
        ],
        request={ct: OpenApiTypes.OBJECT for ct in SUPPORTED_CONTENT_TYPES},
        responses={
            201: OpenApiResponse(OpenApiTypes.OBJECT, description="Run recorded"),
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="Replay of the first run"),
            400: OpenApiResponse(description="Malformed body: errors name the field path"),
            413: OpenApiResponse(description="More than the result limit, or over 20 MB"),
            415: OpenApiResponse(description="Unsupported Content-Type"),
            422: OpenApiResponse(description="Unknown rules or unmapped results, listed"),
        },
    )
    @idempotent
    def post(self, request):
        media_type = _media_type(request)
        try:
            with gc_paused():  # a 100,000-result body is a million objects: no cycle scans
                document = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"The body is not valid JSON: {exc}") from exc
        try:
            parsed = parse_run(media_type, document, max_results=settings.COMPLIANCE_MAX_RESULTS)
        except UnsupportedFormat as exc:
            from rest_framework.exceptions import UnsupportedMediaType

            raise UnsupportedMediaType(
                media_type,
                f"Unsupported Content-Type {media_type!r}; use one of "
                + ", ".join(SUPPORTED_CONTENT_TYPES)
                + ".",
            ) from exc
        except TooManyResults as exc:
            raise PayloadTooLarge({"results": [f"At most {exc.limit} results per run."]}) from exc
        except RunFormatError as exc:
            raise ValidationError(exc.errors) from exc
        source_format = FORMAT_OF.get(media_type, SourceFormat.NATIVE)
        identity = _identity(request, parsed, source_format)
        try:
            outcome = services.record_run(request.tenant, identity, parsed)
        except services.RunRejected as exc:
            raise UnprocessableEntity(exc.errors | {"detail": [exc.detail]}) from exc
        response = Response(
            outcome.run.response,
            status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK,
        )
        if not outcome.created:
            response[REPLAYED_HEADER] = "true"
        return response


COMMIT_SHA_PATTERN = r"^[0-9a-fA-F]{7,64}$"


# The column is a PositiveIntegerField: a larger number names no pull request, and is a 400.
PR_NUMBER_MAX = 2**31 - 1


class GateQuery(serializers.Serializer):
    repository = serializers.RegexField(REPOSITORY_PATTERN)
    pr = serializers.IntegerField(min_value=1, max_value=PR_NUMBER_MAX)
    commit_sha = serializers.RegexField(COMMIT_SHA_PATTERN, required=False)


_REPOSITORY_RE = re.compile(REPOSITORY_PATTERN)
_COMMIT_SHA_RE = re.compile(COMMIT_SHA_PATTERN)


def gate_query(params) -> tuple[str, int, str]:
    """(repository, pr, commit_sha or "") of a gate poll.

    A query that plainly passes GateQuery (no surrounding spaces, a plain positive number) is
    read directly, because a DRF serializer deep-copies its fields on every instantiation, about
    a tenth of a cached poll's time. Anything else goes through GateQuery, so what is accepted and
    every error message stay the serializer's.
    """
    repository, number, sha = (
        params.get("repository"),
        params.get("pr", ""),
        params.get("commit_sha"),
    )
    plain = (
        repository is not None
        and repository == repository.strip()
        and _REPOSITORY_RE.search(repository)
        and number.isascii()
        and number.isdigit()
        and len(number) <= 10  # the serializer decides about anything longer
        and 1 <= int(number) <= PR_NUMBER_MAX
        and (sha is None or (sha == sha.strip() and _COMMIT_SHA_RE.search(sha)))
    )
    if plain:
        return repository, int(number), sha or ""
    query = GateQuery(data=params)
    query.is_valid(raise_exception=True)
    data = query.validated_data
    return data["repository"], data["pr"], data.get("commit_sha", "")


class Gate(APIView):
    """The current merge decision of a pull request, computed now (an expiry counts at once)."""

    required_roles = READ_ROLES

    @extend_schema(
        summary="Current gate decision of a pull request",
        parameters=[GateQuery],
        responses={200: OpenApiTypes.OBJECT, 304: None, 404: None},
    )
    def get(self, request):
        repository, number, asked = gate_query(request.query_params)
        answer = selectors.cached_gate(request.tenant, repository, number)
        if answer is None:
            raise NotFound("No run has been recorded for this pull request.")
        if answer is False:
            pull_request = selectors.pull_request(request.tenant, repository, number)
            if pull_request is None:
                raise NotFound("No run has been recorded for this pull request.")
            pull_request.tenant = request.tenant  # the same row: no second query for it
            answer = selectors.gate_view(pull_request)
        etag = answer.etag
        asked = asked.lower()
        stale = bool(asked) and not answer.head_sha.startswith(asked)
        if stale:
            # The portal's latest run is for another commit: say so, and never say "merge".
            body = {**answer.body, "can_merge": False, "stale": True, "asked_commit_sha": asked}
            etag = etag[:-1] + '-stale"'
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
        if stale:
            return Response(body, headers=headers)
        # The body rendered once when it was cached: no serialisation per poll.
        return HttpResponse(answer.rendered, content_type="application/json", headers=headers)


class RuleList(APIView):
    required_roles = READ_ROLES

    @extend_schema(
        summary="The 25 rules with status, last checked and open counts",
        operation_id="compliance_rules_list",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        return Response({"rules": [s.as_dict() for s in selectors.rule_statuses(request.tenant)]})


class RuleDetail(APIView):
    required_roles = READ_ROLES

    @extend_schema(
        summary="One rule: status, 90-day series, top files",
        responses={200: OpenApiTypes.OBJECT, 404: None},
    )
    def get(self, request, rule_id: str):
        statuses = selectors.rule_statuses(request.tenant, rule_id)
        if not statuses:
            raise NotFound(f"No rule {rule_id}.")
        today = selectors.today_for(request.tenant)
        return Response(
            {
                **statuses[0].as_dict(),
                "description": statuses[0].rule.description,
                "series": selectors.trend_series(
                    request.tenant, today - timedelta(days=89), today, rule_id
                ),
                "top_files": [
                    {"file_path": path, "open": n}
                    for path, n in selectors.top_files(request.tenant, rule_id)
                ],
            }
        )


class ViolationFilters(serializers.Serializer):
    rule = serializers.RegexField(r"^R\d{2}$", required=False)
    severity = serializers.ChoiceField(Tier.choices, required=False)
    file = serializers.CharField(required=False, max_length=1000)
    repository = serializers.RegexField(REPOSITORY_PATTERN, required=False)
    pr = serializers.IntegerField(min_value=1, required=False)
    status = serializers.ChoiceField(
        [*ViolationStatus.values, "all"], required=False, default=ViolationStatus.OPEN
    )


class ViolationSerializer(serializers.ModelSerializer):
    repository = serializers.CharField(source="pull_request.repository")
    pull_request = serializers.IntegerField(source="pull_request.number")

    class Meta:
        model = Violation
        fields = [
            "id",
            "repository",
            "pull_request",
            "rule_id",
            "severity",
            "status",
            "tool",
            "fingerprint",
            "file_path",
            "line",
            "message",
            "occurrences",
            "first_seen_at",
            "last_seen_at",
            "resolved_at",
            "resolved_by_commit",
        ]


def _filters(request) -> dict:
    query = ViolationFilters(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


class ViolationList(TenantListView):
    """Violations, newest first, cursor-paginated; filters as on the dashboard."""

    model = Violation
    serializer_class = ViolationSerializer
    required_roles = READ_ROLES

    @extend_schema(parameters=[ViolationFilters])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Violation.objects.none()
        return selectors.violations(self.request.tenant, _filters(self.request))


class Trends(APIView):
    required_roles = READ_ROLES

    @extend_schema(
        summary="Daily compliance series (all rules summed, or one rule)",
        parameters=[
            OpenApiParameter("rule", str),
            OpenApiParameter("from", OpenApiTypes.DATE),
            OpenApiParameter("to", OpenApiTypes.DATE),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        params = request.query_params
        errors: dict[str, list[str]] = {}
        today = selectors.today_for(request.tenant)

        def day(name: str, default: date) -> date:
            value = params.get(name)
            if not value:
                return default
            try:
                return date.fromisoformat(value)
            except ValueError:
                errors[name] = ["A date as YYYY-MM-DD."]
                return default

        end = day("to", today)
        start = day("from", end - timedelta(days=29))
        rule = params.get("rule")
        if rule and not re.fullmatch(r"R\d{2}", rule):
            errors["rule"] = ["A rule id such as R07."]
        if start > end:
            errors["from"] = ["Must not be after `to`."]
        elif (end - start).days >= MAX_TREND_DAYS:
            errors["from"] = [f"At most {MAX_TREND_DAYS} days per request."]
        if errors:
            raise ValidationError(errors)
        return Response(
            {
                "rule": rule,
                "from": start,
                "to": end,
                "series": selectors.trend_series(request.tenant, start, end, rule),
            }
        )


EXPORT_FIELDS = ViolationSerializer.Meta.fields


class _Echo:
    def write(self, value):
        return value


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_safe(value):
    """CI-supplied text (messages, paths) must not run as a formula when the CSV is opened in a
    spreadsheet (OWASP "CSV injection"): such a cell is prefixed with an apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _export_rows(tenant, queryset):
    """Runs while the response streams, after the view returned and its database scope was
    cleared: the generator scopes itself to the tenant again."""
    with tenant_context(tenant):
        for violation in queryset.iterator(chunk_size=2000):
            yield ViolationSerializer(violation).data


class Export(APIView):
    """Violations with the list's filters, streamed as CSV or JSON (no size limit, constant
    memory)."""

    required_roles = READ_ROLES

    def perform_content_negotiation(self, request, force=False):
        """`format` names the export's format here, not a DRF renderer; errors are JSON."""
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        summary="Export violations (streamed CSV or JSON)",
        parameters=[ViolationFilters, OpenApiParameter("format", str, enum=["csv", "json"])],
        responses={200: OpenApiTypes.BINARY},
    )
    def get(self, request):
        export_format = request.query_params.get("format", "csv")
        if export_format not in ("csv", "json"):
            raise ValidationError({"format": ["csv or json."]})
        queryset = selectors.violations(request.tenant, _filters(request)).order_by("id")
        stamp = selectors.today_for(request.tenant).isoformat()
        if export_format == "csv":
            writer = csv.DictWriter(_Echo(), fieldnames=EXPORT_FIELDS)

            def rows():
                yield writer.writeheader()
                for row in _export_rows(request.tenant, queryset):
                    yield writer.writerow({k: _spreadsheet_safe(v) for k, v in row.items()})

            response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        else:

            def rows():
                yield "["
                first = True
                for row in _export_rows(request.tenant, queryset):
                    yield ("" if first else ",") + json.dumps(row, default=str)
                    first = False
                yield "]"

            response = StreamingHttpResponse(rows(), content_type="application/json")
        response["Content-Disposition"] = (
            f'attachment; filename="violations-{stamp}.{export_format}"'
        )
        return response
