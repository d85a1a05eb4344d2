"""JSON log support: every record carries the current request id."""

import logging

from opsportal.context import current_request_id


class RequestIDFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True
