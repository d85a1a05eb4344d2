"""Keyset (cursor) pagination: stable under inserts and O(page) at any depth, unlike OFFSET."""

from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 500
