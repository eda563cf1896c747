"""Checks verl leaves to run time (issue 13, "Catch"): each defect next to its valid twin, one override apart.

The expected sets come from verl's source, not from the validator: the reward managers main_ppo can look up
(`verl/experimental/reward_loop/reward_manager/*.py`), the estimators verl hands the prompt-group `index`
(`verl/trainer/ppo/core_algos.py`), the loss_agg_modes verl's ActorConfig accepts, DAPO's overlong arithmetic.
"""

from __future__ import annotations

import pytest

from rlx.validate import validate_source

A = "actor_rollout_ref.actor"
R = "actor_rollout_ref.rollout"
DAPO_MAX = "reward.reward_kwargs.max_resp_len"
BUFFER = "reward.reward_kwargs.overlong_buffer_cfg.len"

# (id, algo or None for --verl, shared overrides, defect override, valid twin override, code, path)
PAIRS = [
    ("reward-manager", "grpo", [], "reward.reward_manager.name=dapoo", "reward.reward_manager.name=dapo", "RLX306",
     "reward.reward_manager.name"),
    ("reward-manager-limited", "grpo", [], "reward.reward_manager.name=limited",
     "reward.reward_manager.name=rate_limited", "RLX306", "reward.reward_manager.name"),
    ("critic-agg", "ppo", [], "critic.loss_agg_mode=token_mean", "critic.loss_agg_mode=seq-mean-token-mean", "RLX307",
     "critic.loss_agg_mode"),
    ("opo-n", "ppo", ["algorithm.adv_estimator=opo"], f"{R}.n=1", f"{R}.n=4", "RLX308", f"{R}.n"),
    ("rloo-n", "ppo", ["algorithm.adv_estimator=rloo"], f"{R}.n=1", f"{R}.n=4", "RLX308", f"{R}.n"),
    ("passk-n", "ppo", ["algorithm.adv_estimator=grpo_passk"], f"{R}.n=1", f"{R}.n=4", "RLX308", f"{R}.n"),
    ("otb-n", "ppo", ["algorithm.adv_estimator=optimal_token_baseline"], f"{R}.n=1", f"{R}.n=4", "RLX308", f"{R}.n"),
    ("dyn-mini", "grpo", [f"{A}.use_dynamic_bsz=true", "data.train_batch_size=16"], f"{A}.ppo_mini_batch_size=32",
     f"{A}.ppo_mini_batch_size=16", "RLX505", f"{A}.ppo_mini_batch_size"),
    ("dyn-divisible", "grpo", [f"{A}.use_dynamic_bsz=true", f"{R}.n=5", f"{A}.ppo_mini_batch_size=4"],
     "data.train_batch_size=10", "data.train_batch_size=16", "RLX506", "data.train_batch_size"),
    ("overlong-equal", "dapo", [], f"{BUFFER}=${{{DAPO_MAX}}}", f"{BUFFER}=4096", "RLX440", BUFFER),
    ("overlong-zero", "dapo", [], f"{BUFFER}=0", f"{BUFFER}=1", "RLX440", BUFFER),
    ("overlong-longer", "dapo", [], f"{BUFFER}=20481", f"{BUFFER}=20479", "RLX440", BUFFER),
]


@pytest.mark.parametrize(("algo", "base", "bad", "good", "code", "path"), [p[1:] for p in PAIRS],
                         ids=[p[0] for p in PAIRS])
def test_defect_and_valid_twin(algo, base, bad, good, code, path):
    broken = validate_source(algo=algo, overrides=[*base, bad], verl=algo is None)
    assert (code, path) in [(p.code, p.path) for p in broken.errors], broken.problems
    twin = validate_source(algo=algo, overrides=[*base, good], verl=algo is None)
    assert twin.errors == [], twin.errors


def test_group_relative_set_is_what_verl_hands_the_group_index():
    """verl's compute_advantage passes `index` (the uid) to these; the names are verl's enum values."""
    from rlx.validate.verl_names import verl_static_extras

    group = set(verl_static_extras()["group_relative"])
    assert {"grpo", "rloo", "opo", "gpg", "grpo_passk", "optimal_token_baseline", "tir_optimal_token_baseline",
            "reinforce_plus_plus_baseline"} <= group
    assert not group & {"gae", "reinforce_plus_plus", "remax"}


def test_reward_managers_are_the_reward_loop_registry():
    from rlx.validate.verl_names import verl_static_extras

    assert set(verl_static_extras()["reward_manager"]) == {"naive", "dapo", "gdpo", "rate_limited", "remote"}


def test_reward_manager_parser_follows_aliases():
    from rlx.validate.verl_names import parse_reward_managers

    src = ("from verl.experimental.reward_loop.reward_manager import register as reg\n"
           "@reg('mine')\nclass A: ...\n@other('no')\nclass B: ...\n@register('plain')\nclass C: ...\n")
    assert parse_reward_managers([src]) == ["mine", "plain"]


def test_importlib_reward_manager_is_not_looked_up():
    report = validate_source(algo="grpo", overrides=["reward.reward_manager.source=importlib",
                                                     "reward.reward_manager.name=MyManager"])
    assert "RLX306" not in [p.code for p in report.problems]


def test_critic_mode_inherited_from_actor_is_reported_once():
    report = validate_source(algo="ppo", overrides=[f"{A}.loss_agg_mode=foo"])
    assert [p.code for p in report.errors if p.code in ("RLX208", "RLX307")] == ["RLX208"]


def test_critic_mode_ignored_without_critic():
    report = validate_source(algo="grpo", overrides=["critic.loss_agg_mode=foo"])
    assert "RLX307" not in [p.code for p in report.problems]


def test_grpo_group_of_one_is_reported_once():
    report = validate_source(algo="grpo", overrides=[f"{R}.n=1"])
    assert [p.code for p in report.errors if p.code in ("RLX401", "RLX308")] == ["RLX401"]


@pytest.mark.parametrize(("algo", "bad", "good", "path"), [
    ("grpo", "+algorithm.norm_adv_by_std_in_grpoo=false", "algorithm.norm_adv_by_std_in_grpo=false",
     "algorithm.norm_adv_by_std_in_grpoo"),
    ("dapo", "+reward.reward_kwargs.overlong_buffer_cfg.length=512", "reward.reward_kwargs.overlong_buffer_cfg.len=512",
     "reward.reward_kwargs.overlong_buffer_cfg.length"),
])
def test_free_form_key_nobody_reads(algo, bad, good, path):
    broken = validate_source(algo=algo, overrides=[bad])
    found = [p for p in broken.errors if (p.code, p.path) == ("RLX115", path)]
    assert found, broken.problems
    assert validate_source(algo=algo, overrides=[good]).errors == []


def test_nested_did_you_mean_is_len_not_length():
    report = validate_source(algo="dapo", overrides=["+reward.reward_kwargs.overlong_buffer_cfg.length=512"])
    assert "overlong_buffer_cfg.len=512" in report.errors[0].hint
