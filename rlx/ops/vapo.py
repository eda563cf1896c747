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


def _right_padded(valid: torch.Tensor) -> bool:
    """Every row is valid tokens then padding, with no masked (observation) token between valid ones."""
    return bool((valid[:, 1:] <= valid[:, :-1]).all())


def next_valid_values(values: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """V at the next valid token after t (0 after the last one), per position [bs, T], without a loop.

    This is the `nextvalues` verl's GAE carries across masked (observation) tokens.
    """
    bs, horizon = values.shape
    valid = response_mask.bool()
    if _right_padded(valid):
        # the usual right-padded response without holes: the next valid token is simply t + 1
        shifted = values[:, 1:] * valid[:, 1:]
        return torch.cat([shifted, shifted.new_zeros(bs, 1)], 1)
    pos = torch.arange(horizon, device=values.device).expand(bs, horizon)
    idx = torch.where(valid, pos, torch.full_like(pos, horizon))
    first_from = torch.flip(torch.cummin(torch.flip(idx, [1]), 1).values, [1])  # first valid index >= t
    nxt = torch.cat([first_from[:, 1:], torch.full((bs, 1), horizon, device=values.device)], 1)  # ... > t
    return torch.gather(values, 1, nxt.clamp_max(horizon - 1)) * (nxt < horizon)


# The reverse scan runs over blocks of rows: one block's TD errors and both traces (3 x T x rows values) stay in
# cache for all T steps, where one scan over the whole batch streams 2 x bs values through memory at every step
# (and transposes [bs, T] twice). _MAX_BLOCKS bounds the tensor ops (blocks x T) for long responses, where a block
# no longer fits in cache anyway. At 65,536 x 64 on 2 cores (bench/plugins.py) this took rlx_vapo from 4.3x
# grpo_vectorized to 1.8-2.0x.
_BLOCK_BYTES = 2 << 20
_MAX_BLOCKS = 16


def _block_rows(bs: int, horizon: int, itemsize: int) -> int:
    by_cache = max(1, _BLOCK_BYTES // (3 * horizon * itemsize))
    return max(by_cache, -(-bs // _MAX_BLOCKS))


def _reverse_scan(delta: torch.Tensor, valid: torch.Tensor | None, decay: torch.Tensor) -> torch.Tensor:
    """trace_t = δ_t + decay·trace_{t+1} over the last dim of δ [n, T], for each of decay's rows [k, n].

    With `valid` [n, T] (a mask with holes) a masked token passes the trace through unchanged, as verl's gae does;
    without it, δ is already 0 on the padding after the last valid token, where the trace is then 0 too.

    Returns:
        traces [k, T, n] (time-major: each step reads and writes contiguous memory).
    """
    delta_t = delta.t().contiguous()  # [T, n]
    out = torch.empty(decay.shape[0], *delta_t.shape, dtype=delta.dtype, device=delta.device)
    out[:, -1] = delta_t[-1] if valid is None else delta_t[-1] * valid[:, -1]
    valid_t = None if valid is None else valid.t().contiguous()
    for t in range(delta_t.shape[0] - 2, -1, -1):
        torch.addcmul(delta_t[t], decay, out[:, t + 1], out=out[:, t])
        if valid_t is not None:
            torch.where(valid_t[t], out[:, t], out[:, t + 1], out=out[:, t])
    return out


def decoupled_gae(
    token_level_rewards: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    gamma: float,
    lam_policy: torch.Tensor | float,
    lam_critic: float,
    *,
    block_rows: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE with one λ for the advantages (scalar or per sample [bs]) and another for the value targets.

    Args:
        block_rows: rows per block of the reverse scan (default: sized to the cache, see `_block_rows`); any
            value gives the same result.

    Returns:
        (raw advantages [bs, T] with λ_policy, returns [bs, T] = A(λ_critic) + V), both not whitened.
        Per block of rows, the TD errors are computed at once and the two traces run in one reverse scan over time
        on a stacked [2, rows] state (one fused multiply-add per step when the mask has no holes).
    """
    with torch.no_grad():
        bs, horizon = token_level_rewards.shape
        dtype = torch.promote_types(token_level_rewards.dtype, values.dtype)
        lam_p = torch.as_tensor(lam_policy, dtype=dtype, device=values.device).expand(bs)
        decay = torch.stack([gamma * lam_p, torch.full_like(lam_p, gamma * lam_critic)])  # [2, bs]
        adv = torch.empty(bs, horizon, dtype=dtype, device=values.device)
        ret = torch.empty_like(adv)
        if horizon == 0:
            return adv, ret
        rows = block_rows or _block_rows(bs, horizon, dtype.itemsize)
        for lo in range(0, bs, rows):
            block = slice(lo, lo + rows)
            vals = values[block].to(dtype)
            valid = response_mask[block].bool()
            padded = _right_padded(valid)
            if padded:  # δ_t = r_t + γ·V_{t+1}·m_{t+1} − V_t, and 0 on the padding
                mask = valid.to(dtype)
                delta = token_level_rewards[block].to(dtype) - vals
                delta[:, :-1].addcmul_(vals[:, 1:], mask[:, 1:], value=gamma)
                delta.mul_(mask)
            else:
                delta = token_level_rewards[block].to(dtype) + gamma * next_valid_values(vals, valid) - vals
            traces = _reverse_scan(delta, None if padded else valid, decay[:, block])
            adv[block] = traces[0].t()
            torch.add(traces[1].t(), vals, out=ret[block])
        return adv, ret


def whiten_stats(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, rsqrt(var + eps)) over the valid entries, as verl's `masked_whiten` computes them (unbiased variance).

    Two reads of `values` in row blocks that stay in cache: each block's count, mean and centred sum of squares
    (in the values' dtype, each block centred on its own mean), merged in float64 by Chan et al.'s pairwise
    update. Both are 0-d tensors in the values' dtype.
    """
    rows = values.reshape(values.shape[0], -1) if values.dim() else values.reshape(1, 1)
    weights = mask.reshape(rows.shape).to(rows.dtype)
    step = _block_rows(rows.shape[0], max(rows.shape[1], 1), rows.dtype.itemsize)
    n = mean = m2 = torch.zeros((), dtype=torch.float64, device=values.device)
    for lo in range(0, rows.shape[0], step):
        x, w = rows[lo : lo + step], weights[lo : lo + step]
        n_b = w.sum().double()
        if n_b == 0:
            continue
        mean_b = (x * w).sum().double() / n_b
        m2_b = (torch.square(x - mean_b.to(x.dtype)) * w).sum().double()
        total = n + n_b
        d = mean_b - mean
        mean, m2, n = mean + d * n_b / total, m2 + m2_b + d * d * n * n_b / total, total
    var = m2 / (n - 1.0).clamp_min(1.0)
    return mean.to(values.dtype), torch.rsqrt(var + eps).to(values.dtype)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Whiten over the valid entries like verl's `masked_whiten`: (x − mean)·rsqrt(var + eps), see `whiten_stats`."""
    mean, scale = whiten_stats(values, mask, eps)
    return torch.sub(values, mean).mul_(scale)


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
    # in place: the first write to a fresh [bs, T] tensor (page faults) costs as much as the arithmetic (issue 15)
    if whiten and mask.sum() > 1:
        mean, scale = whiten_stats(adv, mask)
        adv.sub_(mean).mul_(scale)
    adv.mul_(mask)
    return adv.to(token_level_rewards.dtype), ret.to(token_level_rewards.dtype), lam


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
