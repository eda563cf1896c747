"""VAPO's advantage and NLL maths (Value-model-based Augmented PPO, arXiv 2504.05118).

- Length-adaptive λ per sample: λ_i = clamp(1 − 1/(α·|y_i|), 0, 1) (α = 0.05 in the paper; λ = 0 for |y| ≤ 1/α).
- Decoupled GAE: the policy's advantages use λ_i, the critic's targets use λ_critic (1.0 ⇒ Monte-Carlo returns),
  both from the same TD errors δ_t = r_t + γ·V_{t+1} − V_t. Like verl's `gae`, masked (observation) tokens are
  skipped: they neither decay the trace nor contribute a TD error, and the advantages are whitened over the batch.
- Positive-example NLL: −Σ_{i∈C} Σ_t m·logπθ / Σ_{i∈C} |y_i| over the correct samples C of one update
  mini-batch (the rlx trainer passes that mini-batch's count to every micro-batch, `rlx.verl_entry.actor_fields`).
"""

from __future__ import annotations

import torch

from rlx.ops.common import seq_lengths


def length_adaptive_lambda(response_mask: torch.Tensor, alpha: float) -> torch.Tensor:
    """λ_i = clamp(1 − 1/(α·|y_i|), 0, 1) per sample [bs] (0 for empty responses).

    Raises:
        ValueError: alpha is not positive.
    """
    if not alpha > 0:
        raise ValueError(f"vapo.alpha must be > 0, got {alpha}")
    length = seq_lengths(response_mask).to(torch.float64)
    lam = 1.0 - 1.0 / (alpha * length.clamp_min(1e-12))
    return lam.clamp(0.0, 1.0).to(torch.float32)


def next_valid_values(values: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """V at the next valid token after t (0 after the last one), per position [bs, T], without a loop.

    This is the `nextvalues` verl's GAE carries across masked (observation) tokens.
    """
    bs, horizon = values.shape
    valid = response_mask.bool()
    if bool((valid[:, 1:] <= valid[:, :-1]).all()):
        # the usual right-padded response without holes: the next valid token is simply t + 1
        shifted = values[:, 1:] * valid[:, 1:]
        return torch.cat([shifted, shifted.new_zeros(bs, 1)], 1)
    pos = torch.arange(horizon, device=values.device).expand(bs, horizon)
    idx = torch.where(valid, pos, torch.full_like(pos, horizon))
    first_from = torch.flip(torch.cummin(torch.flip(idx, [1]), 1).values, [1])  # first valid index >= t
    nxt = torch.cat([first_from[:, 1:], torch.full((bs, 1), horizon, device=values.device)], 1)  # ... > t
    return torch.gather(values, 1, nxt.clamp_max(horizon - 1)) * (nxt < horizon)


def decoupled_gae(
    token_level_rewards: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    gamma: float,
    lam_policy: torch.Tensor | float,
    lam_critic: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE with one λ for the advantages (scalar or per sample [bs]) and another for the value targets.

    Returns:
        (raw advantages [bs, T] with λ_policy, returns [bs, T] = A(λ_critic) + V), both not whitened.
        The TD errors are computed for all tokens at once; the two traces then run in one reverse scan over time on
        a stacked [2, bs] state (two tensor ops per step).
    """
    with torch.no_grad():
        bs, horizon = token_level_rewards.shape
        dtype = torch.promote_types(token_level_rewards.dtype, values.dtype)
        vals = values.to(dtype)
        delta = token_level_rewards.to(dtype) + gamma * next_valid_values(vals, response_mask) - vals
        delta = delta.t().contiguous()  # [T, bs]: each time step reads contiguous memory
        valid = response_mask.bool().t().contiguous()
        lam_p = torch.as_tensor(lam_policy, dtype=dtype, device=delta.device).expand(bs)
        decay = torch.stack([gamma * lam_p, torch.full_like(lam_p, gamma * lam_critic)])  # [2, bs]
        out = torch.empty(2, horizon, bs, dtype=dtype, device=delta.device)
        trace = torch.zeros(2, bs, dtype=dtype, device=delta.device)
        for t in range(horizon - 1, -1, -1):
            # valid token: δ_t + γλ·trace; masked token: the trace passes through unchanged (as in verl's gae)
            trace = torch.where(valid[t], torch.addcmul(delta[t], decay, trace), trace)
            out[:, t] = trace
        out = out.transpose(1, 2).contiguous()  # [2, bs, T]
        return out[0], out[1] + vals


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Whiten over the valid entries like verl's `masked_whiten` (unbiased variance, mean removed)."""
    m = mask.to(values.dtype).reshape(-1)
    flat = values.reshape(-1)
    n = m.sum()
    mean = torch.dot(flat, m) / n.clamp_min(1.0)
    centred = flat - mean
    var = torch.dot(centred * centred, m) / (n - 1.0).clamp_min(1.0)
    return (centred * torch.rsqrt(var + eps)).reshape(values.shape)


def vapo_advantages(
    token_level_rewards: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    gamma: float = 1.0,
    alpha: float = 0.05,
    lambda_critic: float = 1.0,
    whiten: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VAPO's advantages and value targets.

    Returns:
        (advantages [bs, T] (whitened over valid tokens and masked, as verl's gae), returns [bs, T], λ_i [bs]).
    """
    lam = length_adaptive_lambda(response_mask, alpha)
    adv, ret = decoupled_gae(token_level_rewards, values, response_mask, gamma, lam, lambda_critic)
    mask = response_mask.to(adv.dtype)
    if whiten and mask.sum() > 1:
        adv = masked_whiten(adv, mask)
    return (adv * mask).to(token_level_rewards.dtype), ret.to(token_level_rewards.dtype), lam


def positive_nll(
    log_prob: torch.Tensor, response_mask: torch.Tensor, correct: torch.Tensor, *, num_tokens: float | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """VAPO's positive-example LM loss −Σ_{i∈C} Σ_t m·logπθ / Σ_{i∈C} |y_i|.

    Args:
        log_prob: logπθ per token [bs, T] (gradients flow through it).
        response_mask: valid tokens [bs, T].
        correct: per-sample correctness [bs] (bool, 0/1 or scores: > 0 counts as correct).
        num_tokens: normaliser to use instead of this batch's correct-token count (the rlx actor loss passes the
            update mini-batch's count over all ranks / dp size, so micro-batch losses sum to the paper's mean).

    Returns:
        (loss 0-d tensor, 0 with a zero gradient when no sample is correct; metrics dict of floats).
    """
    sel = response_mask.to(log_prob.dtype) * (correct.reshape(-1, 1).to(log_prob.dtype) > 0).to(log_prob.dtype)
    n_correct_tokens = sel.sum()
    denom = n_correct_tokens.clamp_min(1.0) if num_tokens is None else torch.as_tensor(max(num_tokens, 1.0))
    loss = -(log_prob * sel).sum() / denom
    n_samples = int(response_mask.shape[0])
    metrics = {
        "actor/vapo_nll": float(loss.detach()),
        "actor/vapo_nll_token_frac": float(n_correct_tokens / response_mask.sum().clamp_min(1)),
        "actor/vapo_correct_frac": float((correct.reshape(-1) > 0).float().mean()) if n_samples else 0.0,
    }
    return loss, metrics
