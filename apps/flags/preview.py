"""The evaluation preview: what does this context get in this environment, and why?

Evaluates with the same compiled document the OFREP path serves (apps/flags/flagd.py), then
explains the result by testing each rule's condition on its own, in order, so the admin can say
"rule 2 (pilot users) matched" or "no rule matched: fallthrough split".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.flags import rules as rule_logic
from apps.flags.evaluation import compile_flag_set, evaluate
from apps.flags.flagd import environment_document
from apps.flags.models import Environment, FlagState


@dataclass
class Preview:
    value: Any
    variant: str | None
    reason: str
    error: str | None = None
    matched_rule: int | None = None  # 0-based index into the state's rules
    rule_results: list[bool] = field(default_factory=list)
    explanation: str = ""


def _condition(rule: dict) -> dict:
    parts = []
    if rule.get("segment"):
        parts.append({"$ref": rule_logic.segment_evaluator_name(rule["segment"])})
    if rule.get("conditions"):
        parts.append(rule_logic.conditions_logic(rule["conditions"]))
    return parts[0] if len(parts) == 1 else {"and": parts}


def _rule_matches(rules: list[dict], evaluators: dict, context: dict) -> list[bool]:
    """Whether each rule's condition holds for the context, ignoring the rules before it."""
    if not rules:
        return []
    probes = {
        f"rule-{index}": {
            "state": "ENABLED",
            "variants": {"yes": True, "no": False},
            "defaultVariant": "no",
            "targeting": {"if": [_condition(rule), "yes", "no"]},
        }
        for index, rule in enumerate(rules)
    }
    compiled = compile_flag_set({"flags": probes, "$evaluators": evaluators})
    return [
        evaluate(compiled[f"rule-{index}"], context).variant == "yes" for index in range(len(rules))
    ]


def preview(state: FlagState, context: dict[str, Any]) -> Preview:
    """The answer OFREP would give for this context now, with the rule that decided it."""
    environment: Environment = state.environment
    document = environment_document(environment)
    key = state.flag.key
    if key not in document["flags"]:
        return Preview(None, None, "ERROR", error="The flag is archived: OFREP answers 404.")
    flag = compile_flag_set(document)[key]
    result = evaluate(flag, context)
    matches = _rule_matches(state.rules, document.get("$evaluators", {}), context)
    outcome = Preview(
        value=result.value,
        variant=result.variant,
        reason=result.reason,
        error=result.error_details,
        rule_results=matches,
    )
    if result.reason == "DISABLED":
        outcome.explanation = f"The flag is off in {environment.key}: the default variant."
    elif True in matches:
        outcome.matched_rule = matches.index(True)
        rule = state.rules[outcome.matched_rule]
        name = f" ({rule['name']})" if rule.get("name") else ""
        outcome.explanation = f"Rule {outcome.matched_rule + 1}{name} matched."
    elif state.fallthrough.get("split"):
        outcome.explanation = "No rule matched: the fallthrough split chose by targetingKey."
    elif state.rules:
        outcome.explanation = "No rule matched: the fallthrough."
    else:
        outcome.explanation = "No rules: everyone gets the same variant."
    if result.reason == "SPLIT" and not context.get("targetingKey"):
        outcome.explanation += " Without a targetingKey, OFREP answers TARGETING_KEY_MISSING."
    return outcome
