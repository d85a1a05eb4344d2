"""SARIF 2.1.0 logs (`application/sarif+json`): `runs[].results[]`.

What is read, and the defaults SARIF defines for what is missing:

- rule: `ruleId`, else `rule.id`, else the id of the rule that `ruleIndex` / `rule.index` points
  at in `tool.driver.rules` (or in `tool.extensions[n].rules` when `rule.toolComponent` says so).
- kind (default "fail"): "pass" -> PASS; "fail", "open", "review" -> VIOLATION;
  "notApplicable", "informational" -> no finding at all (such results are not validated).
- level: the result's, else the rule's `defaultConfiguration.level`, else "warning" (§3.27.10;
  a result whose kind is not "fail" defaults to "none" instead).
- location: `locations[0].physicalLocation.artifactLocation.uri` (or the `run.artifacts` entry
  its `index` names) and `region.startLine`. File URIs lose their scheme and are URL-decoded; an
  absolute path under `originalUriBaseIds` or an invocation's `workingDirectory` is made relative
  to it; any other absolute path is kept as it is. `uriBaseId` itself is not resolved.
- message: `message.text`, else `message.markdown`, else the rule's `messageStrings[message.id]`,
  else the rule's `shortDescription.text`; `{0}`-style placeholders take `message.arguments`.
- suppressed: a non-empty `suppressions` list with at least one entry not "rejected".
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from .findings import (
    MAX_LINE,
    MAX_MESSAGE_LENGTH,
    MAX_PATH_LENGTH,
    PASS,
    ROOT_PATH,
    VIOLATION,
    ErrorCollector,
    Finding,
    ParsedRun,
    TooManyResults,
    describe,
    file_uri_to_path,
)

SARIF_VERSION = "2.1.0"
LEVELS = frozenset({"none", "note", "warning", "error"})
# kind -> status; None means "not a finding".
KIND_STATUS: dict[str, str | None] = {
    "pass": PASS,
    "fail": VIOLATION,
    "open": VIOLATION,
    "review": VIOLATION,
    "notApplicable": None,
    "informational": None,
}
_COMMIT_RE = re.compile(r"[0-9a-fA-F]{7,64}", re.ASCII)
_REPO_PART_RE = re.compile(r"[A-Za-z0-9_.-]+", re.ASCII)
_PLACEHOLDER_RE = re.compile(r"\{\{|\}\}|\{(\d+)\}")
_URI = ".locations[0].physicalLocation.artifactLocation.uri"
_START_LINE = ".locations[0].physicalLocation.region.startLine"


class _Component:
    """One tool component's rules, indexed once per run."""

    __slots__ = ("by_id", "global_strings", "rules")

    def __init__(self, component: dict[str, Any], path: str, errors: ErrorCollector) -> None:
        self.rules: list[Any] = []
        self.by_id: dict[str, dict[str, Any]] = {}
        strings = component.get("globalMessageStrings")
        self.global_strings = strings if isinstance(strings, dict) else {}
        rules = component.get("rules")
        if rules is None:
            return
        if not isinstance(rules, list):
            errors.add(f"{path}.rules", f"must be a list, got {describe(rules)}")
            return
        self.rules = rules
        for rule in rules:
            if isinstance(rule, dict):
                rule_id = rule.get("id")
                if isinstance(rule_id, str):
                    self.by_id.setdefault(rule_id, rule)

    def rule_at(self, index: int) -> dict[str, Any] | None:
        if 0 <= index < len(self.rules):
            rule = self.rules[index]
            if isinstance(rule, dict):
                return rule
        return None


def parse_sarif(data: Any, *, max_results: int) -> ParsedRun:
    errors = ErrorCollector()
    if not isinstance(data, dict):
        raise errors.fail(ROOT_PATH, f"must be a JSON object (a SARIF log), got {describe(data)}")
    version = data.get("version")
    if version != SARIF_VERSION:
        errors.add("version", f'must be "{SARIF_VERSION}", got {describe(version)}')
    runs = data.get("runs")
    if not isinstance(runs, list):
        message = "is required" if runs is None else f"must be a list, got {describe(runs)}"
        raise errors.fail("runs", message)
    errors.raise_if_any()

    total = 0
    for run in runs:
        if isinstance(run, dict):
            results = run.get("results")
            if isinstance(results, list):
                total += len(results)
    if total > max_results:
        raise TooManyResults(total, max_results)

    drivers = [_driver_name(run) for run in runs]
    tag_tool = len(set(drivers)) > 1
    findings: list[Finding] = []
    for ri, run in enumerate(runs):
        if not isinstance(run, dict):
            errors.add(f"runs[{ri}]", f"must be an object, got {describe(run)}")
            continue
        _parse_run(run, ri, drivers[ri] if tag_tool else None, findings, errors)
    errors.raise_if_any()

    parsed = ParsedRun(findings=findings, tool=drivers[0] if drivers else None)
    if runs and isinstance(runs[0], dict):
        parsed.commit_sha, parsed.repository = _provenance(runs[0])
    return parsed


def _driver_name(run: Any) -> str | None:
    if isinstance(run, dict):
        tool = run.get("tool")
        if isinstance(tool, dict):
            driver = tool.get("driver")
            if isinstance(driver, dict):
                name = driver.get("name")
                if isinstance(name, str) and name:
                    return name
    return None


def _parse_run(
    run: dict[str, Any],
    ri: int,
    tool_tag: str | None,
    findings: list[Finding],
    errors: ErrorCollector,
) -> None:
    rp = f"runs[{ri}]"
    tool = run.get("tool")
    driver = tool.get("driver") if isinstance(tool, dict) else None
    if not isinstance(driver, dict):
        errors.add(f"{rp}.tool.driver", "is required: an object naming the tool")
        return
    if not isinstance(driver.get("name"), str):
        name = driver.get("name")
        errors.add(f"{rp}.tool.driver.name", f"must be a string, got {describe(name)}")
    main = _Component(driver, f"{rp}.tool.driver", errors)
    extensions: list[_Component | None] = []
    extension_names: dict[str, int] = {}
    raw_extensions = tool.get("extensions") if isinstance(tool, dict) else None
    if isinstance(raw_extensions, list):
        for xi, ext in enumerate(raw_extensions):
            if isinstance(ext, dict):
                extensions.append(_Component(ext, f"{rp}.tool.extensions[{xi}]", errors))
                name = ext.get("name")
                if isinstance(name, str):
                    extension_names.setdefault(name, xi)
            else:
                extensions.append(None)

    results = run.get("results")
    if results is None:
        return
    if not isinstance(results, list):
        errors.add(f"{rp}.results", f"must be a list, got {describe(results)}")
        return

    artifacts = run.get("artifacts")
    roots = _source_roots(run)
    path_cache: dict[str, str] = {}
    level_cache: dict[str, str] = {}  # rule id -> default level in the driver
    append = findings.append

    for i, result in enumerate(results):
        if not isinstance(result, dict):
            errors.add(f"{rp}.results[{i}]", f"must be an object, got {describe(result)}")
            continue

        # kind first: notApplicable / informational results are dropped unexamined.
        kind = result.get("kind")
        if kind is None:
            kind = "fail"
            status = VIOLATION
        else:
            status = KIND_STATUS.get(kind, "") if isinstance(kind, str) else ""
            if status is None:
                continue
            if not status:
                errors.add(
                    f"{rp}.results[{i}].kind",
                    f"must be one of {', '.join(KIND_STATUS)}, got {describe(kind)}",
                )
                continue

        # The rule: by id, by reference, or by index into a tool component.
        rule_id = result.get("ruleId")
        rule_index = result.get("ruleIndex", -1)
        component = main
        rule_obj: dict[str, Any] | None = None
        ref = result.get("rule")
        if ref is not None:
            if not isinstance(ref, dict):
                errors.add(f"{rp}.results[{i}].rule", f"must be an object, got {describe(ref)}")
                continue
            if rule_id is None:
                rule_id = ref.get("id")
            if rule_index == -1:
                rule_index = ref.get("index", -1)
            target = ref.get("toolComponent")
            if isinstance(target, dict):
                component = _pick_component(target, extensions, extension_names, main)
                if component is None:
                    errors.add(
                        f"{rp}.results[{i}].rule.toolComponent",
                        "does not name an entry of tool.extensions",
                    )
                    continue
        if rule_index != -1:
            if type(rule_index) is not int or rule_index < -1:
                errors.add(
                    f"{rp}.results[{i}].ruleIndex",
                    f"must be an integer >= -1, got {describe(rule_index)}",
                )
                continue
            rule_obj = component.rule_at(rule_index)
            if rule_obj is None:
                errors.add(
                    f"{rp}.results[{i}].ruleIndex",
                    f"{rule_index} is out of range: the tool component has "
                    f"{len(component.rules)} rules",
                )
                continue
            if rule_id is None:
                rule_id = rule_obj.get("id")
        if type(rule_id) is not str or not rule_id:
            errors.add(
                f"{rp}.results[{i}].ruleId",
                "is required (or rule.id, or a ruleIndex into tool.driver.rules)"
                if rule_id is None
                else f"must be a non-empty string, got {describe(rule_id)}",
            )
            continue

        # Level, defaulting to the rule's configuration.
        level = result.get("level")
        if level is None:
            if kind != "fail":
                level = "none"
            elif component is main and rule_obj is None:
                level = level_cache.get(rule_id)
                if level is None:
                    level = _default_level(main.by_id.get(rule_id))
                    level_cache[rule_id] = level
            else:
                level = _default_level(rule_obj or component.by_id.get(rule_id))
        elif level not in LEVELS:
            errors.add(
                f"{rp}.results[{i}].level",
                f"must be one of none, note, warning, error, got {describe(level)}",
            )
            continue

        # Location and message: subscripts for the usual shape, the checking helpers for the
        # rest (missing parts, wrong types, index-only artifacts, message ids and arguments).
        file_path = ""
        line = None
        locations = result.get("locations")
        if locations:
            try:
                physical = locations[0]["physicalLocation"]
                uri = physical["artifactLocation"]["uri"]
                line = physical["region"]["startLine"]
                usual = type(uri) is str and type(line) is int and 0 < line <= MAX_LINE
            except (KeyError, TypeError):
                usual = False
            if usual:
                file_path = path_cache.get(uri, "")
            if not file_path:
                where = _location(locations, artifacts, roots, path_cache, rp, i, errors)
                if where is None:
                    continue
                file_path, line = where
        elif locations is not None and not isinstance(locations, list):
            errors.add(f"{rp}.results[{i}].locations", f"must be a list, got {describe(locations)}")
            continue

        message = result.get("message")
        try:
            text = message["text"]
            usual = type(text) is str and "arguments" not in message
        except (KeyError, TypeError):
            usual = False
        if not usual:
            text = _message(message, rule_id, rule_obj, component, rp, i, errors)
            if text is None:
                continue
        if len(text) > MAX_MESSAGE_LENGTH:
            text = text[:MAX_MESSAGE_LENGTH]

        context: dict[str, Any] = {"level": level, "kind": kind}
        suppressed = False
        suppressions = result.get("suppressions")
        if suppressions:
            if not isinstance(suppressions, list):
                errors.add(
                    f"{rp}.results[{i}].suppressions",
                    f"must be a list, got {describe(suppressions)}",
                )
                continue
            for suppression in suppressions:
                if isinstance(suppression, dict) and suppression.get("status") != "rejected":
                    suppressed = True
                    context["suppression"] = {
                        k: suppression[k]
                        for k in ("kind", "status", "justification")
                        if k in suppression
                    }
                    break
        elif suppressions is not None and not isinstance(suppressions, list):
            errors.add(
                f"{rp}.results[{i}].suppressions", f"must be a list, got {describe(suppressions)}"
            )
            continue
        partial = result.get("partialFingerprints")
        if partial and isinstance(partial, dict):
            context["partialFingerprints"] = partial
        if tool_tag is not None:
            context["tool"] = tool_tag

        append(Finding(status, None, rule_id, file_path, line, text, context, suppressed))


def _pick_component(
    target: dict[str, Any],
    extensions: list[_Component | None],
    names: dict[str, int],
    main: _Component,
) -> _Component | None:
    """`rule.toolComponent`: an index into (or the name of) an entry of `tool.extensions`."""
    index = target.get("index")
    if type(index) is int and index >= 0:
        return extensions[index] if index < len(extensions) else None
    name = target.get("name")
    if isinstance(name, str):
        found = names.get(name)
        return extensions[found] if found is not None else None
    return main


def _location(
    locations: Any,
    artifacts: Any,
    roots: tuple[str, ...],
    path_cache: dict[str, str],
    rp: str,
    i: int,
    errors: ErrorCollector,
) -> tuple[str, int | None] | None:
    """(file path, start line) from a non-empty `locations`, or None after reporting an error."""
    if not isinstance(locations, list):
        errors.add(f"{rp}.results[{i}].locations", f"must be a list, got {describe(locations)}")
        return None
    location = locations[0]
    if not isinstance(location, dict):
        errors.add(
            f"{rp}.results[{i}].locations[0]", f"must be an object, got {describe(location)}"
        )
        return None
    physical = location.get("physicalLocation")
    if physical is None:
        return "", None  # e.g. only a logicalLocation
    if not isinstance(physical, dict):
        errors.add(
            f"{rp}.results[{i}].locations[0].physicalLocation",
            f"must be an object, got {describe(physical)}",
        )
        return None
    file_path = ""
    artifact = physical.get("artifactLocation")
    uri = None if artifact is None else _artifact_uri(artifact, artifacts)
    if uri is not None:
        if type(uri) is not str:
            errors.add(f"{rp}.results[{i}]{_URI}", f"must be a string, got {describe(uri)}")
            return None
        file_path = path_cache.get(uri, "")
        if not file_path:
            file_path = _uri_to_path(uri, roots)
            if len(file_path) > MAX_PATH_LENGTH:
                errors.add(
                    f"{rp}.results[{i}]{_URI}", f"must be at most {MAX_PATH_LENGTH} characters"
                )
                return None
            path_cache[uri] = file_path
    line = None
    region = physical.get("region")
    if isinstance(region, dict):
        line = region.get("startLine")
        if line is not None and (type(line) is not int or not 1 <= line <= MAX_LINE):
            errors.add(
                f"{rp}.results[{i}]{_START_LINE}",
                f"must be an integer from 1 to {MAX_LINE}, got {describe(line)}",
            )
            return None
    return file_path, line


def _message(
    message: Any,
    rule_id: str,
    rule: dict[str, Any] | None,
    component: _Component,
    rp: str,
    i: int,
    errors: ErrorCollector,
) -> str | None:
    """The result's message text with its fallbacks, or None after reporting an error."""
    text = None
    if message is not None:
        if not isinstance(message, dict):
            errors.add(f"{rp}.results[{i}].message", f"must be an object, got {describe(message)}")
            return None
        text = message.get("text")
        if text is None:
            text = message.get("markdown")
        if text is None and "id" in message:
            text = _message_string(
                message.get("id"), rule or component.by_id.get(rule_id), component
            )
        if text is not None:
            if not isinstance(text, str):
                errors.add(
                    f"{rp}.results[{i}].message.text", f"must be a string, got {describe(text)}"
                )
                return None
            arguments = message.get("arguments")
            if arguments and isinstance(arguments, list):
                text = substitute_arguments(text, arguments)
    if text is None:
        text = _short_description(rule or component.by_id.get(rule_id))
    return text


def _artifact_uri(artifact: Any, artifacts: Any) -> Any:
    """The uri of an artifactLocation, or of the `run.artifacts` entry its index names."""
    if not isinstance(artifact, dict):
        return None
    uri = artifact.get("uri")
    if uri is None:
        index = artifact.get("index")
        if type(index) is int and isinstance(artifacts, list) and 0 <= index < len(artifacts):
            entry = artifacts[index]
            location = entry.get("location") if isinstance(entry, dict) else None
            if isinstance(location, dict):
                uri = location.get("uri")
    return uri


def _uri_to_path(uri: str, roots: tuple[str, ...]) -> str:
    if uri.startswith("file:"):
        path = file_uri_to_path(uri)
    elif "%" in uri:
        path = unquote(uri)
    else:
        path = uri
    for root in roots:
        if path.startswith(root):
            path = path[len(root) :]
            break
    while path.startswith("./"):
        path = path[2:]
    return path


def _source_roots(run: dict[str, Any]) -> tuple[str, ...]:
    """Absolute directories that a result's absolute path can be made relative to, longest
    first, each ending in "/"."""
    uris: list[Any] = []
    bases = run.get("originalUriBaseIds")
    if isinstance(bases, dict):
        uris.extend(b.get("uri") for b in bases.values() if isinstance(b, dict))
    invocations = run.get("invocations")
    if isinstance(invocations, list):
        for invocation in invocations:
            if isinstance(invocation, dict):
                wd = invocation.get("workingDirectory")
                if isinstance(wd, dict):
                    uris.append(wd.get("uri"))
    roots = set()
    for uri in uris:
        if isinstance(uri, str) and uri.startswith("file:"):
            root = file_uri_to_path(uri)
            if len(root) > 1:
                roots.add(root if root.endswith("/") else root + "/")
    return tuple(sorted(roots, key=len, reverse=True))


def _default_level(rule: dict[str, Any] | None) -> str:
    if rule is not None:
        config = rule.get("defaultConfiguration")
        if isinstance(config, dict):
            level = config.get("level")
            if level in LEVELS:
                return level
    return "warning"


def _message_string(
    message_id: Any, rule: dict[str, Any] | None, component: _Component
) -> str | None:
    if not isinstance(message_id, str):
        return None
    strings = rule.get("messageStrings") if rule is not None else None
    entry = strings.get(message_id) if isinstance(strings, dict) else None
    if entry is None:
        entry = component.global_strings.get(message_id)
    if isinstance(entry, dict):
        text = entry.get("text")
        if text is None:
            text = entry.get("markdown")
        if isinstance(text, str):
            return text
    return None


def _short_description(rule: dict[str, Any] | None) -> str:
    if rule is not None:
        description = rule.get("shortDescription")
        if isinstance(description, dict):
            text = description.get("text")
            if isinstance(text, str):
                return text[:MAX_MESSAGE_LENGTH]
    return ""


def substitute_arguments(text: str, arguments: list[Any]) -> str:
    """SARIF §3.11.5: `{n}` takes arguments[n]; `{{` and `}}` are literal braces."""

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if found == "{{":
            return "{"
        if found == "}}":
            return "}"
        index = int(match.group(1))
        return str(arguments[index]) if index < len(arguments) else found

    return _PLACEHOLDER_RE.sub(replace, text)


def _provenance(run: dict[str, Any]) -> tuple[str | None, str | None]:
    """(commit sha, "owner/name") from `versionControlProvenance[0]`, when they look right."""
    provenance = run.get("versionControlProvenance")
    if not isinstance(provenance, list) or not provenance or not isinstance(provenance[0], dict):
        return None, None
    first = provenance[0]
    revision = first.get("revisionId")
    commit = (
        revision.lower() if isinstance(revision, str) and _COMMIT_RE.fullmatch(revision) else None
    )
    uri = first.get("repositoryUri")
    return commit, repository_from_uri(uri) if isinstance(uri, str) else None


def repository_from_uri(uri: str) -> str | None:
    """ "owner/name" from a GitHub or GitLab clone or web URL; None for anything else, including
    GitLab subgroups (group/sub/name), which do not fit the portal's owner/name."""
    uri = uri.strip()
    if uri.startswith("git@"):
        host, _, path = uri[4:].partition(":")
    else:
        try:
            parts = urlsplit(uri)
        except ValueError:
            return None
        host, path = parts.hostname or "", parts.path
    host = host.lower()
    if host.startswith("www."):
        host = host[4:]
    if host != "github.com" and not host.startswith("gitlab."):
        return None
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[:-4]
    segments = path.split("/")
    if len(segments) != 2 or not all(_REPO_PART_RE.fullmatch(s) for s in segments):
        return None
    return f"{segments[0]}/{segments[1]}"
