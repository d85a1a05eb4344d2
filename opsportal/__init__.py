"""The opsportal Django project.

The Celery app (`opsportal.celery`) is imported by `apps.core` when Django starts, not here, so
that `opsportal.contrib` can be imported by services that use the portal without pulling in the
portal's Celery configuration.
"""
