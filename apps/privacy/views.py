"""The signed download link of a privacy package: works without a session (it goes to the
subject), expires after PRIVACY_DOWNLOAD_DAYS, and every download is audited."""

from __future__ import annotations

from pathlib import Path

from django.core import signing
from django.http import FileResponse, HttpResponse
from django.views.decorators.http import require_GET

from apps.audit.services import record_event
from apps.privacy import services


@require_GET
def package_download(request, token: str):
    try:
        target = services.package_for_token(token)
    except signing.SignatureExpired:
        return HttpResponse(
            "This download link has expired.", status=410, content_type="text/plain"
        )
    except (signing.BadSignature, services.PrivacyRequest.DoesNotExist):
        return HttpResponse(
            "This download link is not valid.", status=404, content_type="text/plain"
        )
    from apps.tenancy.rls import all_tenants_context

    if not target.package_path or not Path(target.package_path).is_file():
        return HttpResponse(
            "This package was deleted (retention or erasure); ask for a new one.",
            status=410,
            content_type="text/plain",
        )
    with all_tenants_context():
        record_event(
            tenant_id=target.tenant_id,
            action="privacy_package.downloaded",
            target=target,
            after={"sha256": target.package_sha256},
        )
    response = FileResponse(
        open(target.package_path, "rb"),  # noqa: SIM115 - FileResponse closes it
        as_attachment=True,
        filename=f"privacy-request-{target.pk}.zip",
        content_type="application/zip",
    )
    response["Cache-Control"] = "no-store"
    return response
