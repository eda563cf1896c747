"""GAD ops: expected values derived by hand (float64 maths / numpy), not from the implementation."""

import math

import numpy as np
import pytest
import torch

from rlx.ops.gad import gad_disc_loss, gad_token_rewards, last_token_index


def _np_bt(dt, ds):
    d = np.asarray(dt, dtype=np.float64) - np.asarray(ds, dtype=np.float64)
    loss = np.mean(np.logaddexp(0.0, -d))  # -log sigmoid(d) = log(1 + e^-d)
    sig_neg = 1.0 / (1.0 + np.exp(d))  # sigmoid(-d)
    n = d.size
    return loss, -sig_neg / n, sig_neg / n


def test_bt_loss_hand_values():
    # single pair, diff 0: -log(1/2) = log 2
    r = gad_disc_loss(torch.tensor([1.5], dtype=torch.float64), torch.tensor([1.5], dtype=torch.float64))
    assert r.loss.item() == pytest.approx(math.log(2.0), abs=1e-15)
    # diffs 1 and -1: mean(log(1+e^-1), log(1+e^1)) = (log(1+e^-1) + 1 + log(1+e^-1)) / 2
    r = gad_disc_loss(torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64))
    expected = (2 * math.log(1 + math.exp(-1.0)) + 1.0) / 2
    assert r.loss.item() == pytest.approx(expected, abs=1e-14)
    assert r.d_acc.item() == 0.5
    assert r.teacher_score_mean.item() == 0.5 and r.student_score_mean.item() == 0.5


def test_bt_loss_and_gradient_match_numpy():
    rng = np.random.default_rng(7)
    dt_np, ds_np = rng.normal(size=12), rng.normal(size=12)
    dt = torch.tensor(dt_np, requires_grad=True)
    ds = torch.tensor(ds_np, requires_grad=True)
    r = gad_disc_loss(dt, ds)
    r.loss.backward()
    loss, g_dt, g_ds = _np_bt(dt_np, ds_np)
    assert r.loss.item() == pytest.approx(loss, abs=1e-14)
    np.testing.assert_allclose(dt.grad.numpy(), g_dt, atol=1e-15)
    np.testing.assert_allclose(ds.grad.numpy(), g_ds, atol=1e-15)
    assert r.d_acc.item() == pytest.approx(np.mean(dt_np > ds_np))


def test_gradcheck_float64():
    rng = np.random.default_rng(3)
    dt = torch.tensor(rng.normal(size=6), requires_grad=True)
    ds = torch.tensor(rng.normal(size=6), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: gad_disc_loss(a, b).loss, (dt, ds))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_differences_finite(dtype):
    dt = torch.tensor([100.0, -100.0], dtype=dtype, requires_grad=True)
    ds = torch.tensor([0.0, 0.0], dtype=dtype, requires_grad=True)
    r = gad_disc_loss(dt, ds)
    r.loss.backward()
    # pair 1: softplus(-100) ~ e^-100 ~ 0; pair 2: softplus(100) = 100 + log(1+e^-100) ~ 100 -> mean 50
    assert torch.isfinite(r.loss) and r.loss.item() == pytest.approx(50.0, rel=1e-6)
    assert torch.isfinite(dt.grad).all() and torch.isfinite(ds.grad).all()
    # dL/d dt = -sigmoid(-diff)/N: ~0 for diff=+100, -1/2 for diff=-100
    assert dt.grad[0].item() == pytest.approx(0.0, abs=1e-30) and dt.grad[1].item() == pytest.approx(-0.5)
    assert ds.grad[1].item() == pytest.approx(0.5)


def test_d_acc_ties_count_as_wrong():
    r = gad_disc_loss(torch.tensor([1.0, 2.0, 3.0, 0.0]), torch.tensor([1.0, 1.0, 3.0, 5.0]))
    assert r.d_acc.item() == 0.25  # only pair 2 is strictly greater; the two ties count as not separated


def test_shape_errors():
    with pytest.raises(ValueError, match="pair up"):
        gad_disc_loss(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="at least one"):
        gad_disc_loss(torch.zeros(0), torch.zeros(0))


def test_reward_at_last_response_token_detached():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    s = torch.tensor([0.5, -2.0, 7.0, 3.0], dtype=torch.float64, requires_grad=True)
    out = gad_token_rewards(s, mask)
    expected = np.zeros((4, 4))
    expected[0, 2], expected[1, 0], expected[3, 3] = 0.5, -2.0, 3.0  # empty row 2 gets nothing
    np.testing.assert_array_equal(out.numpy(), expected)
    assert not out.requires_grad
    assert last_token_index(mask).tolist() == [2, 0, -1, 3]
