"""Build (idempotently) the daily SLO report of a local date, and optionally send it."""

from datetime import date

from django.core.management.base import CommandError

from apps.core.management.base import SystemCommand
from apps.slo import reports
from apps.slo.management.commands._tenant import tenant_or_error
from apps.slo.services import settings_for
from apps.tenancy.models import Tenant
from apps.tenancy.rls import tenant_context


class Command(SystemCommand):
    help = (
        "Build the daily SLO report for a date (the tenant's local day). Rebuilding the same "
        "data changes nothing; --send sends it if it was not sent for that date yet."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", required=True, help="YYYY-MM-DD, in the tenant's zone")
        parser.add_argument("--tenant", help="tenant slug (default: every tenant)")
        parser.add_argument("--send", action="store_true", help="send it through the channels")

    def handle(self, *args, date: str, tenant: str | None, send: bool, **options):
        try:
            day = _parse_date(date)
        except ValueError as exc:
            raise CommandError(f"--date: {exc}") from exc
        tenants = [tenant_or_error(tenant)] if tenant else list(Tenant.objects.order_by("slug"))
        for target in tenants:
            with tenant_context(target):
                report, changed = reports.generate(target, day)
                kinds = settings_for(target).report_channel_kinds or None
                sent = reports.send(report, kinds) if send else False
            state = "rebuilt (content changed)" if changed else "unchanged"
            self.stdout.write(
                f"{target.slug} {day.isoformat()}: {state}; sha256 {report.sha256[:12]}; "
                f"services {report.content['totals']['services']}; "
                f"{'sent' if sent else 'already sent' if send else 'not sent (no --send)'}"
            )


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date written YYYY-MM-DD.") from None
