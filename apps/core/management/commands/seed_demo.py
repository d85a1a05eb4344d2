import secrets

from django.contrib.auth import get_user_model

from apps.audit.services import store_evidence
from apps.core.management.base import SystemCommand
from apps.core.services import enqueue
from apps.tenancy import services
from apps.tenancy.models import ApiToken, Tenant
from apps.tenancy.roles import Role


class Command(SystemCommand):
    help = "Load demo data: a demo tenant, an admin (password printed once), a CI token (once)."

    def add_arguments(self, parser):
        parser.add_argument("--admin", default="admin")

    def handle(self, *args, **options):
        User = get_user_model()
        tenant = Tenant.objects.filter(slug="demo").first() or services.create_tenant(
            slug="demo", name="Demo Platform Team"
        )
        other = Tenant.objects.filter(slug="payments").first() or services.create_tenant(
            slug="payments", name="Payments", time_zone="America/Toronto"
        )
        username = options["admin"]
        if User.objects.filter(username=username).exists():
            self.stdout.write(
                f"admin user {username!r} exists (reset with `manage.py changepassword {username}`)"
            )
        else:
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(username, f"{username}@example.com", password)
            self.stdout.write(f"admin user: {username}  password: {password}  (shown once)")
        admin = User.objects.get(username=username)
        services.add_member(tenant=tenant, user=admin, role=Role.TENANT_ADMIN)
        services.add_member(tenant=other, user=admin, role=Role.TENANT_ADMIN)
        viewer = services.ensure_user("viewer.demo", email="viewer@example.com")
        services.add_member(tenant=tenant, user=viewer, role=Role.VIEWER)

        if not ApiToken.objects.filter(tenant=tenant, name="demo-ci").exists():
            _, plaintext = services.create_api_token(tenant=tenant, name="demo-ci", role=Role.CI)
            self.stdout.write(f"CI token for tenant demo: {plaintext}  (shown once)")
        if not ApiToken.objects.filter(tenant=other, name="payments-operator").exists():
            services.create_api_token(tenant=other, name="payments-operator", role=Role.OPERATOR)
        store_evidence(
            tenant_id=tenant.pk,
            kind="demo.release-evidence",
            period="2026-11-23",
            content={"release": "web-2026.11.23", "tests": 812, "coverage": 0.87},
        )
        enqueue("core.mark_outbox_done", note="demo")
        from apps.alerts.demo import load_demo

        if load_demo(tenant):
            self.stdout.write("alerts demo loaded (the legacy webhook fails on purpose: see DLQ)")
        from apps.compliance.demo import load_demo as load_compliance_demo

        if load_compliance_demo(tenant):
            self.stdout.write("compliance demo loaded: 6 pull requests, 30 days of runs")
        from apps.flags.demo import load_demo as load_flags_demo

        keys = load_flags_demo(tenant)
        if keys:
            self.stdout.write(
                "flags demo loaded; OFREP key for production (shown once): " + keys["production"]
            )
        from apps.slo.demo import load_demo as load_slo_demo

        if load_slo_demo(tenant):
            self.stdout.write("SLO demo loaded: 3 services, 4 SLOs (search is paging), a canary")
        from apps.privacy.demo import load_demo as load_privacy_demo

        count = load_privacy_demo(tenant)
        if count:
            self.stdout.write(
                f"privacy demo loaded: {count} requests (one overdue, one a duplicate, an "
                "erasure done, an objection recorded), consent records and a retention run"
            )
        from apps.drills.demo import load_demo as load_drills_demo

        statuses = load_drills_demo(tenant)
        if statuses:
            self.stdout.write(f"drills demo loaded: restore drill run {len(statuses)}x, {statuses}")
        self.stdout.write("demo data loaded")
