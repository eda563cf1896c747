"""rlx.ops against straightforward per-sample reference loops on random inputs (the ops themselves never loop over
samples), plus the ops-level edge cases: empty masks, single-sample groups, VAPO's lambda clamp."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlx.ops import vapo as vapo_ops
from rlx.ops.aepo import normalised_entropy
from rlx.ops.aspo import aspo_bias, aspo_metrics
from rlx.ops.common import group_index, group_logsumexp
from rlx.ops.gepo import group_log_denominator
from rlx.ops.vapo import decoupled_gae, length_adaptive_lambda, positive_nll, vapo_advantages, whiten_stats


def random_batch(n=12, width=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, width + 1, (n,), generator=gen)
    lengths[0] = width
    mask = (torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)).double()
    uid = np.array([f"g{i % 3}" for i in range(n)], dtype=object)
    return gen, mask, uid


def test_group_index_and_logsumexp():
    gidx, n = group_index(np.array(["b", "a", "b", "c"], dtype=object))
    assert n == 3 and gidx.tolist() == [0, 1, 0, 2]  # ids in order of first appearance
    gidx2, n2 = group_index(torch.tensor([7, 3, 7]))  # small non-negative ids are used as they are
    assert n2 == 8 and gidx2.tolist() == [7, 3, 7]
    gidx3, n3 = group_index(torch.tensor([100, -3, 100]))  # others are factorised
    assert n3 == 2 and gidx3.tolist() == [1, 0, 1]
    x = torch.tensor([0.0, 1.0, -torch.inf, 2.0], dtype=torch.float64)
    out = group_logsumexp(x, torch.tensor([0, 0, 1, 1]), 2)
    assert out[0].item() == pytest.approx(math.log(1 + math.e))
    assert out[1].item() == pytest.approx(2.0)
    assert group_logsumexp(torch.tensor([-torch.inf]), torch.tensor([0]), 1)[0] == -torch.inf


def test_gepo_denominator_matches_a_per_group_loop():
    gen, mask, uid = random_batch()
    old = -torch.rand(mask.shape, generator=gen, dtype=torch.float64) * 2
    got = group_log_denominator(old, mask, uid)
    lengths = mask.sum(-1)
    q = torch.exp((old * mask).sum(-1) / lengths.clamp_min(1))
    for i in range(len(uid)):
        members = [j for j in range(len(uid)) if uid[j] == uid[i] and lengths[j] > 0]
        qs = q[members]
        assert got[i].item() == pytest.approx(math.log((qs**2).sum() / qs.sum()), rel=1e-9)


def test_vapo_gae_matches_a_per_sample_loop_and_lambda_clamps():
    gen, mask, _ = random_batch(seed=1)
    rewards = torch.rand(mask.shape, generator=gen, dtype=torch.float64) * mask
    values = torch.rand(mask.shape, generator=gen, dtype=torch.float64)
    lam = length_adaptive_lambda(mask, 0.3).double()
    assert ((lam >= 0) & (lam <= 1)).all()
    assert (lam[mask.sum(-1) <= 1 / 0.3] == 0).all()  # |y| <= 1/alpha -> 0
    adv, ret = decoupled_gae(rewards, values, mask, 0.95, lam, 0.9)
    for i in range(mask.shape[0]):
        n = int(mask[i].sum())
        for t in range(n):
            a_p = sum(
                (0.95 * lam[i].item()) ** k
                * (rewards[i, t + k] + 0.95 * (values[i, t + k + 1] if t + k + 1 < n else 0.0) - values[i, t + k])
                for k in range(n - t)
            )
            a_c = sum(
                (0.95 * 0.9) ** k
                * (rewards[i, t + k] + 0.95 * (values[i, t + k + 1] if t + k + 1 < n else 0.0) - values[i, t + k])
                for k in range(n - t)
            )
            assert adv[i, t].item() == pytest.approx(float(a_p), abs=1e-9)
            assert ret[i, t].item() == pytest.approx(float(a_c + values[i, t]), abs=1e-9)
    whitened, _, _ = vapo_advantages(rewards, values, mask, gamma=0.95, alpha=0.3, lambda_critic=0.9)
    valid = mask.bool()
    assert whitened[valid].mean().abs() < 1e-9 and whitened[~valid].abs().max() == 0
    with pytest.raises(ValueError, match="alpha must be > 0"):
        length_adaptive_lambda(mask, 0.0)


def test_positive_nll_normalises_over_correct_tokens_and_handles_none_correct():
    log_prob = torch.log(torch.tensor([[0.5, 0.25, 1.0], [0.1, 0.2, 0.3]], dtype=torch.float64)).requires_grad_(True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    loss, m = positive_nll(log_prob, mask, torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2)
    assert m["actor/vapo_nll_token_frac"] == pytest.approx(2 / 5)
    loss.backward()
    assert log_prob.grad[1].abs().sum() == 0 and log_prob.grad[0, 2] == 0
    none, _ = positive_nll(log_prob, mask, torch.tensor([0.0, 0.0]))
    assert none.item() == 0.0
    global_norm, _ = positive_nll(log_prob, mask, torch.tensor([1.0, 0.0]), num_tokens=4)
    assert global_norm.item() == pytest.approx(loss.item() / 2)


def test_aspo_bias_matches_a_per_group_loop():
    gen, mask, uid = random_batch(n=15, seed=2)
    lengths = mask.sum(-1)
    base = torch.randn(15, generator=gen, dtype=torch.float64)
    adv = base.unsqueeze(-1) * mask
    used = torch.rand(15, generator=gen) > 0.3
    pos = torch.where(
        used, (torch.rand(15, generator=gen) * lengths).floor(), torch.full((15,), -1.0, dtype=torch.float64)
    )
    correct = torch.rand(15, generator=gen) > 0.4
    out = aspo_bias(adv, mask, uid, pos, used, correct, delta=-2.0, k=0.7)
    for i in range(15):
        elig = [j for j in range(15) if uid[j] == uid[i] and used[j] and correct[j] and pos[j] >= 0 and lengths[j] > 0]
        if i in elig:
            p_bar = sum(pos[j] for j in elig) / len(elig)
            l_bar = sum(lengths[j] for j in elig) / len(elig)
            raw = -2.0 * (pos[i] - p_bar) / l_bar
            b = max(min(raw, 0.7 * abs(base[i])), -0.7 * abs(base[i]))
        else:
            b = 0.0
        assert out.bias[i].item() == pytest.approx(float(b), abs=1e-12)
        assert torch.allclose(out.advantages[i], (base[i] + b) * mask[i])
    m = aspo_metrics(mask, pos, used, None, out)
    assert m["aspo/code_usage_ratio"] == pytest.approx(float((used & (pos >= 0)).double().mean()))
    assert "aspo/code_pass_ratio" not in m
    m2 = aspo_metrics(mask, pos, used, torch.ones(15), out)
    assert m2["aspo/code_pass_ratio"] == pytest.approx(1.0)


def test_aspo_single_sample_groups_and_empty_masks_are_untouched():
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    adv = torch.tensor([[0.5, 0.5], [0.0, 0.0], [-1.0, 0.0]])
    out = aspo_bias(adv, mask, ["a", "b", "c"], [0, 0, 0], [1, 1, 1], [1, 1, 1])
    assert torch.equal(out.advantages, adv) and torch.equal(out.bias.abs(), torch.zeros(3, dtype=torch.float64))
    assert out.eligible.tolist() == [True, False, True]  # eligible, but a one-sample group is its own mean
    with pytest.raises(ValueError, match="first_code_pos: expected 3"):
        aspo_bias(adv, mask, ["a", "b", "c"], [0, 0], [1, 1, 1], [1, 1, 1])


def test_normalised_entropy_edge_cases():
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    h = normalised_entropy(torch.tensor([[1.0, 3.0, 100.0]]), mask)
    assert torch.allclose(h, torch.tensor([[-1 / math.sqrt(2), 1 / math.sqrt(2), 0.0]]))
    assert torch.equal(normalised_entropy(torch.full((1, 3), 2.0), mask), torch.zeros(1, 3))  # std 0 -> 1
    assert torch.equal(normalised_entropy(torch.ones(1, 3), torch.zeros(1, 3)), torch.zeros(1, 3))


def _loop_gae(r: list[float], v: list[float], m: list[int], gamma: float, lam: float) -> list[float]:
    """Plain-Python float64 GAE over one sequence, skipping masked tokens like verl's gae (independent reference)."""
    adv = [0.0] * len(r)
    trace, next_v = 0.0, 0.0
    for t in range(len(r) - 1, -1, -1):
        if m[t]:
            delta = r[t] + gamma * next_v - v[t]
            trace = delta + gamma * lam * trace
            next_v = v[t]
        adv[t] = trace
    return adv


@pytest.mark.parametrize("block_rows", [None, 1, 4])
@pytest.mark.parametrize("horizon", [1, 2, 7, 33, 64])
def test_vapo_scan_matches_a_plain_python_loop_with_ragged_masks_and_holes(horizon, block_rows):
    """Any block size is the same scan: with 1 row per block the right-padded and empty rows take the fused path
    (no holes in their block), the others the masked one; with 4, blocks mix them."""
    gen = np.random.default_rng(horizon)
    bs = 9
    rewards = gen.normal(size=(bs, horizon))
    values = gen.normal(size=(bs, horizon))
    mask = (gen.random((bs, horizon)) < 0.7).astype(np.int64)  # holes anywhere (observation tokens)
    mask[0] = 0  # empty response
    mask[1, : horizon // 2 + 1] = 1  # right-padded one
    mask[1, horizon // 2 + 1 :] = 0
    lam = gen.random(bs)
    lam[2], lam[3] = 0.0, 1.0
    gamma, lam_critic = 0.93, 0.8
    adv, ret = decoupled_gae(
        torch.tensor(rewards),
        torch.tensor(values),
        torch.tensor(mask),
        gamma,
        torch.tensor(lam),
        lam_critic,
        block_rows=block_rows,
    )
    for i in range(bs):
        r, v, m = rewards[i].tolist(), values[i].tolist(), mask[i].tolist()
        want_adv = _loop_gae(r, v, m, gamma, float(lam[i]))
        want_ret = [a + vv for a, vv in zip(_loop_gae(r, v, m, gamma, lam_critic), v, strict=True)]
        np.testing.assert_allclose(adv[i].numpy(), want_adv, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ret[i].numpy(), want_ret, rtol=1e-12, atol=1e-12)


def test_vapo_scan_of_right_padded_rows_in_blocks_matches_the_loop_float32():
    """The fused path (no holes anywhere), several blocks, float32 as the trainer runs it: float32 rounding only."""
    gen = np.random.default_rng(7)
    bs, horizon = 37, 20
    lengths = gen.integers(0, horizon + 1, bs)
    mask = (np.arange(horizon)[None] < lengths[:, None]).astype(np.float32)
    rewards = (gen.normal(size=(bs, horizon)) * mask).astype(np.float32)
    values = gen.normal(size=(bs, horizon)).astype(np.float32)  # garbage past the end must not leak in
    lam = gen.random(bs).astype(np.float32)
    adv, ret = decoupled_gae(
        torch.tensor(rewards), torch.tensor(values), torch.tensor(mask), 0.99, torch.tensor(lam), 0.95, block_rows=5
    )
    assert adv.dtype == torch.float32
    for i in range(bs):
        r, v, m = rewards[i].tolist(), values[i].tolist(), mask[i].tolist()
        np.testing.assert_allclose(adv[i].numpy(), _loop_gae(r, v, m, 0.99, float(lam[i])), rtol=2e-5, atol=2e-5)
        want_ret = [a + vv for a, vv in zip(_loop_gae(r, v, m, 0.99, 0.95), v, strict=True)]
        np.testing.assert_allclose(ret[i].numpy(), want_ret, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("block_bytes", [1, 1 << 30])
def test_whitening_statistics_merged_over_blocks_match_two_pass_float64(monkeypatch, block_bytes):
    """verl's masked_whiten: mean over the valid entries, unbiased variance. Values far from 0 (1e4 ± 1) would lose
    the variance to cancellation in a one-pass sum of squares; the per-block centred sums merged pairwise keep it."""
    monkeypatch.setattr(vapo_ops, "_BLOCK_BYTES", block_bytes)  # 1: one row per block; 1 << 30: one block
    gen = np.random.default_rng(3)
    x = 1e4 + gen.normal(size=(23, 11))
    mask = gen.random((23, 11)) < 0.6
    mask[4] = False  # an empty block when a block is one row
    mean, scale = whiten_stats(torch.tensor(x), torch.tensor(mask))
    valid = x[mask]
    want_mean = valid.sum() / valid.size
    want_var = ((valid - want_mean) ** 2).sum() / (valid.size - 1)
    assert float(mean) == pytest.approx(want_mean, rel=1e-15)
    assert float(scale) == pytest.approx(1 / math.sqrt(want_var + 1e-8), rel=1e-10)
    whitened = vapo_ops.masked_whiten(torch.tensor(x), torch.tensor(mask))
    np.testing.assert_allclose(whitened.numpy()[mask], (valid - want_mean) / math.sqrt(want_var + 1e-8), atol=1e-10)
