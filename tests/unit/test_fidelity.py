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

    from rlx.verl_entry import AEPO_MEAN_FIELD, AEPO_STD_FIELD, RlxNeeds, actor_fields

    # padding (99) must not count: the valid tokens are those of H above
    ent = torch.tensor([[1.0, 3.0, 99.0], [5.0, 7.0, 99.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    data = TensorDict({"entropy": ent, "response_mask": mask}, batch_size=2)
    out = actor_fields(data, RlxNeeds(None, "rlx_aepo", 0.0))
    assert out[AEPO_MEAN_FIELD].tolist() == pytest.approx([4.0, 4.0])
    assert out[AEPO_STD_FIELD].tolist() == pytest.approx([math.sqrt(20.0 / 3.0)] * 2, rel=1e-6)


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
