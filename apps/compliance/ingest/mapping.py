"""Map a tool's own rule ids (SARIF ruleId, Conftest namespace) to catalog rule ids.

An entry is (tool, pattern, rule_id). The tool compares case-insensitively ("Bandit" and
"bandit" are one tool) and "*" stands for any tool. The pattern is an exact tool rule id, a
prefix ending in "*" ("S*", "security.*") or "*" alone. Patterns compare case-sensitively,
because SARIF rule ids are case-sensitive ("S105" is not "s105").

The most specific entry wins: on the finding's own tool, an exact pattern, then the longest
matching prefix, then "*"; only then the same three among entries for tool "*".
"""

from __future__ import annotations

from collections.abc import Iterable

ANY = "*"
MAX_PATTERN_LENGTH = 200
_CACHE_LIMIT = 100_000


def validate_pattern(pattern: str) -> str | None:
    """The reason a pattern is unusable, or None if it is fine."""
    if not pattern:
        return "must not be empty"
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"must be at most {MAX_PATTERN_LENGTH} characters"
    if "*" in pattern[:-1]:
        return '"*" may only end a pattern (a prefix match) or stand alone'
    return None


class _ToolRules:
    __slots__ = ("any", "exact", "prefixes")

    def __init__(self) -> None:
        self.exact: dict[str, str] = {}
        self.prefixes: list[tuple[str, str]] = []  # longest first once built
        self.any: str | None = None

    def match(self, tool_rule: str) -> str | None:
        found = self.exact.get(tool_rule)
        if found is not None:
            return found
        for prefix, rule_id in self.prefixes:
            if tool_rule.startswith(prefix):
                return rule_id
        return self.any


class RuleMapper:
    """Resolves (tool, tool rule) to a catalog rule id; results are cached per pair, since a
    run repeats the same few rule ids thousands of times."""

    def __init__(self, entries: Iterable[tuple[str, str, str]]) -> None:
        self._tools: dict[str, _ToolRules] = {}
        seen: dict[tuple[str, str], str] = {}
        for tool, pattern, rule_id in entries:
            problem = validate_pattern(pattern)
            if problem is not None:
                raise ValueError(f"pattern {pattern!r}: {problem}")
            key = (tool.lower(), pattern)
            previous = seen.get(key)
            if previous is not None and previous != rule_id:
                raise ValueError(
                    f"tool {tool!r} pattern {pattern!r} maps to both {previous} and {rule_id}"
                )
            seen[key] = rule_id
            rules = self._tools.get(key[0])
            if rules is None:
                rules = self._tools[key[0]] = _ToolRules()
            if pattern == ANY:
                rules.any = rule_id
            elif pattern.endswith("*"):
                rules.prefixes.append((pattern[:-1], rule_id))
            else:
                rules.exact[pattern] = rule_id
        for rules in self._tools.values():
            rules.prefixes = sorted(set(rules.prefixes), key=lambda p: len(p[0]), reverse=True)
        self._cache: dict[tuple[str, str], str | None] = {}

    def resolve(self, tool: str, tool_rule: str) -> str | None:
        key = (tool, tool_rule)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = None
        own = self._tools.get(tool.lower())
        if own is not None:
            found = own.match(tool_rule)
        if found is None and tool.lower() != ANY:
            fallback = self._tools.get(ANY)
            if fallback is not None:
                found = fallback.match(tool_rule)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found
