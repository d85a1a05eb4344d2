"""The compliance-run parsers: native JSON, SARIF 2.1.0 and Conftest JSON, the rule mapper and
finding fingerprints. No database: the module under test is pure Python.

Samples in samples/: ruff.sarif (ruff 0.x `--output-format sarif`), bandit.sarif
(`bandit -f sarif`, bandit 1.9) and semgrep.sarif (semgrep 1.x `--sarif`) are real tool output
trimmed to a few results, with the checkout path replaced by a CI runner's; semgrep.sarif has one
hand-added `kind: "pass"` result (semgrep writes none). conftest.json follows conftest's
`CheckResult` JSON shape, written by hand.
"""

from __future__ import annotations

import copy
import gc
import json
from pathlib import Path
from typing import Any

import pytest

from apps.compliance.ingest import (
    PASS,
    SUPPORTED_CONTENT_TYPES,
    VIOLATION,
    ParsedRun,
    RuleMapper,
    RunFormatError,
    TooManyResults,
    UnsupportedFormat,
    fingerprint,
    normalize_message,
    parse_run,
    validate_pattern,
)
from apps.compliance.ingest import mapping as mapping_module
from apps.compliance.ingest.conftest_json import split_rule_prefix
from apps.compliance.ingest.sarif import repository_from_uri

SAMPLES = Path(__file__).parent / "samples"
NATIVE = "application/json"
SARIF = "application/sarif+json"
CONFTEST = "application/vnd.conftest+json"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def errors_of(content_type: str, data: Any) -> dict[str, list[str]]:
    with pytest.raises(RunFormatError) as caught:
        parse_run(content_type, data)
    return caught.value.errors


def by_rule(run: ParsedRun) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for finding in run.findings:
        grouped.setdefault(finding.tool_rule, []).append(finding)
    return grouped


# --- native -----------------------------------------------------------------------------------


def native_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "repository": "acme/shop",
        "pull_request": 12,
        "commit_sha": "ABCDEF1234567",
        "tool": "custom-checker",
        "results": [
            {
                "rule_id": "R01",
                "status": "VIOLATION",
                "file_path": "./app/settings.py",
                "line": 3,
                "message": "DEBUG is on",
                "context": {"setting": "DEBUG"},
            },
            {"rule_id": "R02", "status": "PASS"},
        ],
    }
    body.update(overrides)
    return body


def test_native_body_becomes_findings_and_run_fields() -> None:
    run = parse_run(NATIVE, native_body())

    assert (run.repository, run.pull_request, run.tool) == ("acme/shop", 12, "custom-checker")
    assert run.commit_sha == "abcdef1234567"
    first, second = run.findings
    assert (first.status, first.rule_id, first.tool_rule) == (VIOLATION, "R01", "")
    assert (first.file_path, first.line, first.message) == ("app/settings.py", 3, "DEBUG is on")
    assert first.context == {"setting": "DEBUG"}
    assert first.suppressed is False
    assert (second.status, second.rule_id) == (PASS, "R02")
    assert (second.file_path, second.line, second.message, second.context) == ("", None, "", {})


def test_native_vendor_content_type_is_the_same_format() -> None:
    run = parse_run("application/vnd.opsportal.run+json", native_body())
    assert [f.rule_id for f in run.findings] == ["R01", "R02"]


def test_native_run_fields_may_be_absent() -> None:
    run = parse_run(NATIVE, {"results": [{"rule_id": "R05", "status": "PASS"}]})
    assert (run.repository, run.pull_request, run.commit_sha, run.tool) == (None,) * 4
    assert len(run.findings) == 1


def test_native_lowercase_status_is_rejected_at_its_result_path() -> None:
    body = native_body()
    body["results"][1]["status"] = "pass"
    errors = errors_of(NATIVE, body)
    assert list(errors) == ["results[1].status"]
    assert "'pass'" in errors["results[1].status"][0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rule_id", "R7"),
        ("rule_id", "r07"),
        ("rule_id", "R\uff107"),  # a full-width digit
        ("rule_id", 7),
        ("status", None),
        ("file_path", 12),
        ("file_path", "a" * 1001),
        ("line", 0),
        ("line", True),
        ("line", "3"),
        ("message", ["x"]),
        ("context", "x"),
    ],
)
def test_native_invalid_result_field_is_reported_at_its_path(field: str, value: Any) -> None:
    body = native_body()
    body["results"][0][field] = value
    assert list(errors_of(NATIVE, body)) == [f"results[0].{field}"]


def test_native_missing_rule_id_is_reported() -> None:
    body = native_body()
    del body["results"][1]["rule_id"]
    assert errors_of(NATIVE, body) == {"results[1].rule_id": ["is required"]}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("repository", "acme"),
        ("repository", "acme/shop/extra"),
        ("pull_request", 0),
        ("pull_request", True),
        ("commit_sha", "abc12"),
        ("commit_sha", "g" * 40),
        ("commit_sha", "a" * 65),
        ("tool", ""),
        ("tool", "x" * 101),
        ("results", {"rule_id": "R01"}),
    ],
)
def test_native_invalid_run_field_is_reported_at_its_path(field: str, value: Any) -> None:
    assert list(errors_of(NATIVE, native_body(**{field: value}))) == [field]


def test_native_body_must_be_an_object() -> None:
    assert list(errors_of(NATIVE, [native_body()])) == ["$"]


def test_native_results_are_required() -> None:
    body = native_body()
    del body["results"]
    assert list(errors_of(NATIVE, body)) == ["results"]


def test_native_non_object_result_is_reported() -> None:
    assert list(errors_of(NATIVE, native_body(results=["R01"]))) == ["results[0]"]


def test_long_message_is_truncated_to_2000_characters() -> None:
    body = native_body()
    body["results"][0]["message"] = "x" * 2500
    assert len(parse_run(NATIVE, body).findings[0].message) == 2000


def test_error_collection_stops_after_twenty_and_summary_names_the_first_path() -> None:
    results = [{"rule_id": "R01", "status": "bad"} for _ in range(30)]
    with pytest.raises(RunFormatError) as caught:
        parse_run(NATIVE, {"results": results})
    error = caught.value
    assert sum(len(messages) for messages in error.errors.values()) == 20
    assert "results[19].status" in error.errors
    assert "results[20].status" not in error.errors
    assert error.truncated is True
    assert str(error).startswith("results[0].status: must be")


def test_a_single_error_is_summarised_without_a_count() -> None:
    body = native_body()
    body["results"][0]["line"] = -1
    with pytest.raises(RunFormatError) as caught:
        parse_run(NATIVE, body)
    assert str(caught.value) == "results[0].line: must be an integer from 1 to 2147483647, got -1"


# --- SARIF --------------------------------------------------------------------------------------


def test_ruff_sarif_sample_gives_one_finding_per_result() -> None:
    run = parse_run(SARIF, sample("ruff.sarif"))

    assert run.tool == "ruff"
    assert [f.tool_rule for f in run.findings] == ["S301", "S105", "S105", "S602"]
    assert {f.status for f in run.findings} == {VIOLATION}
    assert {f.rule_id for f in run.findings} == {None}
    pickle = run.findings[0]
    # ruff writes absolute file URIs; the scheme goes and %20 is decoded.
    assert pickle.file_path == "/home/runner/work/shop/shop/app/my file.py"
    assert pickle.line == 5
    assert pickle.context == {"level": "error", "kind": "fail"}
    assert run.findings[1].message == 'Possible hardcoded password assigned to: "SECRET_KEY"'


def test_bandit_sarif_sample_defaults_a_missing_level_to_warning() -> None:
    run = parse_run(SARIF, sample("bandit.sarif"))

    assert run.tool == "Bandit"
    rules = by_rule(run)
    assert set(rules) == {"B403", "B301", "B105", "B602"}
    # bandit leaves out `level` for medium severity and its rules have no defaultConfiguration.
    assert rules["B301"][0].context["level"] == "warning"
    assert rules["B403"][0].context["level"] == "note"
    assert rules["B602"][0].context["level"] == "error"
    assert rules["B301"][0].file_path == "app/my file.py"
    assert [f.line for f in rules["B105"]] == [3, 4]


def test_semgrep_sarif_sample_takes_level_from_the_rule_and_marks_suppressions() -> None:
    run = parse_run(SARIF, sample("semgrep.sarif"))

    assert run.tool == "Semgrep OSS"
    shell = by_rule(run)["subprocess-shell-true"]
    assert [(f.line, f.suppressed) for f in shell] == [(8, False), (17, True)]
    assert shell[1].context["suppression"] == {"kind": "inSource"}
    assert {f.context["level"] for f in shell} == {"warning"}
    eval_failure, eval_pass = by_rule(run)["python-eval-use"]
    assert (eval_failure.status, eval_failure.context["level"]) == (VIOLATION, "error")
    assert eval_failure.message == 'Detected use of eval() on "x". This can lead to code injection.'
    assert (eval_pass.status, eval_pass.file_path, eval_pass.line) == (PASS, "app/views.py", None)


def sarif_doc(results: list[Any], rules: list[Any] | None = None, **run: Any) -> dict[str, Any]:
    driver: dict[str, Any] = {"name": "checker"}
    if rules is not None:
        driver["rules"] = rules
    return {"version": "2.1.0", "runs": [{"tool": {"driver": driver}, "results": results, **run}]}


def test_sarif_level_comes_from_result_then_rule_default_then_warning() -> None:
    rules = [
        {"id": "A1", "defaultConfiguration": {"level": "note"}},
        {"id": "A2"},
        {"id": "A3", "defaultConfiguration": {"level": "error"}},
    ]
    results = [
        {"ruleId": "A1", "message": {"text": "m"}},
        {"ruleId": "A2", "message": {"text": "m"}},
        {"ruleId": "A1", "level": "error", "message": {"text": "m"}},
        {"ruleIndex": 2, "message": {"text": "m"}},
        {"ruleId": "UNKNOWN", "message": {"text": "m"}},
    ]
    run = parse_run(SARIF, sarif_doc(results, rules))
    levels = [(f.tool_rule, f.context["level"]) for f in run.findings]
    assert levels == [
        ("A1", "note"),
        ("A2", "warning"),
        ("A1", "error"),
        ("A3", "error"),
        ("UNKNOWN", "warning"),
    ]


def test_sarif_kind_decides_status_and_skips_non_findings() -> None:
    results = [
        {"ruleId": f"K{n}", "kind": kind, "message": {"text": kind}}
        for n, kind in enumerate(
            ["pass", "fail", "open", "review", "notApplicable", "informational"]
        )
    ]
    run = parse_run(SARIF, sarif_doc(results))
    assert [(f.tool_rule, f.status) for f in run.findings] == [
        ("K0", PASS),
        ("K1", VIOLATION),
        ("K2", VIOLATION),
        ("K3", VIOLATION),
    ]
    # A result that is not a failure has no level of its own (SARIF §3.27.10).
    assert run.findings[0].context == {"level": "none", "kind": "pass"}


def test_sarif_unknown_kind_is_rejected() -> None:
    results = [{"ruleId": "X", "kind": "broken", "message": {"text": "m"}}]
    assert list(errors_of(SARIF, sarif_doc(results))) == ["runs[0].results[0].kind"]


def test_sarif_suppressions_suppress_unless_all_are_rejected() -> None:
    results = [
        {"ruleId": "X", "message": {"text": "a"}, "suppressions": [{"kind": "external"}]},
        {
            "ruleId": "X",
            "message": {"text": "b"},
            "suppressions": [{"kind": "inSource", "status": "rejected"}],
        },
        {
            "ruleId": "X",
            "message": {"text": "c"},
            "suppressions": [
                {"kind": "inSource", "status": "rejected"},
                {"kind": "external", "status": "accepted", "justification": "false positive"},
            ],
        },
        {"ruleId": "X", "message": {"text": "d"}, "suppressions": []},
    ]
    run = parse_run(SARIF, sarif_doc(results))
    assert [f.suppressed for f in run.findings] == [True, False, True, False]
    assert run.findings[2].context["suppression"] == {
        "kind": "external",
        "status": "accepted",
        "justification": "false positive",
    }


def test_sarif_rule_id_falls_back_to_rule_reference_and_rule_index() -> None:
    doc = sarif_doc(
        [
            {"rule": {"id": "BY-REF"}, "message": {"text": "m"}},
            {"ruleIndex": 1, "message": {"text": "m"}},
            {"rule": {"index": 0}, "message": {"text": "m"}},
            {"rule": {"index": 0, "toolComponent": {"index": 0}}, "message": {"text": "m"}},
            {"rule": {"index": 0, "toolComponent": {"name": "pack"}}, "message": {"text": "m"}},
        ],
        rules=[{"id": "D0"}, {"id": "D1"}],
    )
    doc["runs"][0]["tool"]["extensions"] = [
        {"name": "pack", "rules": [{"id": "EXT0", "defaultConfiguration": {"level": "note"}}]}
    ]
    run = parse_run(SARIF, doc)
    assert [f.tool_rule for f in run.findings] == ["BY-REF", "D1", "D0", "EXT0", "EXT0"]
    assert run.findings[3].context["level"] == "note"


def test_sarif_result_without_any_rule_id_is_rejected_at_its_path() -> None:
    doc = sarif_doc([{"ruleId": "OK", "message": {"text": "m"}}, {"message": {"text": "m"}}])
    errors = errors_of(SARIF, doc)
    assert list(errors) == ["runs[0].results[1].ruleId"]


def test_sarif_rule_index_out_of_range_is_rejected() -> None:
    doc = sarif_doc([{"ruleIndex": 3, "message": {"text": "m"}}], rules=[{"id": "A"}])
    assert list(errors_of(SARIF, doc)) == ["runs[0].results[0].ruleIndex"]


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d.update(version="2.0.0"), "version"),
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.update(runs={}), "runs"),
        (lambda d: d["runs"].append("run"), "runs[1]"),
        (lambda d: d["runs"][0]["tool"].pop("driver"), "runs[0].tool.driver"),
        (lambda d: d["runs"][0].update(results={}), "runs[0].results"),
        (lambda d: d["runs"][0]["results"].append(7), "runs[0].results[4]"),
        (
            lambda d: d["runs"][0]["results"][0]["locations"][0]["physicalLocation"][
                "artifactLocation"
            ].update(uri=5),
            "runs[0].results[0].locations[0].physicalLocation.artifactLocation.uri",
        ),
        (
            lambda d: d["runs"][0]["results"][0]["locations"][0]["physicalLocation"][
                "region"
            ].update(startLine=0),
            "runs[0].results[0].locations[0].physicalLocation.region.startLine",
        ),
        (
            lambda d: d["runs"][0]["results"][0].update(locations={}),
            "runs[0].results[0].locations",
        ),
        (lambda d: d["runs"][0]["results"][0].update(level="fatal"), "runs[0].results[0].level"),
        (
            lambda d: d["runs"][0]["results"][0].update(message="text"),
            "runs[0].results[0].message",
        ),
        (
            lambda d: d["runs"][0]["results"][0].update(suppressions={}),
            "runs[0].results[0].suppressions",
        ),
    ],
)
def test_sarif_malformed_document_is_reported_at_its_path(mutate: Any, path: str) -> None:
    doc = copy.deepcopy(sample("ruff.sarif"))
    mutate(doc)
    assert path in errors_of(SARIF, doc)


def test_sarif_document_must_be_an_object() -> None:
    assert list(errors_of(SARIF, [])) == ["$"]


def test_sarif_result_without_location_has_no_path_or_line() -> None:
    results = [
        {"ruleId": "X", "message": {"text": "m"}},
        {"ruleId": "X", "message": {"text": "m"}, "locations": [{"logicalLocations": []}]},
    ]
    run = parse_run(SARIF, sarif_doc(results))
    assert [(f.file_path, f.line) for f in run.findings] == [("", None), ("", None)]


def test_sarif_paths_are_normalized_and_made_relative_to_the_checkout() -> None:
    def at(uri: str, **extra: Any) -> dict[str, Any]:
        location = {"physicalLocation": {"artifactLocation": {"uri": uri, **extra}}}
        return {"ruleId": "X", "message": {"text": "m"}, "locations": [location]}

    doc = sarif_doc(
        [
            at("file:///work/repo/src/a%20b.py"),
            at("./src/c.py", uriBaseId="%SRCROOT%"),
            at("file:///elsewhere/d.py"),
            at("file://localhost/work/repo/e.py"),
            at("src/f%5Bx%5D.py"),
        ],
        originalUriBaseIds={"%SRCROOT%": {"uri": "file:///work/repo/"}},
    )
    doc["runs"][0]["results"].append(
        {
            "ruleId": "X",
            "message": {"text": "m"},
            "locations": [{"physicalLocation": {"artifactLocation": {"index": 0}}}],
        }
    )
    doc["runs"][0]["artifacts"] = [{"location": {"uri": "src/g.py"}}]
    run = parse_run(SARIF, doc)
    assert [f.file_path for f in run.findings] == [
        "src/a b.py",
        "src/c.py",
        "/elsewhere/d.py",
        "e.py",
        "src/f[x].py",
        "src/g.py",
    ]


def test_sarif_working_directory_of_an_invocation_is_a_checkout_root() -> None:
    location = {"physicalLocation": {"artifactLocation": {"uri": "file:///ci/build/app/x.py"}}}
    doc = sarif_doc(
        [{"ruleId": "X", "message": {"text": "m"}, "locations": [location]}],
        invocations=[
            {"executionSuccessful": True, "workingDirectory": {"uri": "file:///ci/build"}}
        ],
    )
    assert parse_run(SARIF, doc).findings[0].file_path == "app/x.py"


def test_sarif_message_falls_back_to_markdown_message_strings_and_rule_description() -> None:
    rules = [
        {
            "id": "A",
            "shortDescription": {"text": "Rule A in short"},
            "messageStrings": {"default": {"text": "Variable '{0}' is {1} {{literally}}"}},
        }
    ]
    results = [
        {"ruleId": "A", "message": {"markdown": "**bold**"}},
        {"ruleId": "A", "message": {"id": "default", "arguments": ["x", "unused"]}},
        {"ruleId": "A", "message": {"text": "{0} has {2}", "arguments": ["y"]}},
        {"ruleId": "A"},
    ]
    run = parse_run(SARIF, sarif_doc(results, rules))
    assert [f.message for f in run.findings] == [
        "**bold**",
        "Variable 'x' is unused {literally}",
        "y has {2}",
        "Rule A in short",
    ]


def test_sarif_partial_fingerprints_are_kept_in_context() -> None:
    results = [
        {
            "ruleId": "X",
            "message": {"text": "m"},
            "partialFingerprints": {"primaryLocationLineHash": "39fa2ee980eb94b0:1"},
        }
    ]
    context = parse_run(SARIF, sarif_doc(results)).findings[0].context
    assert context["partialFingerprints"] == {"primaryLocationLineHash": "39fa2ee980eb94b0:1"}


def test_sarif_runs_of_different_tools_tag_each_finding_with_its_tool() -> None:
    ruff = sample("ruff.sarif")
    bandit = sample("bandit.sarif")
    combined = {"version": "2.1.0", "runs": ruff["runs"] + bandit["runs"]}
    run = parse_run(SARIF, combined)
    assert run.tool == "ruff"
    tools = {f.tool_rule[0]: f.context["tool"] for f in run.findings}
    assert tools == {"S": "ruff", "B": "Bandit"}

    twice = {"version": "2.1.0", "runs": ruff["runs"] + copy.deepcopy(ruff["runs"])}
    assert all("tool" not in f.context for f in parse_run(SARIF, twice).findings)


def test_sarif_version_control_provenance_gives_commit_and_repository() -> None:
    doc = sarif_doc(
        [],
        versionControlProvenance=[
            {
                "repositoryUri": "https://github.com/Acme/shop.git",
                "revisionId": "0123456789ABCDEF0123456789ABCDEF01234567",
            }
        ],
    )
    run = parse_run(SARIF, doc)
    assert run.commit_sha == "0123456789abcdef0123456789abcdef01234567"
    assert run.repository == "Acme/shop"


def test_sarif_provenance_that_does_not_fit_is_left_out() -> None:
    doc = sarif_doc(
        [],
        versionControlProvenance=[
            {"repositoryUri": "https://bitbucket.org/a/b", "revisionId": "r12"}
        ],
    )
    run = parse_run(SARIF, doc)
    assert (run.commit_sha, run.repository) == (None, None)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://github.com/acme/shop", "acme/shop"),
        ("git@github.com:acme/shop.git", "acme/shop"),
        ("https://gitlab.example.com/team/svc/", "team/svc"),
        ("https://gitlab.com/group/sub/svc", None),
        ("https://example.com/acme/shop", None),
        ("not a url", None),
    ],
)
def test_repository_is_taken_from_github_and_gitlab_urls_only(
    uri: str, expected: str | None
) -> None:
    assert repository_from_uri(uri) == expected


# --- Conftest -----------------------------------------------------------------------------------


def test_conftest_sample_maps_failures_warnings_exceptions_and_successes() -> None:
    run = parse_run(CONFTEST, sample("conftest.json"))

    assert run.tool == "conftest"
    summary = [
        (f.status, f.rule_id, f.tool_rule, f.file_path, f.context.get("conftest"), f.suppressed)
        for f in run.findings
    ]
    deployment = "deploy/k8s/deployment.yaml"
    assert summary == [
        (VIOLATION, "R03", "main", deployment, "failure", False),
        (VIOLATION, "R07", "main", deployment, "failure", False),
        (VIOLATION, None, "main", deployment, "failure", False),
        (VIOLATION, "R11", "main", deployment, "warning", False),
        (VIOLATION, None, "main", deployment, "exception", True),
        (PASS, None, "main", deployment, None, False),
        (VIOLATION, "R02", "security.terraform", "terraform/main.tf", "failure", False),
        (PASS, None, "security.terraform", "terraform/main.tf", None, False),
        (PASS, None, "main", "deploy/k8s/service.yaml", None, False),
    ]
    messages = [f.message for f in run.findings]
    assert messages[1] == "Deployment web must set resources.limits.memory"
    assert messages[3] == "Deployment web has no readinessProbe"
    assert messages[4] == 'data.main.exception[_][_] == "run_as_root"'
    assert messages[6] == "S3 bucket logs must block public access"
    assert [messages[5], messages[7]] == ["5 policies passed", "1 policy passed"]
    assert run.findings[5].context == {"successes": 5}
    assert run.findings[3].line == 12
    assert run.findings[0].line is None
    assert run.findings[0].context["metadata"]["severity"] == "high"


@pytest.mark.parametrize(
    ("metadata", "msg", "expected_id", "expected_msg"),
    [
        ({"rule_id": "R03", "rule": "R04", "id": "R05"}, "R07: text", "R03", "text"),
        ({"rule": "R04", "id": "R05"}, "R07: text", "R04", "text"),
        ({"id": "R05"}, "R07: text", "R05", "text"),
        ({"rule_id": "K8S-001"}, "R07: text", "R07", "text"),
        ({"rule_id": "K8S-001", "id": "pod-security"}, "text", None, "text"),
        ({}, "R07 - text", "R07", "text"),
        ({}, "[R07] text", "R07", "text"),
        (None, "plain text", None, "plain text"),
    ],
)
def test_conftest_rule_id_comes_from_metadata_then_message_prefix(
    metadata: dict[str, Any] | None, msg: str, expected_id: str | None, expected_msg: str
) -> None:
    doc = [{"filename": "f.yaml", "namespace": "main", "failures": [{"msg": msg}]}]
    if metadata is not None:
        doc[0]["failures"][0]["metadata"] = metadata
    finding = parse_run(CONFTEST, doc).findings[0]
    assert (finding.rule_id, finding.message) == (expected_id, expected_msg)


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        ("R07:no space", ("R07", "no space")),
        ("  R12 \u2013 en dash", ("R12", "en dash")),
        ("R070: four digits", (None, "R070: four digits")),
        ("R07-x is an id", (None, "R07-x is an id")),
        ("[R7] short", (None, "[R7] short")),
        ("r07: lowercase", (None, "r07: lowercase")),
        ("R07", (None, "R07")),
    ],
)
def test_conftest_message_prefix_is_only_taken_in_its_exact_forms(
    msg: str, expected: tuple[str | None, str]
) -> None:
    assert split_rule_prefix(msg) == expected


def test_conftest_null_and_missing_keys_are_tolerated() -> None:
    doc = [
        {"filename": None, "namespace": None, "successes": None, "failures": None},
        {"failures": [{"msg": "m", "metadata": None}]},
    ]
    run = parse_run(CONFTEST, doc)
    assert [(f.file_path, f.tool_rule, f.message) for f in run.findings] == [("", "", "m")]


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ([{"failures": [{"msg": "a"}, {"metadata": {}}]}], "[0].failures[1].msg"),
        ([{"failures": [{"msg": "a"}, {"msg": 5}]}], "[0].failures[1].msg"),
        ([{}, "file"], "[1]"),
        ([{"successes": "3"}], "[0].successes"),
        ([{"successes": -1}], "[0].successes"),
        ([{"warnings": {"msg": "a"}}], "[0].warnings"),
        ([{"exceptions": ["a"]}], "[0].exceptions[0]"),
        ([{"failures": [{"msg": "a", "metadata": "x"}]}], "[0].failures[0].metadata"),
        ([{"filename": 3}], "[0].filename"),
        ({"filename": "a"}, "$"),
    ],
)
def test_conftest_malformed_output_is_reported_at_its_path(doc: Any, path: str) -> None:
    assert list(errors_of(CONFTEST, doc)) == [path]


# --- dispatch and limits ------------------------------------------------------------------------


def test_content_type_parameters_and_case_are_ignored() -> None:
    run = parse_run("Application/SARIF+JSON; charset=utf-8", sample("semgrep.sarif"))
    assert run.tool == "Semgrep OSS"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/sarif", "application/vnd.sarif+json", "", None],
)
def test_unsupported_content_type_names_the_supported_ones(content_type: str | None) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        parse_run(content_type, {})  # type: ignore[arg-type]
    assert caught.value.content_type == content_type
    for supported in SUPPORTED_CONTENT_TYPES:
        assert supported in str(caught.value)


def test_supported_content_types_cover_all_three_formats() -> None:
    assert set(SUPPORTED_CONTENT_TYPES) == {
        "application/json",
        "application/vnd.opsportal.run+json",
        "application/sarif+json",
        "application/vnd.conftest+json",
    }


@pytest.mark.parametrize(
    ("content_type", "name", "count"),
    [(SARIF, "ruff.sarif", 4), (SARIF, "semgrep.sarif", 4), (CONFTEST, "conftest.json", 9)],
)
def test_too_many_results_reports_count_and_limit(content_type: str, name: str, count: int) -> None:
    with pytest.raises(TooManyResults) as caught:
        parse_run(content_type, sample(name), max_results=count - 1)
    assert (caught.value.count, caught.value.limit) == (count, count - 1)
    assert len(parse_run(content_type, sample(name), max_results=count).findings) <= count


def test_too_many_native_results_is_raised_before_any_is_validated() -> None:
    body = {"results": [{"rule_id": "bad"}] * 11}
    with pytest.raises(TooManyResults) as caught:
        parse_run(NATIVE, body, max_results=10)
    assert (caught.value.count, caught.value.limit) == (11, 10)


def test_too_many_sarif_results_are_counted_across_runs() -> None:
    doc = sample("bandit.sarif")
    doc["runs"].append(copy.deepcopy(doc["runs"][0]))
    with pytest.raises(TooManyResults) as caught:
        parse_run(SARIF, doc, max_results=9)
    assert caught.value.count == 10


def test_parse_run_restores_the_garbage_collector_afterwards() -> None:
    assert gc.isenabled()
    parse_run(NATIVE, native_body())
    assert gc.isenabled()
    with pytest.raises(RunFormatError):
        parse_run(NATIVE, {"results": "x"})
    assert gc.isenabled()
    gc.disable()
    try:
        parse_run(NATIVE, native_body())
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- rule mapping -------------------------------------------------------------------------------

ENTRIES = [
    ("ruff", "S105", "R01"),
    ("ruff", "S1*", "R02"),
    ("ruff", "S*", "R03"),
    ("ruff", "*", "R04"),
    ("*", "S105", "R05"),
    ("*", "E501", "R08"),
    ("*", "*", "R06"),
    ("Bandit", "B*", "R07"),
    ("conftest", "security.*", "R09"),
]


@pytest.mark.parametrize(
    ("tool", "tool_rule", "expected"),
    [
        ("ruff", "S105", "R01"),  # exact beats every prefix
        ("ruff", "S106", "R02"),  # longer prefix beats shorter
        ("ruff", "S602", "R03"),  # shorter prefix beats "*"
        ("ruff", "E501", "R04"),  # the tool's own "*" beats an exact entry for any tool
        ("RUFF", "S105", "R01"),  # tool names compare case-insensitively
        ("ruff", "s105", "R04"),  # rule ids do not
        ("bandit", "B105", "R07"),
        ("bandit", "S105", "R05"),  # nothing on bandit matches: tool "*", exact
        ("semgrep", "anything", "R06"),  # tool "*", "*"
        ("conftest", "security.k8s", "R09"),
        ("conftest", "security", "R06"),  # "security.*" needs the dot
    ],
)
def test_mapper_picks_the_most_specific_entry(tool: str, tool_rule: str, expected: str) -> None:
    assert RuleMapper(ENTRIES).resolve(tool, tool_rule) == expected


def test_mapper_without_a_match_returns_none() -> None:
    mapper = RuleMapper([("ruff", "S*", "R03")])
    assert mapper.resolve("ruff", "E501") is None
    assert mapper.resolve("bandit", "S105") is None
    assert mapper.resolve("ruff", "S105") == "R03"


def test_mapper_caches_per_tool_and_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    mapper = RuleMapper(ENTRIES)
    calls: list[str] = []
    original = mapping_module._ToolRules.match

    def counting(self: Any, tool_rule: str) -> str | None:
        calls.append(tool_rule)
        return original(self, tool_rule)

    monkeypatch.setattr(mapping_module._ToolRules, "match", counting)
    answers = [mapper.resolve("ruff", "S105") for _ in range(3)]
    assert answers == ["R01"] * 3
    assert calls == ["S105"]
    # The same rule id on another tool is its own cache entry, not ruff's answer.
    assert mapper.resolve("bandit", "S105") == "R05"
    assert mapper.resolve("ruff", "S105") == "R01"
    # A miss is cached too.
    plain = RuleMapper([("ruff", "S*", "R03")])
    calls.clear()
    assert [plain.resolve("ruff", "E1") for _ in range(2)] == [None, None]
    assert calls == ["E1"]


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        ("S105", True),
        ("S*", True),
        ("security.*", True),
        ("*", True),
        ("x" * 200, True),
        ("", False),
        ("x" * 201, False),
        ("*S", False),
        ("S*1", False),
        ("**", False),
    ],
)
def test_validate_pattern_allows_star_only_at_the_end(pattern: str, ok: bool) -> None:
    assert (validate_pattern(pattern) is None) is ok


def test_mapper_rejects_bad_patterns_and_conflicting_entries() -> None:
    with pytest.raises(ValueError, match="pattern"):
        RuleMapper([("ruff", "S*1", "R01")])
    with pytest.raises(ValueError, match="both R01 and R02"):
        RuleMapper([("ruff", "S1", "R01"), ("RUFF", "S1", "R02")])
    assert RuleMapper([("ruff", "S1", "R01"), ("ruff", "S1", "R01")]).resolve("ruff", "S1") == "R01"


# --- fingerprints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("Hardcoded password on line 12", "Hardcoded password on line 40"),
        ("Duplicated block, lines 3-5", "Duplicated block, lines 30-32"),
        ("see app/settings.py:12:5 for the value", "see app/settings.py:80:1 for the value"),
        ("Unused import (12:5)", "Unused import (14:1)"),
        ("Defined at L12", "Defined at L44"),
        ("Line 7, column 3: tab found", "line 9, column 1: tab  found"),
    ],
)
def test_fingerprint_is_stable_when_only_the_line_moves(before: str, after: str) -> None:
    assert fingerprint("R01", "app/settings.py", before) == fingerprint(
        "R01", "app/settings.py", after
    )


def test_fingerprint_differs_when_a_cve_id_changes() -> None:
    first = fingerprint("R09", "requirements.txt", "django 4.2.1 is affected by CVE-2024-1234")
    second = fingerprint("R09", "requirements.txt", "django 4.2.1 is affected by CVE-2024-5678")
    assert first != second


def test_fingerprint_depends_on_rule_and_path_but_not_on_dot_slash() -> None:
    base = fingerprint("R01", "app/a.py", "m")
    assert len(base) == 40
    assert set(base) <= set("0123456789abcdef")
    assert fingerprint("R01", "./app/a.py", "m") == base
    assert fingerprint("R02", "app/a.py", "m") != base
    assert fingerprint("R01", "app/b.py", "m") != base


def test_normalize_message_keeps_digits_that_are_not_positions() -> None:
    assert normalize_message("  Port 8080   Open\n") == "port 8080 open"
    assert normalize_message("Uses TLS 1.0 on line 3") == "uses tls 1.0 on line"
    assert normalize_message("CVE-2021-44228 in log4j 2.14") == "cve-2021-44228 in log4j 2.14"
    words = normalize_message("Deadline 5, protocol 7, xL4, line 9")
    assert words == "deadline 5, protocol 7, xl4, line"
