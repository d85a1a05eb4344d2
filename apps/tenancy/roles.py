"""The roles of DESIGN.md. `tenant_admin` may do everything within its tenant."""

from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    CI = "ci", "CI pipeline"
    OPERATOR = "operator", "Operator"
    COMPLIANCE_ADMIN = "compliance_admin", "Compliance admin"
    PRIVACY_OFFICER = "privacy_officer", "Privacy officer"
    TENANT_ADMIN = "tenant_admin", "Tenant admin"


ALL_ROLES = frozenset(Role.values)
READ_ROLES = ALL_ROLES
