"""The Compliance dashboard (browser admin): rule tiles, open violations with filters, pull
requests with score and decision, the trend chart, and rule detail pages.

A fixed number of queries whatever the data size (see selectors); charts are SVG drawn here, so
the page needs no CDN and passes the CSP. The page polls itself every 5 minutes for a fresh
fragment (`X-Fragment: 1`), backing off on errors (static/compliance/dashboard.js).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from django import forms
from django.contrib import admin
from django.http import Http404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.cache import patch_vary_headers

from apps.compliance import charts, selectors
from apps.compliance.models import Rule, RuleTrend, Tier, ViolationStatus
from apps.tenancy.selectors import displayed_tenant
from opsportal.dbrouter import read_replica

TABLE_ROWS = 50
POLL_SECONDS = 300
TREND_DAYS = 90
SPARK_DAYS = 30


class FilterForm(forms.Form):
    rule = forms.ChoiceField(required=False)
    severity = forms.ChoiceField(required=False, choices=[("", "any severity"), *Tier.choices])
    status = forms.ChoiceField(
        required=False,
        choices=[*ViolationStatus.choices, ("all", "any status")],
        initial=ViolationStatus.OPEN,
    )
    repository = forms.RegexField(
        required=False, regex=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", max_length=200
    )
    pr = forms.IntegerField(required=False, min_value=1)
    file = forms.CharField(required=False, max_length=200)

    def __init__(self, *args, rules: list[Rule], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rule"].choices = [("", "any rule")] + [
            (rule.id, f"{rule.id} {rule.name}") for rule in rules
        ]


def _sparklines(tenant, today) -> dict[str, charts.SafeString]:
    points: dict[str, dict] = defaultdict(dict)
    start = today - timedelta(days=SPARK_DAYS - 1)
    for rule_id, day, rate in (
        read_replica(RuleTrend.objects.for_tenant(tenant))
        .filter(day__gte=start, day__lte=today)
        .values_list("rule_id", "day", "compliance_rate")
    ):
        points[rule_id][day] = rate
    days = [start + timedelta(days=i) for i in range(SPARK_DAYS)]
    return {
        rule_id: charts.sparkline(
            [by_day.get(day) for day in days], title=f"{rule_id} compliance, {SPARK_DAYS} days"
        )
        for rule_id, by_day in points.items()
    }


def dashboard(request):
    tenant = displayed_tenant(request)
    context = {
        **admin.site.each_context(request),
        "title": "Compliance",
        "tenant": tenant,
        "poll_seconds": POLL_SECONDS,
        "updated_at": timezone.localtime(),
    }
    if tenant is None:
        return TemplateResponse(request, "compliance/dashboard.html", context)
    statuses = selectors.rule_statuses(tenant)
    form = FilterForm(request.GET or None, rules=[s.rule for s in statuses])
    filters = form.cleaned_data if form.is_valid() else {}
    if request.GET.get("pr_id", "").isdigit():
        filters = {**filters, "pull_request_id": int(request.GET["pr_id"])}
    today = selectors.today_for(tenant)
    series = selectors.trend_series(tenant, today - timedelta(days=TREND_DAYS - 1), today)
    sparklines = _sparklines(tenant, today)
    context.update(
        {
            "form": form,
            "tiles": [(s, sparklines.get(s.rule.id)) for s in statuses],
            "status_counts": {
                colour: sum(1 for s in statuses if s.status == colour)
                for colour in (selectors.GREEN, selectors.YELLOW, selectors.RED)
            },
            "violations": list(
                read_replica(selectors.violations(tenant, filters)).order_by("-last_seen_at")[
                    :TABLE_ROWS
                ]
            ),
            "table_rows": TABLE_ROWS,
            "pull_requests": selectors.pull_requests(tenant),
            "trend_chart": charts.line_chart(
                [
                    (
                        "compliance rate",
                        [(_day(p["day"]), p["compliance_rate"]) for p in series],
                    )
                ],
                title=f"Compliance rate, all rules, last {TREND_DAYS} days",
                y_label="passing ÷ evaluated",
                y_max=1,
                percent=True,
            ),
            "violations_chart": charts.line_chart(
                [("violations", [(_day(p["day"]), p["violations"]) for p in series])],
                title=f"Violations reported per day, last {TREND_DAYS} days",
                y_label="violations",
            ),
            "query": request.GET.urlencode(),
        }
    )
    template = (
        "compliance/_dashboard_live.html"
        if request.headers.get("X-Fragment")
        else "compliance/dashboard.html"
    )
    response = TemplateResponse(request, template, context)
    patch_vary_headers(response, ["X-Fragment"])  # the page and its fragment share a URL
    return response


def _day(iso: str) -> date:
    return date.fromisoformat(iso)


def rule_detail(request, rule_id: str):
    tenant = displayed_tenant(request)
    statuses = selectors.rule_statuses(tenant, rule_id) if tenant else []
    if not statuses:
        raise Http404("No such rule.")
    status = statuses[0]
    today = selectors.today_for(tenant)
    series = selectors.trend_series(tenant, today - timedelta(days=TREND_DAYS - 1), today, rule_id)
    context = {
        **admin.site.each_context(request),
        "title": f"{status.rule.id} {status.rule.name}",
        "tenant": tenant,
        "status": status,
        "rule": status.rule,
        "rate_chart": charts.line_chart(
            [("compliance rate", [(_day(p["day"]), p["compliance_rate"]) for p in series])],
            title=f"{rule_id} compliance rate, last {TREND_DAYS} days",
            y_label="passing ÷ evaluated",
            y_max=1,
            percent=True,
        ),
        "violations_chart": charts.line_chart(
            [("violations", [(_day(p["day"]), p["violations"]) for p in series])],
            title=f"{rule_id} violations per day, last {TREND_DAYS} days",
            y_label="violations",
        ),
        "files_chart": charts.bar_chart(
            selectors.top_files(tenant, rule_id),
            title=f"{rule_id}: files with most open violations",
        ),
        "violations": list(
            selectors.violations(tenant, {"rule": rule_id}).order_by("-last_seen_at")[:TABLE_ROWS]
        ),
        "updated_at": timezone.localtime(),
    }
    return TemplateResponse(request, "compliance/rule_detail.html", context)
