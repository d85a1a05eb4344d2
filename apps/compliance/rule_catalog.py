"""The rule catalog file: reading, validating and loading it (idempotently, never deleting)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from apps.compliance.models import RULE_ID_PATTERN, Category, Tier

DEFAULT_CATALOG = Path(__file__).resolve().parent / "catalog" / "default_rules.yaml"
FIELDS = ("slug", "name", "description", "tier", "category", "policy_file", "enabled")


class CatalogError(ValueError):
    pass


@dataclass
class LoadReport:
    created: list[str]
    updated: list[str]
    unchanged: list[str]


def read_catalog(path: Path | str) -> list[dict]:
    """Parse and validate a catalog file; every problem is reported with its rule's position."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise CatalogError(f"{path}: expected a mapping with a `rules` list")
    problems: list[str] = []
    seen: set[str] = set()
    rules = []
    for index, entry in enumerate(document["rules"]):
        where = f"rules[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        rule_id = str(entry.get("id", ""))
        if not re.fullmatch(RULE_ID_PATTERN, rule_id):
            problems.append(f"{where}.id: {rule_id!r} is not of the form R01")
        elif rule_id in seen:
            problems.append(f"{where}.id: {rule_id} appears twice")
        seen.add(rule_id)
        for name in ("slug", "name", "tier", "category"):
            if not isinstance(entry.get(name), str) or not entry[name].strip():
                problems.append(f"{where}.{name}: required")
        if entry.get("tier") not in Tier.values:
            problems.append(f"{where}.tier: one of {', '.join(Tier.values)}")
        if entry.get("category") not in Category.values:
            problems.append(f"{where}.category: one of {', '.join(Category.values)}")
        if not isinstance(entry.get("enabled", True), bool):
            problems.append(f"{where}.enabled: true or false")
        rules.append(
            {
                "id": rule_id,
                "slug": str(entry.get("slug", "")).strip(),
                "name": str(entry.get("name", "")).strip(),
                "description": str(entry.get("description") or "").strip(),
                "tier": entry.get("tier"),
                "category": entry.get("category"),
                "policy_file": str(entry.get("policy_file") or ""),
                "enabled": entry.get("enabled", True),
            }
        )
    if problems:
        raise CatalogError(f"{path}: " + "; ".join(problems))
    return rules


def load_catalog(entries: list[dict], rule_model) -> LoadReport:
    """Create missing rules and update changed ones; rules absent from the file are kept.

    `rule_model` is the live model (audited saves) or a migration's historical one.
    """
    report = LoadReport([], [], [])
    existing = {rule.id: rule for rule in rule_model.objects.all()}
    for entry in entries:
        rule = existing.get(entry["id"])
        if rule is None:
            rule_model(**entry).save()
            report.created.append(entry["id"])
            continue
        changed = [name for name in FIELDS if getattr(rule, name) != entry[name]]
        if not changed:
            report.unchanged.append(entry["id"])
            continue
        for name in changed:
            setattr(rule, name, entry[name])
        rule.save()
        report.updated.append(entry["id"])
    return report


def ensure_catalog_after_migrate(**kwargs) -> None:
    """Create catalog rules that are missing (never updates: an operator's edits stay).

    The data migration loads the catalog once; this covers a database that was flushed after
    migrating (test runs, `manage.py flush`), where migrations do not run again.
    """
    from django.db import connection

    from apps.compliance.models import Rule

    if Rule._meta.db_table not in connection.introspection.table_names():
        return
    existing = set(Rule.objects.values_list("id", flat=True))
    missing = [entry for entry in read_catalog(DEFAULT_CATALOG) if entry["id"] not in existing]
    if missing:
        Rule.objects.bulk_create([Rule(**entry) for entry in missing])
