"""AEPO's policy-loss maths (Agentic Entropy-Balanced PO, arXiv 2510.14545; docs/algorithms.md 3.7).

Two pieces, both per token:

1. Entropy-weighted advantage: Ĥ_t = (H_t - mean H) / std H over the valid tokens of the batch (std 0 -> 1, unbiased
   std), Ã_t = A_t · max(1 + α·sg(Ĥ_t), floor). The floor (default 0) stops a very low-entropy token from flipping
   the advantage's sign when α·Ĥ < -1; set `weight_floor=None` for the unclamped formula.
2. Entropy-balanced clipping: for tokens in the stop-gradient scope the upper clip bound is U_t = (1+ε_h)·ρ_t/sg(ρ_t),
   whose value is 1+ε_h but whose gradient is (1+ε_h)·∇logπθ, so a clipped token keeps a rescaled gradient instead of
   none. ℓ_t = max(-Ãρ, -Ã·clip(ρ, 1-ε_l, U_t)), then verl's dual clip min(ℓ, -Ã·c) for Ã < 0.

`sg_scope` picks the tokens that get U_t: "high_entropy" (Ĥ > 0, the paper's text; default), "all" (the ARPO
reference code) or "low_entropy" (Ĥ <= 0, ARLArena's behaviour, kept for comparison only).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from rlx.ops.common import masked_mean

SG_SCOPES = ("high_entropy", "all", "low_entropy")


class AepoTokenLoss(NamedTuple):
    """Per-token AEPO loss and the tensors its metrics are computed from (all [bs, T] unless noted)."""

    loss: torch.Tensor  # ℓ_t, not yet masked or aggregated
    ratio: torch.Tensor  # ρ_t
    clipped: torch.Tensor  # bool: the clipped branch is active (verl's pg_clipfrac numerator)
    clipped_lower: torch.Tensor  # bool: the dual-clip bound is active (verl's pg_clipfrac_lower numerator)
    sg_clipped: torch.Tensor  # bool: the stop-gradient upper bound is active (rescaled gradient kept)
    weight: torch.Tensor  # the advantage weight 1 + α·Ĥ_t (after the floor)
    log_ratio: torch.Tensor  # logπθ - logπold, clamped to ±20 like verl


def normalised_entropy(entropy: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Standardise token entropy over the valid tokens: (H - mean) / std, std = 0 (or one token) -> 1. Detached."""
    h = entropy.detach()
    mask = response_mask.to(h.dtype)
    n = mask.sum()
    mean = (h * mask).sum() / n.clamp_min(1.0)
    var = (((h - mean) * mask) ** 2).sum() / (n - 1.0).clamp_min(1.0)
    std = var.sqrt()
    std = torch.where((std > 0) & (n > 1), std, torch.ones_like(std))
    return (h - mean) / std * mask


def aepo_token_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    entropy: torch.Tensor,
    *,
    alpha: float = 0.2,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    clip_c: float = 3.0,
    sg_scope: str = "high_entropy",
    weight_floor: float | None = 0.0,
) -> AepoTokenLoss:
    """Compute AEPO's per-token loss matrix (see the module docstring for the formulas).

    Args:
        old_log_prob, log_prob, advantages, response_mask: verl's [bs, T] policy-loss inputs.
        entropy: per-token entropy [bs, T] (current or old policy; it is detached either way).
        alpha: entropy weight α (paper and reference code: 0.2).
        clip_low, clip_high: ε_l, ε_h.
        clip_c: dual-clip constant for negative advantages (verl's `clip_ratio_c`).
        sg_scope: which tokens keep a rescaled gradient when clipped above ("high_entropy", "all", "low_entropy").
        weight_floor: lower bound on 1 + α·Ĥ (None: no bound).

    Raises:
        ValueError: unknown `sg_scope`.
    """
    if sg_scope not in SG_SCOPES:
        raise ValueError(f"aepo.sg_scope must be one of {SG_SCOPES}, got {sg_scope!r}")
    mask = response_mask.bool()
    h_norm = normalised_entropy(entropy, mask)
    weight = 1.0 + alpha * h_norm
    if weight_floor is not None:
        weight = weight.clamp_min(weight_floor)
    adv = advantages * weight

    log_ratio = torch.clamp(log_prob - old_log_prob, min=-20.0, max=20.0)
    ratio = torch.exp(log_ratio)
    if sg_scope == "all":
        scope = mask
    elif sg_scope == "high_entropy":
        scope = mask & (h_norm > 0)
    else:
        scope = mask & (h_norm <= 0)

    upper = 1.0 + clip_high
    above = ratio > upper
    # U_t = (1+ε_h)·ρ/sg(ρ): value 1+ε_h, gradient (1+ε_h)·∇logπθ (only where it is selected below).
    sg_upper = upper * ratio / ratio.detach()
    clipped_ratio = torch.where(above & scope, sg_upper, torch.clamp(ratio, min=1.0 - clip_low, max=upper))

    loss1 = -adv * ratio
    loss2 = -adv * clipped_ratio
    clipped = loss2 > loss1
    loss = torch.maximum(loss1, loss2)
    loss3 = -adv * clip_c
    negative = adv < 0
    clipped_lower = (loss > loss3) & negative
    loss = torch.where(negative, torch.minimum(loss, loss3), loss)
    sg_clipped = above & scope & (adv > 0)
    return AepoTokenLoss(loss, ratio, clipped, clipped_lower, sg_clipped, weight, log_ratio)


def aepo_metrics(out: AepoTokenLoss, response_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """verl's policy-loss metrics plus AEPO's own, as 0-d tensors (the plugin turns them into floats)."""
    mask = response_mask.bool()
    return {
        "actor/pg_clipfrac": masked_mean(out.clipped.float(), mask),
        "actor/ppo_kl": masked_mean(-out.log_ratio.detach(), mask),
        "actor/pg_clipfrac_lower": masked_mean(out.clipped_lower.float(), mask),
        "actor/aepo_sg_clipfrac": masked_mean(out.sg_clipped.float(), mask),
        "actor/aepo_adv_weight_mean": masked_mean(out.weight.detach(), mask),
    }
