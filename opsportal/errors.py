"""Error handlers outside DRF: problem documents on machine paths, Django's pages elsewhere."""

from django.views import defaults

from opsportal.api.problems import is_api_path, problem_response


def bad_request(request, exception=None):
    if is_api_path(request.path):
        return problem_response(400, str(exception) if exception else None)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if is_api_path(request.path):
        return problem_response(403)
    return defaults.permission_denied(request, exception)


def not_found(request, exception=None):
    if is_api_path(request.path):
        return problem_response(404, f"No resource at {request.path}.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api_path(request.path):
        return problem_response(500, "An unexpected error occurred; it has been logged.")
    return defaults.server_error(request)
