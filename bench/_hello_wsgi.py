"""The bare-WSGI floor for bench/http_floor.py: the smallest app that answers like /healthz.

Same status, same JSON body and content type as the portal's /healthz, no framework at all.
Served by gunicorn with the same settings as the portal (`gunicorn --pythonpath bench
_hello_wsgi:application`), so the gap between the two is what Django and the portal's middleware
cost per request.
"""

BODY = b'{"status": "ok"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


if __name__ == "__main__":  # `make bench` runs every bench/*.py; this one is a helper
    print("bench/_hello_wsgi.py: the bare WSGI app bench/http_floor.py serves, nothing to run")
