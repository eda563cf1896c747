"""Algorithm fidelity properties (issue 12): each expected value is derived by hand from the formulas in
docs/algorithms.md and written here, in float64; none is taken from the implementation's output.

The losses are fetched from verl's policy-loss registry and called the way verl's `ppo_loss` calls them (with the
actor config's `global_batch_info` set to the mini-batch's counts before each micro-batch).
"""

from __future__ import annotations

import math

import pytest
import torch
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.workers.config import FSDPActorConfig

import rlx.verl_plugin  # noqa: F401 (registers the rlx losses)
from rlx.verl_plugin import loss_extras

A = "actor_rollout_ref.actor"
F64 = torch.float64


@pytest.fixture(autouse=True)
def _no_estimator_metrics_left_behind():
    # rlx's estimators leave diagnostics in a module global for the trainer to log; the in-process smoke engine
    # reads whatever is there, so a test must not leave any behind for later tests
    yield
    rlx.verl_plugin.estimator_metrics.clear()


def actor_cfg(**batch_info):
    cfg = FSDPActorConfig(strategy="fsdp", rollout_n=2, ppo_mini_batch_size=1, ppo_micro_batch_size_per_gpu=1)
    cfg.global_batch_info.clear()
    cfg.global_batch_info.update(batch_info)
    return cfg


# ---- Dr.GRPO: the constant is the max generation length -------------------------------------------------------------

def test_drgrpo_constant_is_tied_to_max_response_length():
    from rlx.resolve import resolve

    base = resolve("drgrpo")
    assert base.get(f"{A}.loss_scale_factor") == base.get("data.max_response_length")
    longer = resolve("drgrpo", overrides=["data.max_response_length=3000"])
    assert longer.get(f"{A}.loss_scale_factor") == 3000  # an experiment that changes the length keeps C equal


def test_drgrpo_constant_set_apart_by_hand_is_flagged_and_the_hint_works():
    from rlx.validate import validate_source

    codes = [p.code for p in validate_source(algo="drgrpo", overrides=[f"{A}.loss_scale_factor=1024"]).problems]
    assert "RLX432" in codes
    hint = [f"{A}.loss_scale_factor=1024", f"{A}.loss_scale_factor=${{data.max_response_length}}"]
    assert "RLX432" not in [p.code for p in validate_source(algo="drgrpo", overrides=hint).problems]
    assert "RLX432" not in [p.code for p in validate_source(algo="drgrpo").problems]


# ---- AEPO: statistics over the batch, not the micro-batch -----------------------------------------------------------
# Two rows, two valid tokens each, ratio 1 (no clipping), alpha 0.2. Entropy [[1, 3], [5, 7]]: mean 4, unbiased
# std s = sqrt(20/3). Row advantages +1 and -1. Token loss = -A·w with w = 1 + 0.2·(H - 4)/s (dual clip inactive).
# Row 1 weights 1 - 0.6/s, 1 - 0.2/s (sum 2 - 0.8/s); row 2 weights 1 + 0.2/s, 1 + 0.6/s (sum 2 + 0.8/s).
# token-mean over the 4 tokens: -(1/4)·[(2 - 0.8/s) - (2 + 0.8/s)] = 0.4/s.
H = torch.tensor([[1.0, 3.0], [5.0, 7.0]], dtype=F64)
ADV = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=F64)
MASK = torch.ones(2, 2, dtype=torch.bool)
LP = torch.log(torch.tensor([[0.5, 0.25], [0.4, 0.1]], dtype=F64))
FULL = 0.4 / math.sqrt(20.0 / 3.0)


def _aepo(rows, stats=None, **kw):
    fn = get_policy_loss_fn("rlx_aepo")
    cfg = actor_cfg(dp_size=1, batch_num_tokens=4, global_batch_size=2)
    with loss_extras(**({"entropy_stats": stats} if stats is not None else {})):
        loss, _ = fn(LP[rows], LP[rows], ADV[rows], MASK[rows], "token-mean", cfg, entropy=H[rows], alpha=0.2, **kw)
    return float(loss)


def test_aepo_loss_does_not_depend_on_the_micro_batch_split():
    from rlx.ops.aepo import entropy_stats

    stats = entropy_stats(H, MASK)  # what the trainer computes once per step
    assert float(stats[0]) == pytest.approx(4.0, abs=1e-12)
    assert float(stats[1]) == pytest.approx(math.sqrt(20.0 / 3.0), abs=1e-12)
    whole = _aepo([0, 1], stats)
    split = _aepo([0], stats) + _aepo([1], stats)
    assert whole == pytest.approx(FULL, abs=1e-12)
    assert split == pytest.approx(FULL, abs=1e-12)


def test_aepo_per_call_statistics_are_an_explicit_option(monkeypatch):
    # The reference code's choice: each row alone has weights 1 -/+ 0.2/sqrt(2) summing to 2 per row, so the two
    # micro-batch losses are -2/4 and +2/4 and the split total is 0, not 0.4/s.
    from rlx.ops.aepo import entropy_stats

    monkeypatch.setenv("RLX_ALGO_CFG", '{"aepo": {"stats_scope": "micro_batch"}}')
    stats = entropy_stats(H, MASK)
    assert _aepo([0], stats) + _aepo([1], stats) == pytest.approx(0.0, abs=1e-12)


def test_aepo_trainer_computes_statistics_over_the_whole_step_batch():
    from tensordict import TensorDict

    from rlx.verl_entry import ENTROPY_MEAN_FIELD, ENTROPY_STD_FIELD, RlxNeeds, actor_fields

    # padding (99) must not count: the valid tokens are those of H above
    ent = torch.tensor([[1.0, 3.0, 99.0], [5.0, 7.0, 99.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    data = TensorDict({"entropy": ent, "response_mask": mask}, batch_size=2)
    out = actor_fields(data, RlxNeeds(None, "rlx_aepo", 0.0))
    assert out[ENTROPY_MEAN_FIELD].tolist() == pytest.approx([4.0, 4.0])
    assert out[ENTROPY_STD_FIELD].tolist() == pytest.approx([math.sqrt(20.0 / 3.0)] * 2, rel=1e-6)


def test_aepo_weight_floor_none_means_no_floor():
    # One row, entropy [0, 0, 0, 4]: mean 1, unbiased std 2, Ĥ = [-0.5, -0.5, -0.5, 1.5]; alpha 4 -> w = [-1,-1,-1,7].
    # A = 1, ratio 1. Without a floor: the first three have Ã = -1 (dual clip inactive: max(-1, -3)) so loss +1 each,
    # the last -7: token-mean (3 - 7)/4 = -1. With the default floor 0: w = [0, 0, 0, 7] -> -7/4.
    fn = get_policy_loss_fn("rlx_aepo")
    lp = torch.log(torch.full((1, 4), 0.5, dtype=F64))
    args = (lp, lp, torch.ones(1, 4, dtype=F64), torch.ones(1, 4, dtype=torch.bool), "token-mean", actor_cfg())
    ent = torch.tensor([[0.0, 0.0, 0.0, 4.0]], dtype=F64)
    unfloored, _ = fn(*args, entropy=ent, alpha=4.0, weight_floor=None)
    floored, _ = fn(*args, entropy=ent, alpha=4.0)
    assert float(unfloored) == pytest.approx(-1.0, abs=1e-12)
    assert float(floored) == pytest.approx(-7.0 / 4.0, abs=1e-12)


# ---- VAPO: the NLL term is normalised by the correct-token count of its own mini-batch ------------------------------
# Step batch of 4 rows (T = 2), update mini-batches of 2 rows, one rank: mini-batch 0 = rows 0, 1, mini-batch 1 =
# rows 2, 3 (verl's actor cuts the step batch in order). Rows 0 and 1 are the only correct samples:
#   row 0: 2 tokens, logπ = ln 1/2, ln 1/4;   row 1: 1 token, logπ = ln 1/8;   rows 2, 3: 2 and 1 tokens, wrong.
# The paper's term on mini-batch 0: -(ln 1/2 + ln 1/4 + ln 1/8) / 3 = 6 ln2 / 3 = 2 ln2; on mini-batch 1: 0.
# (The step's correct-token share is 3/6, so "mini-batch tokens x share" gives 1.5 and twice the paper's value.)
# Split into micro-batches {0} and {1}: ln2·(1+2)/3 + ln2·3/3 = 2 ln2, the same.
LN2 = math.log(2.0)
V_MASK = torch.tensor([[1, 1], [1, 0], [1, 1], [1, 0]])
V_LP = torch.log(torch.tensor([[0.5, 0.25], [0.125, 1.0], [0.5, 0.5], [0.5, 1.0]], dtype=F64))
V_RM = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])


def _vapo_rows(rows, fields, *, dp_size=1, mini_tokens):
    from tensordict import TensorDict

    from rlx.verl_entry import RlxActorLoss

    data = TensorDict({"response_mask": V_MASK[rows], **{k: v[rows] for k, v in fields.items()}}, batch_size=len(rows))
    loss = RlxActorLoss(actor_cfg(dp_size=dp_size, batch_num_tokens=mini_tokens, global_batch_size=2), nll_coef=1.0)
    return float(loss._nll(None, data, V_LP[rows], {}))


def test_vapo_nll_is_normalised_by_its_mini_batch_correct_tokens():
    from tensordict import TensorDict

    from rlx.verl_entry import NLL_TOKENS_FIELD, RlxNeeds, actor_fields

    step = TensorDict({"response_mask": V_MASK, "rm_scores": V_RM}, batch_size=4)
    fields = actor_fields(step, RlxNeeds("rlx_vapo", None, 0.1), mini_batch_size=2, dp_size=1)
    assert fields[NLL_TOKENS_FIELD].tolist() == [3.0, 3.0, 0.0, 0.0]
    whole = _vapo_rows([0, 1], fields, mini_tokens=3)
    split = _vapo_rows([0], fields, mini_tokens=3) + _vapo_rows([1], fields, mini_tokens=3)
    assert whole == pytest.approx(2 * LN2, abs=1e-12)
    assert split == pytest.approx(2 * LN2, abs=1e-12)
    assert _vapo_rows([2, 3], fields, mini_tokens=3) == 0.0


def test_vapo_mini_batches_follow_verls_data_parallel_split():
    # 8 rows, mini-batches of 4 rows over 2 ranks: the dispatcher gives rank 0 rows 0-3 and rank 1 rows 4-7, and each
    # rank cuts its chunk into mini-batches of 4/2 = 2 rows, so mini-batch 0 = {0, 1, 4, 5} and 1 = {2, 3, 6, 7}.
    from tensordict import TensorDict

    from rlx.verl_entry import NLL_TOKENS_FIELD, RlxNeeds, actor_fields, mini_batch_ids

    assert mini_batch_ids(8, 4, 2).tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert mini_batch_ids(8, 4, 1).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert mini_batch_ids(8, None, 2).tolist() == [0] * 8
    # One token per row; rows 0, 4, 5 correct with logπ ln 1/2, ln 1/4, ln 1/8: mini-batch 0 has 3 correct tokens and
    # the paper's term 6 ln2 / 3 = 2 ln2. Each rank's loss is scaled by dp_size like verl's agg_loss, and the ranks'
    # gradients are averaged: rank 0: 1·ln2·2/3, rank 1: (2+3)·ln2·2/3, mean (2/3 + 10/3)/2·ln2 = 2 ln2.
    mask = torch.ones(8, 1, dtype=torch.long)
    rm = torch.tensor([[1.0], [0.0], [0.0], [0.0], [1.0], [1.0], [0.0], [0.0]])
    fields = actor_fields(TensorDict({"response_mask": mask, "rm_scores": rm}, batch_size=8),
                          RlxNeeds("rlx_vapo", None, 0.1), mini_batch_size=4, dp_size=2)
    assert fields[NLL_TOKENS_FIELD].tolist() == [3.0, 3.0, 0.0, 0.0, 3.0, 3.0, 0.0, 0.0]

    from rlx.verl_entry import RlxActorLoss

    lp = torch.log(torch.tensor([[0.5], [0.5], [0.5], [0.5], [0.25], [0.125], [0.5], [0.5]], dtype=F64))

    def rank_loss(rows):
        data = TensorDict({"response_mask": mask[rows], **{k: v[rows] for k, v in fields.items()}}, batch_size=2)
        loss = RlxActorLoss(actor_cfg(dp_size=2, batch_num_tokens=4, global_batch_size=4), nll_coef=1.0)
        return float(loss._nll(None, data, lp[rows], {}))

    assert rank_loss([0, 1]) == pytest.approx(2 * LN2 / 3, abs=1e-12)
    assert (rank_loss([0, 1]) + rank_loss([4, 5])) / 2 == pytest.approx(2 * LN2, abs=1e-12)


def test_vapo_nll_with_a_shuffled_actor_batch_is_rejected():
    from rlx.validate import validate_source

    codes = [p.code for p in validate_source(algo="vapo", overrides=[f"{A}.shuffle=true"]).problems]
    assert "RLX499" in codes
    assert "RLX499" not in [p.code for p in validate_source(algo="vapo", overrides=[f"{A}.shuffle=false"]).problems]


# ---- GEPO: non-finite inputs ------------------------------------------------------------------------------------------
# One uid group of two rows (T = 3), on-policy (logπθ = logπold at valid tokens), ε_l = ε_h = 0.2.
#   row 0: valid tokens logπ = ln 1/2, ln 1/8 -> q_0 = exp(mean) = sqrt(1/16) = 1/4, A = +1
#   row 1: valid token  logπ = ln 1/2        -> q_1 = 1/2,                    A = -1
# Ê_q[q] = (q_0² + q_1²) / (q_0 + q_1) = (1/16 + 1/4) / (3/4) = 5/12; w_0 = (1/4)/(5/12) = 3/5, w_1 = 6/5.
# Row 0: max(-0.6, -clip(0.6, 0.8, 1.2)) = max(-0.6, -0.8) = -0.6 (not clipped); row 1: max(1.2, 1.2) = 1.2.
# seq-mean-token-mean: (-0.6 + 1.2) / 2 = 0.3. ppo_kl 0, no clipping, weight mean 0.9.
# The padded positions hold NaN and -inf (in both log-probs and in the advantages): they must change nothing.
NAN, NINF = float("nan"), float("-inf")
G_MASK = torch.tensor([[1, 1, 0], [1, 0, 0]])
G_OLD = torch.tensor([[math.log(0.5), math.log(0.125), NAN], [math.log(0.5), NINF, NAN]], dtype=F64)
G_NEW = torch.tensor([[math.log(0.5), math.log(0.125), NINF], [math.log(0.5), NAN, NINF]], dtype=F64)
G_ADV = torch.tensor([[1.0, 1.0, NAN], [-1.0, NAN, NINF]], dtype=F64)


def _gepo(old, new, adv, mask, log_denom):
    cfg = FSDPActorConfig(strategy="fsdp", rollout_n=2, ppo_mini_batch_size=1, ppo_micro_batch_size_per_gpu=1,
                          clip_ratio_low=0.2, clip_ratio_high=0.2)
    cfg.global_batch_info.update(dp_size=1, batch_num_tokens=int(mask.sum()), global_batch_size=2)
    return get_policy_loss_fn("rlx_gepo")(old, new, adv, mask, "seq-mean-token-mean", cfg, log_denom=log_denom)


def test_gepo_padded_non_finite_values_do_not_leak():
    from rlx.ops.gepo import group_log_denominator

    log_denom = group_log_denominator(G_OLD, G_MASK, ["p", "p"])
    assert log_denom.tolist() == pytest.approx([math.log(5 / 12)] * 2, abs=1e-12)
    loss, metrics = _gepo(G_OLD, G_NEW, G_ADV, G_MASK, log_denom)
    assert float(loss) == pytest.approx(0.3, abs=1e-7)  # verl's seq-mean-token-mean adds 1e-8 to each length
    assert metrics["actor/ppo_kl"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["actor/pg_clipfrac"] == 0.0
    assert metrics["actor/gepo_weight_mean"] == pytest.approx(0.9, abs=1e-7)  # metrics are logged as float32
    assert all(math.isfinite(v) for v in metrics.values())


def test_gepo_nan_in_a_valid_old_log_prob_raises():
    from tensordict import TensorDict

    from rlx.ops.gepo import group_log_denominator
    from rlx.verl_entry import RlxNeeds, actor_fields

    old = G_OLD.clone()
    old[1, 0] = NAN  # a valid token: Ê_q[q] of the group is undefined, it must not quietly become log Ê = 0
    with pytest.raises(ValueError, match=r"old log-prob.*row 1, position 0"):
        group_log_denominator(old, G_MASK, ["p", "p"])
    minus_inf = G_OLD.clone()
    minus_inf[0, 1] = NINF  # q_0 = 0 at a sampled token: not a log-prob the policy can have given
    with pytest.raises(ValueError, match=r"row 0, position 1, value -inf"):
        group_log_denominator(minus_inf, G_MASK, ["p", "p"])
    data = TensorDict({"old_log_probs": old.float(), "response_mask": G_MASK,
                       "uid": torch.tensor([0, 0])}, batch_size=2)
    with pytest.raises(ValueError, match="not finite"):
        actor_fields(data, RlxNeeds(None, "rlx_gepo", 0.0))


def test_gepo_reports_no_dual_clip_under_verls_name():
    # GEPO has no dual clip (as verl's GSPO), so actor/pg_clipfrac_lower, verl's dual-clip share, is 0. Row 0 of the
    # vectors above with A = -1 and ε_l = 0.2: w_0 = 0.6 < 0.8, so max(0.6, 0.8) takes the clipped branch on its 2
    # tokens; row 1 (w 1.2, A -1) is not clipped: the lower-clip share is 2/3 and is reported as gepo_clipfrac_low.
    from rlx.ops.gepo import group_log_denominator

    adv = torch.tensor([[-1.0, -1.0, 0.0], [-1.0, 0.0, 0.0]], dtype=F64)
    lp = torch.where(G_MASK.bool(), G_OLD, 0.0)  # finite padding here: this test is about the metric only
    _, metrics = _gepo(lp, lp, adv, G_MASK, group_log_denominator(lp, G_MASK, ["p", "p"]))
    assert metrics["actor/pg_clipfrac_lower"] == 0.0
    assert metrics["actor/pg_clipfrac"] == pytest.approx(2 / 3, abs=1e-7)  # metrics are logged as float32
    assert metrics["actor/gepo_clipfrac_low"] == pytest.approx(2 / 3, abs=1e-7)


# ---- ASPO: with nothing eligible, the base advantage is verl's own ---------------------------------------------------
# Both estimators are called through verl's v1 entry, `compute_advantage_for_multi_trajectories`, with the same data;
# nothing is eligible for shaping (no sample used code). Keys are "{uid}_{session}_{output index}".


def _adv_data(scores, mask, values=None):
    import numpy as np
    from verl import DataProto

    rewards = torch.zeros(mask.shape, dtype=F64)
    last = mask.sum(-1) - 1
    rewards[torch.arange(len(scores)), last] = torch.tensor(scores, dtype=F64)
    tensors = {"token_level_rewards": rewards, "response_mask": mask}
    if values is not None:
        tensors["values"] = values
    return DataProto.from_dict(tensors=tensors, non_tensors={"uid": np.array(["p"] * len(scores), dtype=object)})


def _v1_advantage(estimator, scores, mask, keys, values=None, base="grpo"):
    from omegaconf import OmegaConf
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    from rlx.verl_plugin import estimator_extras

    algo = OmegaConf.create({"adv_estimator": estimator, "gamma": 1.0, "lam": 1.0, "norm_adv_by_std_in_grpo": True,
                             "rlx": {"aspo": {"base": base}}})
    n = len(scores)
    extras = {} if values is None else {"values": values}  # the rlx trainer hands the critic values over this way
    with estimator_extras(first_code_pos=[-1] * n, used_code=[False] * n, session_keys=keys, **extras):
        out = compute_advantage_for_multi_trajectories(_adv_data(scores, mask, values), batch_keys=keys,
                                                       adv_estimator=estimator, gamma=1.0, lam=1.0, num_repeat=n,
                                                       norm_adv_by_std_in_grpo=True, config=algo)
    return out.batch["advantages"], out.batch["returns"]


def test_aspo_grpo_base_is_verls_grpo_on_multi_output_sessions():
    # Prompt p, three sessions; session 0 produced two outputs (rows 0 and 1, row 1 is its final output), sessions 1
    # and 2 one each. verl's grpo takes the group statistics over the final outputs only (rows 1, 2, 3; scores 1, 0, 0):
    # mean 1/3, unbiased std sqrt(((2/3)² + 2·(1/3)²)/2) = 1/√3, so A = (2/3)·√3 = 2/√3 for rows 1 and (its session)
    # 0, and -(1/3)·√3 = -1/√3 for rows 2, 3 (÷ (std + 1e-6) in verl: rel 2e-6). Returns equal the advantages.
    # (Over all four rows, scores 0, 1, 0, 0, the statistics would be mean 1/4, std 1/2: A = -1/2, 3/2, -1/2, -1/2.)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]])
    keys = ["p_0_0", "p_0_1", "p_1_0", "p_2_0"]
    scores = [0.0, 1.0, 0.0, 0.0]
    adv, ret = _v1_advantage("rlx_aspo", scores, mask, keys)
    verl_adv, verl_ret = _v1_advantage("grpo", scores, mask, keys)
    s3 = math.sqrt(3.0)
    expect = torch.tensor([2 / s3, 2 / s3, -1 / s3, -1 / s3], dtype=F64).unsqueeze(-1) * mask
    assert torch.allclose(adv, expect, rtol=3e-6, atol=0)
    assert torch.equal(adv, verl_adv) and torch.equal(ret, verl_ret)
    assert torch.equal(ret, adv)
    # one output per session: the plain grpo path, the same statistics over every row
    single = ["p_0_0", "p_1_0", "p_2_0", "p_3_0"]
    adv1, _ = _v1_advantage("rlx_aspo", scores, mask, single)
    verl1, _ = _v1_advantage("grpo", scores, mask, single)
    assert torch.allclose(adv1[:, 0], torch.tensor([-0.5, 1.5, -0.5, -0.5], dtype=F64), rtol=3e-6, atol=0)
    assert torch.equal(adv1, verl1)


def test_aspo_gae_base_is_verls_gae():
    # gamma = lam = 1. Row 0: rewards [0, 1], V [0.5, 0.25]: δ_1 = 1 - 0.25 = 0.75, δ_0 = 0.25 - 0.5 = -0.25,
    # raw A = [0.5, 0.75], returns A + V = [1, 1]. Row 1 (one valid token): reward 1, V 0.5: δ_0 = 0.5, return 1.
    # Whitened over the 3 valid raw advantages [0.5, 0.75, 0.5]: mean 7/12, unbiased var (1 + 4 + 1)/144/2 = 1/48,
    # so A = (a - 7/12)·√48: [-1/√3, 2/√3] and [-1/√3] (verl adds 1e-8 to the variance: rel 5e-7).
    mask = torch.tensor([[1, 1], [1, 0]])
    values = torch.tensor([[0.5, 0.25], [0.5, 0.0]], dtype=F64)
    keys = ["p_0_0", "p_1_0"]
    adv, ret = _v1_advantage("rlx_aspo", [1.0, 1.0], mask, keys, values, base="gae")
    verl_adv, verl_ret = _v1_advantage("gae", [1.0, 1.0], mask, keys, values)
    s3 = math.sqrt(3.0)
    assert adv[mask.bool()].tolist() == pytest.approx([-1 / s3, 2 / s3, -1 / s3], rel=1e-6)
    assert ret[mask.bool()].tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    assert torch.equal(adv, verl_adv) and torch.equal(ret, verl_ret)


def test_rlx_trainer_hands_aspo_the_batch_keys_as_sessions():
    from tensordict import TensorDict

    from rlx.verl_entry import RlxNeeds, estimator_inputs

    data = TensorDict({"response_mask": torch.ones(2, 1)}, batch_size=2)
    keys = ["p_0_0", "p_0_1"]
    assert estimator_inputs(data, RlxNeeds("rlx_aspo", None, 0.0), batch_keys=keys)["session_keys"] == keys
