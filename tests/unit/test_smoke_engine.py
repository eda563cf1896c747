"""The smoke engine's training step against verl's real registries, a few steps at a time (in-process, no Ray)."""

from __future__ import annotations

import copy

import pytest
import torch

from rlx.resolve import resolve
from rlx.smoke.engine import run

VOLATILE = ("timing_s/", "perf/throughput")


@pytest.fixture(scope="module")
def configs():
    return {a: resolve(a).container() for a in ("grpo", "gspo", "ppo", "remax", "dapo")}


def _stable(history):
    return [{k: v for k, v in h.items() if not k.startswith(VOLATILE)} for h in history]


def test_same_seed_same_curve_other_seed_other_curve(configs):
    a = run(configs["grpo"], steps=3, seed=7)
    b = run(configs["grpo"], steps=3, seed=7)
    c = run(configs["grpo"], steps=3, seed=8)
    assert _stable(a.history) == _stable(b.history)
    assert _stable(a.history) != _stable(c.history)
    for key in ("critic/score/mean", "critic/advantages/mean", "actor/pg_loss", "actor/pg_clipfrac", "actor/ppo_kl",
                "actor/entropy", "actor/grad_norm", "actor/kl_loss", "response_length/mean", "timing_s/step"):
        assert key in a.history[-1], key


def test_a_run_logs_no_diagnostics_another_estimator_left_behind(configs):
    """An rlx estimator called outside a run (another run in this process, a test, a notebook) leaves its diagnostics
    in `estimator_metrics`; a GRPO run's first step must not report them as its own."""
    import rlx.verl_plugin as plugin

    plugin.estimator_metrics.update({"vapo/lambda_mean": 0.5})
    try:
        history = run(configs["grpo"], steps=1, seed=0).history
    finally:
        plugin.estimator_metrics.clear()
    assert "vapo/lambda_mean" not in history[0]


def test_the_resolved_knobs_configure_verls_actor_config(configs):
    seen = {}
    run(configs["gspo"], steps=1, on_start=seen.update)
    assert (seen["clip_ratio_low"], seen["clip_ratio_high"]) == (3e-4, 4e-4)
    assert seen["loss_agg_mode"] == "seq-mean-token-mean" and seen["loss_mode"] == "gspo"
    assert seen["sizes"].n == 8 and "actor_rollout_ref.rollout.n" in seen["shrunk"]


@pytest.fixture
def verl_registries():
    """verl's loss and estimator registries, restored after the test: a probe registered here must not leak into
    later tests (the registry-parity contract test compares verl's registries with rlx's static names)."""
    from verl.trainer.ppo import core_algos

    saved = {
        name: dict(getattr(core_algos, name)) for name in ("POLICY_LOSS_REGISTRY", "ADV_ESTIMATOR_REGISTRY")
    }
    yield core_algos
    for name, entries in saved.items():
        registry = getattr(core_algos, name)
        registry.clear()
        registry.update(entries)


def test_losses_get_global_batch_info_and_the_extras_their_signature_names(configs, verl_registries):
    """A probe loss registered in verl's registry sees what verl's ppo_loss would give it, plus `entropy=`."""
    from verl.trainer.ppo import core_algos

    calls = []

    @core_algos.register_policy_loss("rlx_test_probe")
    def probe(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean", config=None,
              rollout_is_weights=None, *, entropy=None):
        calls.append({"info": dict(config.global_batch_info), "tokens": int(response_mask.sum()),
                      "rows": response_mask.shape[0], "entropy": entropy, "mode": loss_agg_mode})
        return core_algos.get_policy_loss_fn("vanilla")(old_log_prob, log_prob, advantages, response_mask,
                                                       loss_agg_mode, config, rollout_is_weights)

    cfg = copy.deepcopy(configs["grpo"])
    cfg["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] = "rlx_test_probe"
    res = run(cfg, steps=2, seed=0)
    assert calls, "the registered loss was never called"
    skipped = sum(h["actor/skipped_mini_batches"] for h in res.history)
    assert len(calls) + skipped == 2 * res.sizes.mini_batches * res.sizes.micro_per_mini
    for c in calls:
        assert c["info"]["dp_size"] == 1
        assert c["info"]["global_batch_size"] == res.sizes.mini_batch_prompts * res.sizes.n
        assert c["info"]["batch_num_tokens"] >= c["tokens"]  # the mini-batch's tokens, not the micro-batch's
        assert isinstance(c["entropy"], torch.Tensor) and c["entropy"].shape[0] == c["rows"]
        assert c["mode"] == "seq-mean-token-mean"


def test_estimators_get_what_their_signature_names(configs, verl_registries):
    from verl.trainer.ppo import core_algos

    got = {}

    @core_algos.register_adv_est("rlx_test_probe_adv")
    def probe(token_level_rewards, response_mask, config=None, index=None, *, first_code_pos=None, used_code=None,
              correct=None, **kwargs):
        got.update(first_code_pos=first_code_pos, used_code=used_code, correct=correct, index=index, config=config)
        return core_algos.compute_rloo_outcome_advantage(token_level_rewards, response_mask, index, config=config)

    cfg = copy.deepcopy(configs["grpo"])
    cfg["algorithm"]["adv_estimator"] = "rlx_test_probe_adv"
    run(cfg, steps=1, task="code")
    n = len(got["index"])
    assert got["first_code_pos"].shape == (n,) and got["used_code"].dtype == torch.bool
    assert got["correct"].shape == (n,) and got["config"].adv_estimator == "rlx_test_probe_adv"


def test_critic_and_greedy_baselines_are_built_when_the_config_needs_them(configs):
    ppo = run(configs["ppo"], steps=2)
    assert "critic/vf_loss" in ppo.history[-1] and "critic/values/mean" in ppo.history[-1]
    assert ppo.sizes.n == 1 and ppo.sizes.prompts == 128
    remax = run(configs["remax"], steps=2)
    assert "actor/reward_kl_penalty" in remax.history[-1]  # remax's preset puts KL in the reward
    assert "critic/vf_loss" not in remax.history[-1]


def test_dapo_filters_groups_without_signal(configs):
    res = run(configs["dapo"], steps=2)
    assert "training/filter_groups/evicted_samples" in res.history[-1]


def test_custom_reward_function_replaces_the_tasks(configs, tmp_path):
    f = tmp_path / "reward.py"
    f.write_text("def starts_with_one(data_source, solution_str, ground_truth, extra_info=None):\n"
                 "    assert data_source == 'rlx_smoke/copy' and isinstance(extra_info, dict)\n"
                 "    return 1.0 if solution_str.startswith('1') else 0.0\n")
    cfg = copy.deepcopy(configs["grpo"])
    cfg["reward"]["custom_reward_function"] = {"path": str(f), "name": "starts_with_one"}
    res = run(cfg, steps=1)
    score = res.history[0]["critic/score/mean"]
    assert score in {i / 128 for i in range(129)} and score < 0.5  # 0/1 rewards, not fractions of 3 positions
