"""Progressive rollouts: stages only add users, dwell times hold, beat advances automatic plans,
and a signal (burn-rate alert, canary verdict) halts a plan one stage back with an alert."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.models import Alert
from apps.flags import rollouts
from apps.flags.evaluation import compile_flag_set, evaluate
from apps.flags.flagd import environment_document
from apps.flags.models import Environment, FlagState, RolloutPlan
from apps.tenancy.roles import Role

pytestmark = pytest.mark.django_db
USERS = [f"user-{n}" for n in range(4000)]


@pytest.fixture
def operator(api, make_token, tenant):
    return api(make_token(tenant, Role.OPERATOR))


def _state(environment: str = "staging") -> FlagState:
    return FlagState.objects.select_related("flag").get(
        flag__key="new-checkout", environment__key=environment
    )


def _users_with_feature(tenant, environment: str = "staging") -> set[str]:
    document = environment_document(Environment.objects.get(tenant=tenant, key=environment))
    flag = compile_flag_set(document)["new-checkout"]
    return {user for user in USERS if evaluate(flag, {"targetingKey": user}).variant == "on"}


def test_each_stage_only_adds_users(operator, tenant, flags):
    response = operator.post(
        "/api/v1/flags/new-checkout/environments/staging/rollout",
        {"min_dwell_minutes": 0},
        format="json",
    )
    assert response.status_code == 201, response.content
    plan = RolloutPlan.objects.get(pk=response.json()["id"])
    previous: set[str] = set()
    for percentage in [0, 5, 25, 50, 100]:
        assert RolloutPlan.objects.get(pk=plan.pk).percentage == percentage
        users = _users_with_feature(tenant)
        assert previous <= users, "nobody loses the feature when the percentage grows"
        assert abs(len(users) / len(USERS) * 100 - percentage) <= 2.5, (percentage, len(users))
        previous = users
        if percentage < 100:
            advanced = operator.post(f"/api/v1/flags/rollouts/{plan.pk}/advance", {}, format="json")
            assert advanced.status_code == 200, advanced.content
    assert RolloutPlan.objects.get(pk=plan.pk).status == "COMPLETED"


def test_dwell_time_holds_a_stage(tenant, flags):
    start = timezone.now()
    plan = rollouts.start_rollout(_state(), min_dwell_minutes=60, now=start)
    with pytest.raises(rollouts.RolloutError, match="must run until"):
        rollouts.advance(plan, now=start + timedelta(minutes=59))
    assert rollouts.advance(plan, now=start + timedelta(minutes=60)).percentage == 5


def test_beat_advances_automatic_plans_when_due(tenant, flags):
    start = timezone.now()
    plan = rollouts.start_rollout(_state(), min_dwell_minutes=30, auto_advance=True, now=start)
    assert rollouts.advance_due(now=start + timedelta(minutes=10)) == []
    (advanced,) = rollouts.advance_due(now=start + timedelta(minutes=31))
    assert advanced.percentage == 5
    assert rollouts.advance_due(now=start + timedelta(minutes=40)) == [], "the dwell restarts"
    assert RolloutPlan.objects.get(pk=plan.pk).stage_index == 1


def test_a_signal_halts_and_steps_back_with_an_alert(
    operator, tenant, flags, django_capture_on_commit_callbacks
):
    start = timezone.now()
    plan = rollouts.start_rollout(
        _state(), min_dwell_minutes=0, halt_on=["slo:checkout-latency"], now=start
    )
    rollouts.advance(plan, now=start)
    rollouts.advance(plan, now=start)  # 25 %
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            "/api/v1/flags/rollouts/signal",
            {"signal": "slo:checkout-latency", "reason": "burn rate 14.4x over 1 h"},
            format="json",
        )
    assert response.status_code == 200
    (halted,) = response.json()
    assert (halted["status"], halted["percentage"]) == ("HALTED", 5)
    assert "burn rate" in halted["status_reason"]
    split = _state().fallthrough["split"]
    assert split == [{"variant": "on", "weight": 5}, {"variant": "off", "weight": 95}]
    alert = Alert.objects.get(dedup_key=f"flags:rollout-halted:{plan.pk}")
    assert alert.tier == 2 and "halted at 5 %" in alert.title
    blocked = operator.post(f"/api/v1/flags/rollouts/{plan.pk}/advance", {}, format="json")
    assert blocked.status_code == 409
    operator.post(f"/api/v1/flags/rollouts/{plan.pk}/resume", {}, format="json")
    other = operator.post(
        "/api/v1/flags/rollouts/signal", {"signal": "slo:other", "reason": "x"}, format="json"
    )
    assert other.json() == [], "only plans that listen to the signal halt"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"stages": [0, 50, 25, 100]}, "stages"),
        ({"stages": [0, 5, 50]}, "stages"),
        ({"variant": "maybe"}, "variant"),
        ({"other_variant": "on"}, "other_variant"),
    ],
)
def test_invalid_plans_are_422(operator, flags, body, field):
    response = operator.post(
        "/api/v1/flags/new-checkout/environments/staging/rollout", body, format="json"
    )
    assert response.status_code == 422 and field in response.json()["errors"]
    assert RolloutPlan.objects.count() == 0


def test_one_active_plan_per_flag_and_environment(operator, flags):
    url = "/api/v1/flags/new-checkout/environments/staging/rollout"
    assert operator.post(url, {}, format="json").status_code == 201
    assert operator.post(url, {}, format="json").status_code == 409


def test_the_kill_switch_stops_the_rollout_and_nothing_turns_the_flag_back_on(tenant, flags):
    from apps.flags import services

    start = timezone.now()
    plan = rollouts.start_rollout(
        _state(), min_dwell_minutes=0, auto_advance=True, halt_on=["slo:x"], now=start
    )
    services.kill(flags["checkout"])
    stopped = RolloutPlan.objects.get(pk=plan.pk)
    assert (stopped.status, stopped.status_reason) == ("HALTED", "kill switch pulled")
    assert rollouts.advance_due(now=start + timedelta(hours=1)) == []
    assert rollouts.halt_for_signal(tenant, "slo:x", "burn") == []
    rollouts.resume(stopped)
    rollouts.advance(stopped, now=start + timedelta(hours=2))
    state = _state()
    assert state.enabled is False and state.killed_at is not None, "resuming does not undo a kill"
