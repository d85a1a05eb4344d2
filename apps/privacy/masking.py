"""Field specifications of the data map and the masking strategies an erasure applies.

A field is declared with its category (what kind of personal data it is), the strategy an
erasure applies to it, a fixed replacement (strategy `replace`) and, when the law obliges the
organisation to keep it, a legal-hold reason: a held field is reported as retained, never
changed. Pure functions: values in, values out.

Strategies:
- `keep`: not personal, left as it is;
- `delete_row`: the whole row goes, unless another field of the same row is on legal hold (then
  the row stays, the held fields are kept and this field is emptied instead);
- `set_null`: NULL (or the empty string where the column cannot be NULL);
- `replace`: the fixed replacement;
- `keyed_hash`: HMAC-SHA-256 with the tenant's secret (pseudonymisation: equal inputs give equal
  outputs, so joins and counts still work, but the value cannot be recovered without the key);
- `random_string`: a random token (no link survives);
- `truncate_date`: the first day of the month (datetimes keep midnight of that day).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime

from apps.privacy.identity import pseudonym
from apps.privacy.models import Strategy

SECRET = "secret"  # noqa: S105 - the name of a category, not a secret
CATEGORIES = ("identity", "contact", "content", "financial", "preference", "activity", SECRET)
STRATEGIES = tuple(Strategy.values)
_PSEUDONYM = re.compile(r"h:[0-9a-f]{32}")


@dataclass(frozen=True)
class FieldSpec:
    category: str
    strategy: str = Strategy.KEEP
    replacement: str = ""
    legal_hold: str = ""

    @property
    def exported(self) -> bool:
        return self.category != SECRET

    @property
    def changes(self) -> bool:
        return not self.legal_hold and self.strategy != Strategy.KEEP

    def to_dict(self) -> dict:
        return {
            "category": self.category,
            "strategy": self.strategy,
            "replacement": self.replacement,
            "legal_hold": self.legal_hold,
        }


def spec(value) -> FieldSpec:
    """A FieldSpec from code (a category string or a FieldSpec) or from stored JSON."""
    if isinstance(value, FieldSpec):
        return value
    if isinstance(value, str):
        return FieldSpec(category=value)
    return FieldSpec(
        category=value.get("category", "content"),
        strategy=value.get("strategy", Strategy.KEEP),
        replacement=str(value.get("replacement", "") or ""),
        legal_hold=str(value.get("legal_hold", "") or ""),
    )


def validate_specs(columns: object) -> dict[str, str]:
    """Problems with a column -> spec mapping, keyed by `columns.<name>` (empty when valid)."""
    if not isinstance(columns, dict) or not columns:
        return {"columns": "Declare at least one column: {column: {category, strategy}}."}
    errors: dict[str, str] = {}
    for name, raw in columns.items():
        where = f"columns.{name}"
        if not isinstance(raw, dict):
            errors[where] = "Each column needs an object with category and strategy."
            continue
        unknown = set(raw) - {"category", "strategy", "replacement", "legal_hold"}
        if unknown:
            errors[where] = f"Unknown keys {sorted(unknown)}."
            continue
        category = raw.get("category")
        strategy = raw.get("strategy", Strategy.KEEP)
        if category not in CATEGORIES:
            errors[where] = f"Unknown category {category!r}; use one of {', '.join(CATEGORIES)}."
        elif strategy not in STRATEGIES:
            errors[where] = (
                f"Unknown masking strategy {strategy!r}; use one of {', '.join(STRATEGIES)}."
            )
        elif strategy == Strategy.REPLACE and not str(raw.get("replacement", "")):
            errors[where] = "Strategy replace needs a replacement value."
        elif category == SECRET and strategy == Strategy.KEEP and not raw.get("legal_hold"):
            errors[where] = "A secret field must be masked by an erasure (or put on legal hold)."
    return errors


def deletes_row(specs: dict[str, FieldSpec]) -> bool:
    """Whether an erasure deletes the subject's rows of this source outright."""
    held = any(s.legal_hold for s in specs.values())
    return not held and any(s.strategy == Strategy.DELETE_ROW for s in specs.values())


def masked(field: FieldSpec, value, *, key: bytes, nullable: bool):
    """The value an erasure writes for one field (call only for fields that change)."""
    strategy = field.strategy
    if value is None and strategy not in (Strategy.REPLACE, Strategy.RANDOM_STRING):
        return None
    if strategy in (Strategy.SET_NULL, Strategy.DELETE_ROW):
        return None if nullable else _empty(value)
    if strategy == Strategy.REPLACE:
        return field.replacement
    if strategy == Strategy.KEYED_HASH:
        if isinstance(value, str) and _PSEUDONYM.fullmatch(value):
            return value  # already pseudonymised: a replay does not hash it twice
        return pseudonym(key, value)
    if strategy == Strategy.RANDOM_STRING:
        return secrets.token_urlsafe(12)
    if strategy == Strategy.TRUNCATE_DATE:
        if isinstance(value, datetime):
            return value.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if isinstance(value, date):
            return value.replace(day=1)
        if isinstance(value, str) and len(value) >= 10:
            return value[:8] + "01" + value[10:]  # an ISO date written as text
        return None if nullable else _empty(value)
    return value


def _empty(value):
    if isinstance(value, dict | list):
        return type(value)()
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return 0
    return ""
