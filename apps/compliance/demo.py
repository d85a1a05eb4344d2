"""Demo data for the compliance gate, recorded through the real ingestion path: tool mappings,
30 days of runs on a handful of pull requests (native, SARIF from ruff and bandit, Conftest),
the trends built from them, and overrides in every state, including one pending approval that
turns a BLOCKED pull request into OVERRIDE_APPROVED when a compliance admin approves it."""

from __future__ import annotations

import hashlib
import random
from datetime import timedelta

from django.utils import timezone

from apps.compliance import services, trends
from apps.compliance.ingest import parse_run
from apps.compliance.models import CheckRun, Rule, ToolRuleMapping, Violation, ViolationStatus
from apps.tenancy.models import Tenant
from opsportal.context import Actor

DEMO_MAPPINGS = [
    ("ruff", "S*", "R03", "flake8-bandit rules: security findings"),
    ("ruff", "*", "R19", "every other ruff rule is lint"),
    ("bandit", "B*", "R03", "bandit findings"),
    ("gitleaks", "*", "R01", "any detected secret"),
    ("trivy", "*", "R02", "vulnerable dependencies"),
    ("conftest", "kubernetes.*", "R07", "Kubernetes manifests policies"),
    ("conftest", "docker", "R21", "Dockerfile policies"),
]
REPOSITORIES = ["acme/web", "acme/api", "acme/billing"]
# (repository, pr) → the rules it violates at its latest commit.
SCENARIOS = {
    ("acme/web", 101): [],
    ("acme/web", 102): ["R19", "R25"],
    ("acme/api", 57): ["R01"],  # blocked; a pending override waits for a compliance admin
    ("acme/api", 58): ["R09", "R20"],
    ("acme/billing", 12): ["R06"],  # blocked; its override was approved
    ("acme/billing", 13): ["R09", "R10", "R11", "R12", "R13", "R14", "R15", "R16", "R17"],
}
RULE_FILES = {
    "R01": ("config/settings/production.py", "Hard-coded credential: AWS secret access key"),
    "R06": ("Dockerfile", "Container runs as root: no USER instruction before CMD"),
    "R09": ("src/billing/invoice.py", "Changed lines covered 61% (< 80%)"),
    "R10": ("openapi.yaml", "Endpoint POST /invoices changed without a spec update"),
    "R11": ("src/billing/audit.py", "Logger call includes customer email address"),
    "R12": ("Dockerfile", "Base image python:3.11 is not pinned to a digest"),
    "R13": ("package-lock.json", "package.json and package-lock.json disagree"),
    "R14": ("deploy/api.yaml", "Deployment has no readinessProbe"),
    "R15": ("deploy/ingress.yaml", "Ingress allows plain HTTP"),
    "R16": ("monitoring/alerts.yaml", "Alert InvoiceBacklogHigh has no runbook_url"),
    "R17": ("service.yaml", "Production service has no SLO definition"),
    "R19": ("src/web/views.py", "F401 `os` imported but unused"),
    "R20": ("src/api/routes.py", "File would be reformatted"),
    "R25": ("CHANGELOG.md", "No changelog entry for a user-facing change"),
}


def _sha(*parts: object) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()  # noqa: S324


def _native_run(repository: str, number: int, sha: str, failing: list[str]) -> dict:
    results = []
    for rule_id in (f"R{i:02d}" for i in range(1, 26)):
        if rule_id in failing:
            path, message = RULE_FILES.get(rule_id, ("README.md", f"{rule_id} check failed"))
            results.append(
                {
                    "rule_id": rule_id,
                    "status": "VIOLATION",
                    "file_path": path,
                    "line": 12,
                    "message": message,
                }
            )
        else:
            results.append({"rule_id": rule_id, "status": "PASS"})
    return {
        "repository": repository,
        "pull_request": number,
        "commit_sha": sha,
        "tool": "opsportal-policies",
        "results": results,
    }


def _ruff_sarif(failing_lint: bool) -> dict:
    results = []
    if failing_lint:
        results.append(
            {
                "ruleId": "F401",
                "level": "error",
                "message": {"text": "`os` imported but unused"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": "src/web/views.py"},
                            "region": {"startLine": 3},
                        }
                    }
                ],
            }
        )
    results.append(
        {
            "ruleId": "S105",
            "level": "error",
            "message": {"text": "Possible hardcoded password assigned to: `token`"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": "tests/test_auth.py"},
                        "region": {"startLine": 9},
                    }
                }
            ],
            "suppressions": [{"kind": "inSource", "justification": "test fixture"}],
        }
    )
    return {
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "ruff", "rules": []}}, "results": results}],
    }


def load_demo(tenant: Tenant) -> bool:
    """Returns False when the tenant already has runs (the demo is loaded once)."""
    if CheckRun.objects.for_tenant(tenant).exists() or not Rule.objects.exists():
        return False
    for tool, pattern, rule_id, note in DEMO_MAPPINGS:
        ToolRuleMapping(
            tenant=tenant, tool=tool, pattern=pattern, rule_id=rule_id, note=note
        ).save()
    rng = random.Random(7)
    now = timezone.now()
    days = 30
    for (repository, number), failing in SCENARIOS.items():
        # Older commits of each pull request failed more rules; the latest fails `failing`.
        for commit in range(4):
            age = timedelta(days=days - 1 - commit * 9 - (number % 5), hours=rng.randint(0, 12))
            ran_at = now - age if commit < 3 else now - timedelta(hours=number % 7 + 1)
            extra = rng.sample(sorted(RULE_FILES), k=max(0, 2 - commit)) if commit < 3 else []
            sha = _sha(repository, number, commit)
            document = _native_run(repository, number, sha, sorted({*failing, *extra}))
            services.record_run(
                tenant,
                services.RunIdentity(repository, number, sha, "opsportal-policies", "native"),
                parse_run("application/json", document),
                now=ran_at,
            )
            if repository == "acme/web":
                services.record_run(
                    tenant,
                    services.RunIdentity(repository, number, sha, "ruff", "sarif"),
                    parse_run("application/sarif+json", _ruff_sarif("R19" in failing)),
                    now=ran_at,
                )
    today = now.date()
    for offset in range(days + 1):
        trends.rebuild_day(tenant, today - timedelta(days=offset))
    _demo_overrides(tenant)
    return True


def _demo_overrides(tenant: Tenant) -> None:
    from apps.overrides import services as overrides

    developer = Actor(label="dev.demo (via CI token)", token_id=None, user_id=None)
    admin = Actor(label="compliance.demo", user_id=None)
    open_violations = Violation.objects.for_tenant(tenant).filter(status=ViolationStatus.OPEN)
    blocked = open_violations.filter(pull_request__repository="acme/api", rule_id="R01").first()
    if blocked is not None:
        overrides.request_override(
            blocked,
            "False positive: the key is the public AWS example key from the docs, not a secret.",
            7,
            actor=_developer(tenant),
        )
    billing = open_violations.filter(pull_request__repository="acme/billing", rule_id="R06").first()
    if billing is not None:
        override = overrides.request_override(
            billing,
            "Legacy image needs root to bind port 80 until the ingress migration in sprint 48.",
            2,
            actor=developer,
        )
        overrides.approve_override(
            override, actor=admin, reason="Accepted until the ingress migration."
        )
    lint = open_violations.filter(pull_request__repository="acme/web", rule_id="R25").first()
    if lint is not None:
        override = overrides.request_override(
            lint, "Internal refactoring only, nothing user-facing changed.", 14, actor=developer
        )
        overrides.reject_override(
            override, "Refactors still get a one-line changelog entry.", actor=admin
        )


def _developer(tenant: Tenant) -> Actor:
    """A real developer account (viewer role) so that four eyes hold for the demo admin."""
    from apps.tenancy.roles import Role
    from apps.tenancy.services import add_member, ensure_user

    user = ensure_user("dev.demo", email="dev@example.com")
    add_member(tenant=tenant, user=user, role=Role.VIEWER)
    return Actor(user_id=user.pk, label=user.get_username())
