"""Helpers for compliance tests: post runs through the API as a CI token."""

from __future__ import annotations

import json

import pytest

from apps.tenancy.roles import Role

SHA = "a" * 40


def native(repository="acme/web", pr=1, sha=SHA, tool="policies", results=()) -> dict:
    return {
        "repository": repository,
        "pull_request": pr,
        "commit_sha": sha,
        "tool": tool,
        "results": list(results),
    }


def violation(rule_id: str, path: str = "src/app.py", line: int = 10, message: str = "bad"):
    return {
        "rule_id": rule_id,
        "status": "VIOLATION",
        "file_path": path,
        "line": line,
        "message": message,
    }


def passed(rule_id: str):
    return {"rule_id": rule_id, "status": "PASS"}


def sarif(results: list[dict], tool: str = "ruff", rules: list[dict] | None = None) -> dict:
    return {
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": tool, "rules": rules or []}}, "results": results}],
    }


def sarif_result(rule_id: str, path: str = "src/app.py", line: int = 3, text: str = "finding"):
    return {
        "ruleId": rule_id,
        "level": "error",
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": path},
                    "region": {"startLine": line},
                }
            }
        ],
    }


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Throttle counters live in the cache, keyed by token id; SQLite reuses the ids of rolled
    back rows, so a later test's token would inherit an earlier test's count."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def ci(tenant, make_token, api):
    return api(make_token(tenant, Role.CI))


@pytest.fixture
def post_run(ci):
    def post(body, content_type="application/json", query="", client=None, **headers):
        return (client or ci).post(
            "/api/v1/compliance/runs" + (f"?{query}" if query else ""),
            data=json.dumps(body),
            content_type=content_type,
            **headers,
        )

    return post
