"""ASPO's advantage shaping for early code invocation (arXiv 2508.19201).

Given the base estimator's sequence-level advantage A_i (GRPO's per-sample scalar, or the token mean of GAE's
advantages), the eligible set E = {correct ∧ used_code [∧ code_pass]} and, per prompt group g with E_g ≠ ∅,

    p̄_g = mean_{E_g} p_i,   L̄_g = mean_{E_g} |y_i|     (p_i: position of the first code call, -1 = none)
    b_i  = clip(δ·(p_i − p̄_g)/L̄_g, −k·|A_i|, k·|A_i|)   for i ∈ E, else 0
    A'_t = A_t + b_i on the response tokens of i

With δ < 0, code earlier than the group's eligible mean gets a positive nudge; k < 1 keeps |b| < |A|, so the sign
of a correct sample's advantage never flips. Invariants: rewards and returns (critic targets) are not touched;
groups with no eligible sample or degenerate length statistics (L̄ ≤ 0 or not finite) are left alone; only tokens
with response_mask = 1 change.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from rlx.ops.common import group_index, group_sum, per_sample, seq_mean


class AspoBias(NamedTuple):
    """The shaped advantages and the per-sample terms behind them."""

    advantages: torch.Tensor  # [bs, T] A + b·mask
    bias: torch.Tensor  # b_i [bs] (0 outside E and in untouched groups)
    eligible: torch.Tensor  # bool [bs]: i ∈ E and its group is shaped
    hit_bound: torch.Tensor  # bool [bs]: |raw bias| > k·|A_i| (the clip was active)
    token_lengths: torch.Tensor  # response tokens per sample [bs]


def aspo_bias(
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    first_code_pos: Any,
    used_code: Any,
    correct: Any,
    *,
    delta: float = -2.0,
    k: float = 0.7,
    code_pass: Any = None,
    require_code_pass: bool = False,
    lengths: Any = None,
) -> AspoBias:
    """Add ASPO's bounded, group-relative position bias to `advantages` (see the module docstring).

    Args:
        advantages: base advantages [bs, T] (not modified in place).
        response_mask: valid response tokens [bs, T].
        index: prompt-group label per sample (verl's `uid`).
        first_code_pos: position of the first code call per sample [bs], -1 where no code was used. Use the same
            unit as `lengths` (tokens by default).
        used_code: per-sample bool [bs].
        correct: per-sample correctness [bs] (bool or score; > 0 counts as correct).
        delta: δ, the bias scale (paper: -2.0 conservative, -2.5 aggressive).
        k: bound factor in (0, 1): |b_i| ≤ k·|A_i|.
        code_pass: optional per-sample "the code ran successfully" [bs]; required for eligibility when
            `require_code_pass` is set (missing telemetry then makes nothing eligible).
        require_code_pass: add code_pass to the eligibility condition.
        lengths: per-sample length in the unit of `first_code_pos` (default: response token count).
    """
    device = advantages.device
    bs = advantages.shape[0]
    mask = response_mask.to(advantages.dtype)
    token_lengths = mask.sum(-1)
    length = (
        token_lengths.to(torch.float64)
        if lengths is None
        else per_sample(lengths, bs, dtype=torch.float64, device=device, name="lengths")
    )
    pos = per_sample(first_code_pos, bs, dtype=torch.float64, device=device, name="first_code_pos")
    used = per_sample(used_code, bs, dtype=torch.float64, device=device, name="used_code") > 0
    ok = per_sample(correct, bs, dtype=torch.float64, device=device, name="correct") > 0
    eligible = ok & used & (pos >= 0) & (token_lengths > 0)
    if require_code_pass:
        passed = (
            per_sample(code_pass, bs, dtype=torch.float64, device=device, name="code_pass") > 0
            if code_pass is not None
            else torch.zeros_like(eligible)
        )
        eligible = eligible & passed

    gidx, n_groups = group_index(index, device=device)
    w = eligible.to(torch.float64)
    count = group_sum(w, gidx, n_groups)
    mean_pos = group_sum(pos * w, gidx, n_groups) / count.clamp_min(1.0)
    mean_len = group_sum(length * w, gidx, n_groups) / count.clamp_min(1.0)
    shaped_group = (count > 0) & (mean_len > 0) & torch.isfinite(mean_len) & torch.isfinite(mean_pos)
    eligible = eligible & shaped_group[gidx]

    base = seq_mean(advantages, mask, token_lengths).to(torch.float64)
    bound = k * base.abs()
    safe_len = torch.where(shaped_group, mean_len, torch.ones_like(mean_len))[gidx]
    raw = delta * (pos - mean_pos[gidx]) / safe_len
    bias = torch.where(eligible, torch.maximum(torch.minimum(raw, bound), -bound), torch.zeros_like(raw))
    hit_bound = eligible & (raw.abs() > bound)
    shaped = torch.addcmul(advantages, bias.to(advantages.dtype).unsqueeze(-1), mask)
    return AspoBias(shaped, bias, eligible, hit_bound, token_lengths)


def aspo_metrics(
    response_mask: torch.Tensor,
    first_code_pos: Any,
    used_code: Any,
    code_pass: Any,
    result: AspoBias,
) -> dict[str, float]:
    """ASPO diagnostics: mean first-code position (over code users), code-usage ratio, mean response length,
    code-pass ratio (over code users; NaN-free) and the share of eligible samples whose bias hit ±k|A|."""
    bs = response_mask.shape[0]
    device = response_mask.device
    if bs == 0:
        return {}
    pos = per_sample(first_code_pos, bs, dtype=torch.float64, device=device, name="first_code_pos")
    used = (per_sample(used_code, bs, dtype=torch.float64, device=device, name="used_code") > 0) & (pos >= 0)
    n_used = used.sum().clamp_min(1)
    metrics = {
        "aspo/first_code_pos_mean": float((pos * used).sum() / n_used),
        "aspo/code_usage_ratio": float(used.double().mean()),
        "aspo/response_length_mean": float(result.token_lengths.double().mean()),
        "aspo/eligible_ratio": float(result.eligible.double().mean()),
        "aspo/bias_clip_ratio": float(result.hit_bound.sum() / result.eligible.sum().clamp_min(1)),
        "aspo/bias_abs_mean": float(result.bias.abs().sum() / result.eligible.sum().clamp_min(1)),
    }
    if code_pass is not None:
        passed = per_sample(code_pass, bs, dtype=torch.float64, device=device, name="code_pass") > 0
        metrics["aspo/code_pass_ratio"] = float((passed & used).sum() / n_used)
    return metrics
