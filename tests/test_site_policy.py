"""Site sovereignty: the site's policy, enforced by the ClientApp's guard on every training message.

Every loosening run-config override (unit, dp, secagg, target-epsilon, delta, metrics) must be
refused with a reason the coordinator sees and the site keeps; tightening overrides pass through
to SecAgg+ and training. Also: the policy file, the minimum number of patients with the plan's
figures, and that only policy-allowed scalars leave (none computed on training data after the
budget is spent).
"""

from __future__ import annotations

import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.supercore.task_identity import TaskIdentity

from fedcodec.client.federated.client_app import site_guard
from fedcodec.client.federated.site_policy import (
    OPTIONAL_METRICS,
    SitePolicy,
    SiteRefusal,
    allowed_metrics,
    check_units,
    load_policy,
    read_refusals,
    save_policy,
    update_policy,
)
from fedcodec.shared.errors import FedcodecError


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 0)


def _setup_message() -> Message:
    """SecAgg+'s first message of a round, as the coordinator's workflow sends it."""
    configs = ConfigRecord({Key.STAGE: Stage.SETUP, Key.SAMPLE_NUMBER: 3, Key.SHARE_NUMBER: 3,
                            Key.THRESHOLD: 2, Key.CLIPPING_RANGE: 4.0, Key.TARGET_RANGE: 1 << 22,
                            Key.MOD_RANGE: 1 << 32, Key.MAX_WEIGHT: 1.0})
    return Message(content=RecordDict({RECORD_KEY_CONFIGS: configs}), dst_node_id=7,
                   message_type="train", group_id="4")


def _plain_message() -> Message:
    """A round without SecAgg+ (the run set secagg = false)."""
    return Message(content=RecordDict({"config": ConfigRecord({"server-round": 4})}),
                   dst_node_id=7, message_type="train", group_id="4")


def _deliver(tmp_path, run_config: dict, message: Message, node_extra: dict | None = None):
    (tmp_path / "data").mkdir(exist_ok=True)
    context = Context(run_id=1, node_id=7, node_config={
        "data-dir": str(tmp_path / "data"), "site": "st-a", "state-dir": str(tmp_path / "state"),
        **(node_extra or {})}, state=RecordDict(), run_config=run_config)
    passed: list[Message] = []

    def call_next(msg, ctxt):
        passed.append(msg)
        return Message(content=RecordDict(), reply_to=msg)

    reply = site_guard()(message, context, call_next)
    return reply, passed


BASE = {"unit": "patient", "dp": True, "target-epsilon": 8.0, "delta": 1e-5}


@pytest.mark.parametrize("override, why", [
    ({"unit": "slice"}, "unit=slice is finer than the site's unit patient"),
    ({"unit": "series"}, "unit=series is finer than the site's unit patient"),
    ({"dp": False}, "dp=false but the site requires DP-SGD"),
    ({"target-epsilon": 16.0}, "target-epsilon=16 exceeds the site's cap 8"),
    ({"delta": 1e-3}, "delta=0.001 exceeds the site's cap 1e-05"),
    ({"site-metrics": "heldout_bpp,train_loss"},
     "asks for metric(s) train_loss the site does not report (site-metrics allowed: "
     "heldout_bpp, update_norm)"),
])
def test_each_loosening_override_is_refused(tmp_path, override, why):
    save_policy(tmp_path / "state", SitePolicy(metrics=("heldout_bpp", "update_norm")))
    config = {**BASE, "site-metrics": "heldout_bpp", **override}
    reply, passed = _deliver(tmp_path, config, _setup_message())
    assert not passed  # neither SecAgg+ nor training saw the message
    assert reply.has_error()
    assert reply.error.reason == f"fedcodec site policy: site st-a refuses the round: {why}"
    assert read_refusals(tmp_path / "state")[-1] == {
        **read_refusals(tmp_path / "state")[-1], "round": 4, "reason": reply.error.reason}


def test_a_round_without_secagg_is_refused(tmp_path):
    reply, passed = _deliver(tmp_path, {**BASE, "secagg": False}, _plain_message())
    assert not passed and reply.has_error()
    assert "no SecAgg+ (secagg=false) but the site requires secure aggregation" in reply.error.reason


def test_only_training_messages_are_answered(tmp_path):
    query = Message(content=RecordDict(), dst_node_id=7, message_type="query", group_id="4")
    reply, passed = _deliver(tmp_path, BASE, query)
    assert not passed and reply.has_error()
    assert "answers training and promotion-gate rounds only, not 'query'" in reply.error.reason


def test_the_sites_own_join_cap_holds_against_a_larger_run_target(tmp_path):
    # an older join passed --target-epsilon through the node config: it is a cap too
    reply, _ = _deliver(tmp_path, {**BASE, "target-epsilon": 5.0}, _setup_message(),
                        {"target-epsilon": 3.0})
    assert "target-epsilon=5 exceeds the site's cap 3" in reply.error.reason


@pytest.mark.parametrize("tighter", [
    {}, {"unit": "patient", "target-epsilon": 2.0, "delta": 1e-7},
    {"site-metrics": "heldout_bpp"}, {"report-site-metrics": False},
])
def test_tightening_overrides_reach_secagg(tmp_path, tighter):
    reply, _ = _deliver(tmp_path, {**BASE, **tighter}, _setup_message())
    assert not reply.has_error()
    keys = reply.content.config_records[RECORD_KEY_CONFIGS]
    assert Key.PUBLIC_KEY_1 in keys  # secaggplus_mod answered the setup stage


def test_a_site_that_relaxed_its_own_policy_takes_part(tmp_path):
    save_policy(tmp_path / "state", SitePolicy(unit="slice", dp=False, secagg=False))
    reply, passed = _deliver(tmp_path, {**BASE, "unit": "slice", "dp": False, "secagg": False},
                             _plain_message())
    assert passed and not reply.has_error()


def test_policy_file_round_trip_and_bad_files(tmp_path):
    policy = update_policy(tmp_path, max_epsilon=3.0, metrics=("heldout_bpp",), unit=None)
    assert load_policy(tmp_path) == policy == SitePolicy(max_epsilon=3.0, metrics=("heldout_bpp",))
    (tmp_path / "site-policy.toml").write_text("max-epsilon = 3\nbudget = 99\n")
    with pytest.raises(FedcodecError, match="unknown key"):
        load_policy(tmp_path)
    (tmp_path / "site-policy.toml").write_text("unit = 'voxel'\n")
    with pytest.raises(FedcodecError, match="unknown unit 'voxel'"):
        load_policy(tmp_path)
    (tmp_path / "site-policy.toml").write_text("dp = 'no'\n")
    with pytest.raises(FedcodecError, match="dp = 'no'"):
        load_policy(tmp_path)


def test_patient_level_below_the_minimum_is_refused_with_the_plans_figures():
    policy = SitePolicy()
    run = {"num-server-rounds": 3, "local-steps": 2, "batch-units": 8.0}
    with pytest.raises(SiteRefusal) as refused:
        check_units(policy, "st-a", "patient", 1, run)
    text = str(refused.value)
    assert "\n" not in text
    assert "1 patient(s) < minimum 2000" in text and "q = 1.000" in text and "ε = " in text
    check_units(policy, "st-a", "patient", 2000, run)   # at the minimum: allowed
    check_units(policy, "st-a", "slice", 1, run)         # the minimum is about patients
    check_units(SitePolicy(min_patients=1), "st-a", "patient", 1, run)


def test_only_policy_allowed_scalars_leave():
    metrics = {"site": "a", "unit": "patient", "epsilon": 1.0, "steps": 3, "budget_exhausted": 0,
               "heldout_bpp": 4.2, "train_loss": 4.0, "update_norm": 0.3, "secret": 1.0}
    out = allowed_metrics(SitePolicy(metrics=("heldout_bpp",)), {}, metrics)
    assert out == {"site": "a", "unit": "patient", "epsilon": 1.0, "steps": 3,
                   "budget_exhausted": 0, "heldout_bpp": 4.2}
    assert set(OPTIONAL_METRICS) >= {"heldout_bpp", "train_loss", "update_norm"}
