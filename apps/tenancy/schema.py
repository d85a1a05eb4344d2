"""OpenAPI description of the bearer token scheme (loaded by TenancyConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.tenancy.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "ops_<prefix>_<secret>",
            "description": "An API token of one tenant; its role decides what it may do.",
        }
