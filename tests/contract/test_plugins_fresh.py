"""Contract checks of rlx's verl plugin, run by `test_plugins.py` in a fresh interpreter (RLX_FRESH_PLUGIN_PROCESS=1).

Every function under test is fetched back out of verl's registries after a plain `import verl`, so these check what
verl's entry-point loading registered. Covered: docs/algorithms.md section 4 vectors 4-7, hand-computed cases,
float64 gradient checks, ASPO's invariants, GEPO's weight != 1 on-policy, VAPO's lambda clamping, empty masks and
single-sample groups, option precedence.
"""

from __future__ import annotations

import os
import sys

import pytest

if os.environ.get("RLX_FRESH_PLUGIN_PROCESS") != "1":
    pytest.skip("run in a fresh interpreter by tests/contract/test_plugins.py", allow_module_level=True)

# The point of this module: nothing imported verl or the plugin before this line.
assert "verl" not in sys.modules and "rlx.verl_plugin" not in sys.modules

import numpy as np  # noqa: E402
import torch  # noqa: E402
import verl  # noqa: E402, F401
from omegaconf import OmegaConf  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402
from verl.workers.config import FSDPActorConfig  # noqa: E402

LOSSES = ("rlx_aepo", "rlx_gepo")
ESTIMATORS = ("rlx_aspo", "rlx_vapo")


def loss_fn(name):
    return core_algos.get_policy_loss_fn(name)


def adv_fn(name):
    return core_algos.get_adv_estimator_fn(name)


def actor_cfg(low=0.2, high=0.2, **batch_info):
    cfg = FSDPActorConfig(
        strategy="fsdp",
        rollout_n=4,
        ppo_mini_batch_size=2,
        ppo_micro_batch_size_per_gpu=2,
        clip_ratio_low=low,
        clip_ratio_high=high,
    )
    cfg.global_batch_info.clear()  # frozen field, mutable dict: verl's ppo_loss fills it the same way
    cfg.global_batch_info.update(batch_info)
    return cfg


def algo_cfg(**rlx):
    return OmegaConf.create({"gamma": 1.0, "lam": 1.0, "norm_adv_by_std_in_grpo": True, "rlx": rlx})


def outcome(scores, width=4, lengths=None):
    n = len(scores)
    lengths = lengths or [width] * n
    mask = (torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).float()
    rewards = torch.zeros(n, width)
    rewards[torch.arange(n), torch.tensor(lengths) - 1] = torch.tensor(scores, dtype=torch.float32)
    return rewards, mask


# ---- registration ------------------------------------------------------------------------------------------------


def test_verl_loaded_the_plugin_itself():
    assert "rlx.verl_plugin" in sys.modules  # imported by verl's entry-point loader, not by this test
    from rlx.algorithms import ALGORITHMS

    # each name comes from the module its spec names, which the plugin imported
    module_of = {n: a.verl_module for a in ALGORITHMS for n in a.plugin_names.values()}
    for name in LOSSES:
        assert loss_fn(name).__module__ == module_of[name]
    for name in ESTIMATORS:
        assert adv_fn(name).__module__ == module_of[name]
    from rlx.verl_plugin import ensure_registered

    ensure_registered()


# ---- vector 4: ASPO ----------------------------------------------------------------------------------------------

ASPO_REWARDS = [1.0, 1.0, 1.0, 0.0]
ASPO_POS = [10, 50, 90, -1]
ASPO_LEN = [100, 200, 300, 50]


@pytest.mark.parametrize(
    ("delta", "k", "expected"), [(-2.0, 0.7, [0.85, 0.5, 0.15, -1.5]), (-2.5, 0.9, [0.95, 0.5, 0.05, -1.5])]
)
def test_aspo_vector(delta, k, expected):
    rewards, mask = outcome(ASPO_REWARDS)
    adv, ret = adv_fn("rlx_aspo")(
        token_level_rewards=rewards,
        response_mask=mask,
        config=algo_cfg(aspo={"delta": delta, "k": k}),
        index=np.array(["a"] * 4, dtype=object),
        first_code_pos=ASPO_POS,
        used_code=[True, True, True, False],
        lengths=ASPO_LEN,
    )
    assert torch.allclose(adv[:, 0], torch.tensor(expected), atol=1e-5)
    assert torch.allclose(adv, adv[:, :1] * mask)  # constant over each response


def test_aspo_invariants_rewards_returns_and_padding_untouched():
    rewards, mask = outcome([1, 1, 1, 0, 1, 0, 0, 0, 1], width=6, lengths=[6, 3, 5, 2, 4, 6, 1, 6, 5])
    index = np.array(["a"] * 4 + ["b"] * 4 + ["c"], dtype=object)
    rewards_before = rewards.clone()
    grpo_adv, grpo_ret = adv_fn("grpo_vectorized")(token_level_rewards=rewards, response_mask=mask, index=index)
    adv, ret = adv_fn("rlx_aspo")(
        token_level_rewards=rewards,
        response_mask=mask,
        config=algo_cfg(),
        index=index,
        first_code_pos=[0, 1, 4, 1, 3, -1, -1, -1, 2],
        used_code=[1, 1, 1, 1, 1, 0, 0, 0, 1],
    )
    assert torch.equal(rewards, rewards_before)  # rewards never change
    assert torch.equal(ret, grpo_ret)  # returns / critic targets are the base estimator's
    assert torch.equal(adv[mask == 0], torch.zeros_like(adv[mask == 0]))  # only response tokens touched
    changed = (adv - grpo_adv).abs().sum(-1) > 1e-7
    assert changed[:3].all()  # group a: 3 eligible samples at different positions
    assert not changed[3:].any()  # group b: only one eligible (b = 0); group c: single-sample group (b = 0)
    # k < 1: a correct sample's advantage keeps its sign
    assert (torch.sign(adv[:3, 0]) == torch.sign(grpo_adv[:3, 0])).all()


def test_aspo_groups_without_eligible_or_with_degenerate_lengths_are_left_alone():
    rewards, mask = outcome([1, 1, 0, 0, 1, 1, 0, 0])
    index = np.array(["a"] * 4 + ["b"] * 4, dtype=object)
    base, _ = adv_fn("grpo_vectorized")(token_level_rewards=rewards, response_mask=mask, index=index)
    fn = adv_fn("rlx_aspo")
    # group a: correct samples did not use code; group b: eligible, but their lengths are 0 (degenerate)
    adv, _ = fn(
        token_level_rewards=rewards,
        response_mask=mask,
        config=algo_cfg(),
        index=index,
        first_code_pos=[-1, -1, 1, 2, 0, 3, -1, -1],
        used_code=[0, 0, 1, 1, 1, 1, 0, 0],
        lengths=[4, 4, 4, 4, 0, 0, 4, 4],
    )
    assert torch.equal(adv, base)


def test_aspo_correct_defaults_to_score_and_code_pass_gate():
    rewards, mask = outcome([1, 1, 0, 0])
    index = np.array(["a"] * 4, dtype=object)
    fn = adv_fn("rlx_aspo")
    kw = dict(
        token_level_rewards=rewards,
        response_mask=mask,
        index=index,
        first_code_pos=[0, 3, 0, 3],
        used_code=[1, 1, 1, 1],
    )
    base, _ = adv_fn("grpo_vectorized")(token_level_rewards=rewards, response_mask=mask, index=index)
    adv, _ = fn(config=algo_cfg(), **kw)
    assert adv[0, 0] > base[0, 0] and adv[1, 0] < base[1, 0]  # earlier code (pos 0) nudged up
    assert torch.equal(adv[2:], base[2:])  # incorrect samples (score 0) are never shaped
    gated, _ = fn(config=algo_cfg(aspo={"require_code_pass": True}), code_pass=[True, False, True, True], **kw)
    assert torch.equal(gated, base)  # only sample 0 eligible -> it is its own group mean -> b = 0
    no_telemetry, _ = fn(config=algo_cfg(aspo={"require_code_pass": True}), **kw)
    assert torch.equal(no_telemetry, base)


def test_aspo_on_gae_shapes_the_sequence_level_advantage():
    rewards, mask = outcome([1, 1, 0, 0])
    values = torch.rand(4, 4, generator=torch.Generator().manual_seed(0))
    cfg = algo_cfg(aspo={"base": "gae"})
    base_adv, base_ret = core_algos.compute_gae_advantage_return(rewards, values, mask, 1.0, 1.0)
    adv, ret = adv_fn("rlx_aspo")(
        token_level_rewards=rewards,
        response_mask=mask,
        config=cfg,
        index=np.array(["a"] * 4, dtype=object),
        first_code_pos=[0, 3, -1, -1],
        used_code=[1, 1, 0, 0],
        values=values,
    )
    assert torch.equal(ret, base_ret)
    bias = (adv - base_adv)[:, 0]
    assert torch.allclose(adv - base_adv, bias.unsqueeze(-1) * mask)  # one bias per sequence, on every token
    seq_adv = base_adv.mean(-1)
    assert torch.all(bias.abs() <= 0.7 * seq_adv.abs() + 1e-6)
    assert bias[0] > 0 and bias[1] < 0


def test_aspo_missing_extras_is_a_clear_error():
    rewards, mask = outcome([1, 0])
    with pytest.raises(ValueError, match="first_code_pos and used_code"):
        adv_fn("rlx_aspo")(
            token_level_rewards=rewards, response_mask=mask, config=algo_cfg(), index=np.array(["a", "a"], dtype=object)
        )


# ---- vector 5: GEPO ----------------------------------------------------------------------------------------------


def _seq(values):
    return torch.log(torch.tensor(values, dtype=torch.float64)).unsqueeze(-1)


def test_gepo_vector_and_weight_not_one_on_policy():
    from rlx.ops.gepo import group_log_denominator

    old, new = _seq([0.5, 0.25, 0.8]), _seq([0.55, 0.25, 0.7])
    mask = torch.ones(3, 1, dtype=torch.float64)
    adv = torch.tensor([[1.0], [-1.0], [1.0]], dtype=torch.float64)
    log_denom = group_log_denominator(old, mask, np.array(["u"] * 3, dtype=object))
    assert torch.allclose(log_denom.exp(), torch.full((3,), 0.614516, dtype=torch.float64), atol=1e-6)
    loss, m = loss_fn("rlx_gepo")(
        old_log_prob=old,
        log_prob=new,
        advantages=adv,
        response_mask=mask,
        loss_agg_mode="seq-mean-token-mean",
        config=actor_cfg(),
        log_denom=log_denom,
    )
    assert loss.item() == pytest.approx(-0.411374, abs=1e-6)
    assert m["actor/gepo_weight_max"] == pytest.approx(1.139108, abs=1e-6)
    assert m["actor/gepo_weight_min"] == pytest.approx(0.406824, abs=1e-6)
    assert {"actor/pg_clipfrac", "actor/ppo_kl", "actor/pg_clipfrac_lower"} <= set(m)
    assert m["actor/gepo_denominator_fallback"] == 0.0
    _, on = loss_fn("rlx_gepo")(
        old_log_prob=old, log_prob=old, advantages=adv, response_mask=mask, config=actor_cfg(), log_denom=log_denom
    )
    assert on["actor/gepo_weight_mean"] == pytest.approx((0.813648 + 0.406824 + 1.301837) / 3, abs=1e-6)
    assert on["actor/ppo_kl"] == 0.0 and on["actor/pg_clipfrac"] > 0  # on-policy, yet weights are clipped


def test_gepo_denominator_is_per_uid_not_per_batch():
    from rlx.ops.gepo import group_log_denominator

    old = _seq([0.5, 0.25, 0.8, 0.1])
    mask = torch.ones(4, 1, dtype=torch.float64)
    per_uid = group_log_denominator(old, mask, np.array(["a", "a", "b", "b"], dtype=object)).exp()
    q = torch.tensor([0.5, 0.25, 0.8, 0.1], dtype=torch.float64)
    expect = torch.tensor([(0.25 + 0.0625) / 0.75] * 2 + [(0.64 + 0.01) / 0.9] * 2, dtype=torch.float64)
    assert torch.allclose(per_uid, expect)
    assert not torch.allclose(per_uid, ((q**2).sum() / q.sum()).expand(4))
    # interleaved uids give the same per-sample values (grouping, not position)
    shuffled = group_log_denominator(old[[0, 2, 1, 3]], mask, np.array(["a", "b", "a", "b"], dtype=object)).exp()
    assert torch.allclose(shuffled, per_uid[[0, 2, 1, 3]])


def test_gepo_single_sample_group_is_ratio_one_on_policy_and_empty_rows_are_inert():
    from rlx.ops.gepo import group_log_denominator

    old = torch.log(torch.tensor([[0.5, 0.4], [0.3, 0.9], [0.7, 0.7]], dtype=torch.float64))
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    adv = torch.tensor([[1.0, 1.0], [-1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    log_denom = group_log_denominator(old, mask, np.array(["a", "b", "c"], dtype=object))
    assert torch.isfinite(log_denom).all() and log_denom[2] == 0.0
    loss, m = loss_fn("rlx_gepo")(
        old_log_prob=old,
        log_prob=old,
        advantages=adv,
        response_mask=mask,
        loss_agg_mode="seq-mean-token-mean",
        config=actor_cfg(),
        log_denom=log_denom,
    )
    assert m["actor/gepo_weight_min"] == pytest.approx(1.0) and m["actor/gepo_weight_max"] == pytest.approx(1.0)
    assert loss.item() == pytest.approx((-1.0 + 1.0) / 2, abs=1e-6)  # the empty third row does not count
    empty = torch.zeros_like(mask)
    loss0, m0 = loss_fn("rlx_gepo")(
        old_log_prob=old,
        log_prob=old,
        advantages=adv,
        response_mask=empty,
        config=actor_cfg(),
        log_denom=torch.zeros(3, dtype=torch.float64),
    )
    assert loss0.item() == 0.0 and all(np.isfinite(v) for v in m0.values())


def test_gepo_without_denominator_falls_back_to_the_micro_batch_with_a_metric():
    old, new = _seq([0.5, 0.25, 0.8]), _seq([0.55, 0.25, 0.7])
    adv = torch.tensor([[1.0], [-1.0], [1.0]], dtype=torch.float64)
    loss, m = loss_fn("rlx_gepo")(
        old_log_prob=old,
        log_prob=new,
        advantages=adv,
        response_mask=torch.ones(3, 1, dtype=torch.float64),
        loss_agg_mode="seq-mean-token-mean",
        config=actor_cfg(),
    )
    assert m["actor/gepo_denominator_fallback"] == 1.0
    assert loss.item() == pytest.approx(-0.411374, abs=1e-6)  # the micro-batch is exactly one group here


def test_gepo_gradcheck_float64():
    gen = torch.Generator().manual_seed(3)
    old = -torch.rand(4, 5, dtype=torch.float64, generator=gen) - 0.5
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]], dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5], dtype=torch.float64).unsqueeze(-1) * mask
    from rlx.ops.gepo import group_log_denominator

    log_denom = group_log_denominator(old, mask, np.array(["a", "a", "b", "b"], dtype=object))
    fn = loss_fn("rlx_gepo")
    # wide clip so that no weight sits on a clip boundary (the loss is smooth there)
    cfg = actor_cfg(low=0.9, high=5.0)
    lp = (old + 0.05 * torch.randn(4, 5, dtype=torch.float64, generator=gen)).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: fn(
            old_log_prob=old,
            log_prob=x,
            advantages=adv,
            response_mask=mask,
            loss_agg_mode="seq-mean-token-mean",
            config=cfg,
            log_denom=log_denom,
        )[0],
        (lp,),
    )
    # gradients flow through p_i only: d loss / d old_log_prob is zero
    old_leaf = old.clone().requires_grad_(True)
    loss, _ = fn(
        old_log_prob=old_leaf,
        log_prob=lp,
        advantages=adv,
        response_mask=mask,
        config=cfg,
        loss_agg_mode="seq-mean-token-mean",
        log_denom=log_denom,
    )
    loss.backward()
    assert old_leaf.grad is None or torch.count_nonzero(old_leaf.grad) == 0


# ---- AEPO ---------------------------------------------------------------------------------------------------------


def test_aepo_hand_computed_weights_and_sg_clip_gradient():
    # two tokens: entropies 0 and 2 -> normalised -0.7071, +0.7071 (unbiased std sqrt(2)); alpha 0.2
    old = torch.zeros(1, 2, dtype=torch.float64)
    lp = torch.tensor([[0.0, 0.5]], dtype=torch.float64, requires_grad=True)  # ratio 1 and e^0.5 > 1.2
    adv = torch.ones(1, 2, dtype=torch.float64)
    ent = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    mask = torch.ones(1, 2, dtype=torch.float64)
    loss, m = loss_fn("rlx_aepo")(
        old_log_prob=old,
        log_prob=lp,
        advantages=adv,
        response_mask=mask,
        config=actor_cfg(0.2, 0.2),
        entropy=ent,
        alpha=0.2,
    )
    w = 1 + 0.2 * np.array([-1, 1]) / np.sqrt(2)
    assert loss.item() == pytest.approx(-(w[0] * 1.0 + w[1] * 1.2) / 2)
    loss.backward()
    # token 0 unclipped: d/dlp of -w0*exp(lp) / 2 = -w0/2; token 1 (high entropy, clipped): -(1.2*w1)/2, not 0
    assert lp.grad[0, 0].item() == pytest.approx(-w[0] / 2)
    assert lp.grad[0, 1].item() == pytest.approx(-1.2 * w[1] / 2)
    assert m["actor/aepo_sg_clipfrac"] == 0.5 and m["actor/pg_clipfrac"] == 0.5
    # the paper's default scope is high entropy: a clipped low-entropy token loses its gradient
    lp2 = torch.tensor([[0.5, 0.0]], dtype=torch.float64, requires_grad=True)
    loss2, m2 = loss_fn("rlx_aepo")(
        old_log_prob=old, log_prob=lp2, advantages=adv, response_mask=mask, config=actor_cfg(0.2, 0.2), entropy=ent
    )
    loss2.backward()
    assert lp2.grad[0, 0].item() == 0.0 and m2["actor/aepo_sg_clipfrac"] == 0.0
    # ... and keeps it with scope "all" (reference code) or "low_entropy" (ARLArena)
    for scope in ("all", "low_entropy"):
        lp3 = lp2.detach().clone().requires_grad_(True)
        loss_fn("rlx_aepo")(
            old_log_prob=old,
            log_prob=lp3,
            advantages=adv,
            response_mask=mask,
            config=actor_cfg(0.2, 0.2),
            entropy=ent,
            sg_scope=scope,
        )[0].backward()
        assert lp3.grad[0, 0].item() == pytest.approx(-1.2 * w[0] / 2)


def test_aepo_gradcheck_float64_and_is_weights():
    gen = torch.Generator().manual_seed(5)
    old = -torch.rand(3, 6, dtype=torch.float64, generator=gen)
    lp = (old + 0.02 * torch.randn(3, 6, dtype=torch.float64, generator=gen)).requires_grad_(True)
    adv = torch.randn(3, 1, dtype=torch.float64, generator=gen).expand(3, 6).contiguous()
    ent = torch.rand(3, 6, dtype=torch.float64, generator=gen)
    mask = (torch.arange(6).unsqueeze(0) < torch.tensor([[6], [4], [2]])).double()
    fn = loss_fn("rlx_aepo")
    for scope in ("high_entropy", "all", "low_entropy"):
        assert torch.autograd.gradcheck(
            lambda x, s=scope: fn(
                old_log_prob=old,
                log_prob=x,
                advantages=adv,
                response_mask=mask,
                config=actor_cfg(),
                entropy=ent,
                sg_scope=s,
            )[0],
            (lp,),
        )
    base, _ = fn(old_log_prob=old, log_prob=lp, advantages=adv, response_mask=mask, config=actor_cfg(), entropy=ent)
    doubled, _ = fn(
        old_log_prob=old,
        log_prob=lp,
        advantages=adv,
        response_mask=mask,
        config=actor_cfg(),
        entropy=ent,
        rollout_is_weights=torch.full_like(old, 2.0),
    )
    assert doubled.item() == pytest.approx(2 * base.item())


def test_aepo_needs_entropy_and_empty_mask_is_finite():
    old = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="entropy"):
        loss_fn("rlx_aepo")(old_log_prob=old, log_prob=old, advantages=old, response_mask=old, config=actor_cfg())
    loss, m = loss_fn("rlx_aepo")(
        old_log_prob=old,
        log_prob=old,
        advantages=torch.ones(2, 3),
        response_mask=torch.zeros(2, 3),
        config=actor_cfg(),
        entropy=torch.rand(2, 3),
    )
    assert loss.item() == 0.0 and all(np.isfinite(v) for v in m.values())


# ---- vector 7: aggregation through agg_loss and global_batch_info ----------------------------------------------


def test_losses_aggregate_with_verl_agg_loss_and_global_batch_info():
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    adv = -torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])  # ratio 1, alpha 0 -> token losses [1,2,3] and [4]
    zeros = torch.zeros(2, 3)
    fn = loss_fn("rlx_aepo")
    expected = {"token-mean": 2.5, "seq-mean-token-mean": 3.0, "seq-mean-token-sum-norm": 1.25}
    for mode, value in expected.items():
        cfg = actor_cfg(loss_scale_factor=4) if mode == "seq-mean-token-sum-norm" else actor_cfg()
        loss, _ = fn(
            old_log_prob=zeros,
            log_prob=zeros,
            advantages=adv,
            response_mask=mask,
            loss_agg_mode=mode,
            config=cfg,
            entropy=torch.rand(2, 3),
            alpha=0.0,
        )
        assert loss.item() == pytest.approx(value)
    # verl sets global_batch_info per micro-batch: a global token count of 8 halves this micro-batch's share
    loss, _ = fn(
        old_log_prob=zeros,
        log_prob=zeros,
        advantages=adv,
        response_mask=mask,
        config=actor_cfg(dp_size=1, batch_num_tokens=8, global_batch_size=None, loss_scale_factor=None),
        entropy=zeros,
        alpha=0.0,
    )
    assert loss.item() == pytest.approx(10 / 8)


# ---- vector 6: VAPO -----------------------------------------------------------------------------------------------


def test_vapo_toy_vector_through_the_registry():
    rewards = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    values = torch.tensor([[0.2, 0.5, 0.4, 0.9]])
    mask = torch.ones(1, 4)
    adv, ret = adv_fn("rlx_vapo")(
        token_level_rewards=rewards,
        response_mask=mask,
        config=algo_cfg(vapo={"alpha": 0.5, "lambda_critic": 1.0}),
        values=values,
    )
    assert torch.allclose(ret, torch.ones(1, 4))  # lambda_critic = 1: Monte-Carlo targets
    raw = torch.tensor([0.3875, 0.175, 0.55, 0.1])  # lambda = 1 - 1/(0.5*4) = 0.5
    whitened = (raw - raw.mean()) / raw.std()
    assert torch.allclose(adv[0], whitened, atol=1e-5)


def test_vapo_lambda_clamping_and_empty_rows():
    from rlx.ops.vapo import length_adaptive_lambda

    lengths = [10, 20, 100, 500, 2000, 0]
    mask = (torch.arange(2000).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).float()
    lam = length_adaptive_lambda(mask, 0.05)
    assert torch.allclose(lam, torch.tensor([0.0, 0.0, 0.8, 0.96, 0.99, 0.0]))
    from rlx import verl_plugin

    rewards = torch.zeros(6, 2000)
    rewards[torch.arange(5), torch.tensor(lengths[:5]) - 1] = 1.0
    adv, ret = adv_fn("rlx_vapo")(
        token_level_rewards=rewards, response_mask=mask, config=algo_cfg(), values=torch.zeros(6, 2000)
    )
    assert torch.isfinite(adv).all() and torch.equal(adv[5], torch.zeros(2000))
    assert verl_plugin.estimator_metrics["vapo/lambda_clamped_ratio"] == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="values"):
        adv_fn("rlx_vapo")(token_level_rewards=rewards, response_mask=mask, config=algo_cfg())


def test_vapo_matches_verl_gae_when_lambdas_are_one():
    gen = torch.Generator().manual_seed(7)
    rewards, mask = outcome([1.0, 0.0, 1.0], width=5, lengths=[5, 3, 4])
    mask[0, 1] = 0.0  # an observation token inside a response: skipped by both
    values = torch.rand(3, 5, generator=gen)
    from rlx.ops.vapo import decoupled_gae

    adv, ret = decoupled_gae(rewards, values, mask, 0.9, 1.0, 1.0)
    verl_adv, verl_ret = core_algos.compute_gae_advantage_return(rewards, values, mask, 0.9, 1.0)
    assert torch.allclose(ret * mask, verl_ret * mask, atol=1e-6)
    lam_adv, _ = decoupled_gae(rewards, values, mask, 0.9, 0.7, 1.0)
    _, verl_ret_07 = core_algos.compute_gae_advantage_return(rewards, values, mask, 0.9, 0.7)
    assert torch.allclose((lam_adv + values) * mask, verl_ret_07 * mask, atol=1e-6)


# ---- options --------------------------------------------------------------------------------------------------------


def test_options_precedence_keyword_config_env_default(monkeypatch):
    from rlx import verl_plugin

    assert verl_plugin.algo_options("aspo")["delta"] == -2.0
    monkeypatch.setenv("RLX_ALGO_CFG", '{"aspo": {"delta": -2.5, "k": 0.9}, "aepo": {"sg_scope": "all"}}')
    assert verl_plugin.algo_options("aspo")["k"] == 0.9
    assert verl_plugin.resolve_options("aspo", algo_cfg(aspo={"k": 0.5}))["k"] == 0.5
    assert verl_plugin.resolve_options("aspo", algo_cfg(aspo={"k": 0.5}), k=0.3)["k"] == 0.3
    assert verl_plugin.resolve_options("aspo", algo_cfg())["delta"] == -2.5
    # the env option reaches a loss called without keywords: scope "all" keeps a low-entropy token's gradient
    old = torch.zeros(1, 2, dtype=torch.float64)
    lp = torch.tensor([[0.5, 0.0]], dtype=torch.float64, requires_grad=True)
    loss_fn("rlx_aepo")(
        old_log_prob=old,
        log_prob=lp,
        advantages=torch.ones(1, 2, dtype=torch.float64),
        response_mask=torch.ones(1, 2, dtype=torch.float64),
        config=actor_cfg(),
        entropy=torch.tensor([[0.0, 2.0]], dtype=torch.float64),
    )[0].backward()
    assert lp.grad[0, 0].item() != 0.0
    monkeypatch.setenv("RLX_ALGO_CFG", "{not json")
    from rlx.errors import ConfigError

    with pytest.raises(ConfigError, match="RLX_ALGO_CFG is not valid JSON"):
        verl_plugin.algo_options("aspo")


def test_extras_context_feeds_verl_generic_compute_advantage():
    """verl's generic branch passes no extras; the rlx trainer opens `estimator_extras` around it."""
    from verl.protocol import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    from rlx.verl_plugin import estimator_extras

    rewards, mask = outcome(ASPO_REWARDS)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": mask},
        non_tensors={"uid": np.array(["a"] * 4, dtype=object)},
    )
    with estimator_extras(
        first_code_pos=np.array(ASPO_POS), used_code=np.array([1, 1, 1, 0]), lengths=np.array(ASPO_LEN)
    ):
        out = compute_advantage(data, adv_estimator="rlx_aspo", config=algo_cfg())
    assert torch.allclose(out.batch["advantages"][:, 0], torch.tensor([0.85, 0.5, 0.15, -1.5]), atol=1e-5)
