"""AEPO's policy-loss maths (Agentic Entropy-Balanced PO, arXiv 2510.14545).

Two pieces, both per token:

1. Entropy-weighted advantage: Ĥ_t = (H_t - mean H) / std H over the valid tokens of the batch (std 0 -> 1, unbiased
   std), where "the batch" is the training step's batch: the caller passes its `stats` so that every micro-batch of a
   split uses the same Ĥ (verl's contract: micro-batch losses add up to the mini-batch loss). Without `stats` the
   tensors given are the batch (the reference code's per-call statistics when called per micro-batch). Ã_t = A_t · max(1 + α·sg(Ĥ_t), floor). The floor (default 0) stops a very low-entropy token from flipping
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


def entropy_stats(entropy: torch.Tensor, response_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of the entropy over valid tokens, detached; std = 0 or a single token -> 1 (unbiased std)."""
    # masked sums instead of a boolean gather: two dot products over the full tensor, no compaction copy
    h = entropy.detach().reshape(-1)
    m = response_mask.reshape(-1).to(h.dtype)
    n = m.sum()
    mean = torch.dot(h, m) / n.clamp_min(1.0)
    centred = (h - mean) * m
    var = torch.dot(centred, centred) / (n - 1.0).clamp_min(1.0)
    std = var.sqrt()
    return mean, torch.where((std > 0) & (n >= 2), std, torch.ones_like(std))


def normalised_entropy(entropy: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Standardise token entropy over the valid tokens: (H - mean) / std (0 on padding), detached."""
    mean, std = entropy_stats(entropy, response_mask)
    return (entropy.detach() - mean) / std * response_mask.to(entropy.dtype)


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
    stats: tuple[torch.Tensor | float, torch.Tensor | float] | None = None,
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
        stats: (mean, std) of the entropy over the whole batch (`entropy_stats` of it); None: computed from the
            valid tokens given here.

    Entries on padding (response_mask = 0) are not meaningful; aggregate with the mask. Written with few full-size
    passes because it runs on every micro-batch.

    Raises:
        ValueError: unknown `sg_scope`.
    """
    if sg_scope not in SG_SCOPES:
        raise ValueError(f"aepo.sg_scope must be one of {SG_SCOPES}, got {sg_scope!r}")
    mask = response_mask.bool()
    h = entropy.detach()
    if stats is None:
        mean, std = entropy_stats(h, mask)
    else:
        mean, std = (torch.as_tensor(v, dtype=h.dtype, device=h.device).detach().reshape(()) for v in stats)
    # 1 + α·(h − mean)/std as one fused multiply-add
    weight = torch.addcmul(1.0 - alpha * mean / std, h, alpha / std)
    if weight_floor is not None:
        weight = weight.clamp_min(weight_floor)
    adv = advantages * weight

    log_ratio = torch.clamp(log_prob - old_log_prob, min=-20.0, max=20.0)
    ratio = torch.exp(log_ratio)
    upper = 1.0 + clip_high
    above = ratio.detach() > upper
    if sg_scope == "all":
        sg = above
    elif sg_scope == "high_entropy":
        sg = above & (h > mean)
    else:
        sg = above & (h <= mean)
    # U_t = (1+ε_h)·ρ/sg(ρ): value 1+ε_h, gradient (1+ε_h)·∇logπθ (only where selected)
    clipped_ratio = torch.where(sg, ratio * (upper / ratio.detach()), torch.clamp(ratio, 1.0 - clip_low, upper))

    # max(−Ãρ, −Ã·clip) = −min(Ãρ, Ã·clip); dual clip for Ã < 0: min(ℓ, −Ã·c)
    gain1 = adv * ratio
    gain2 = adv * clipped_ratio
    clipped = gain2 < gain1
    gain = torch.minimum(gain1, gain2)
    negative = adv < 0
    gain3 = adv * clip_c
    clipped_lower = negative & (gain < gain3)
    loss = -torch.where(negative, torch.maximum(gain, gain3), gain)
    sg_clipped = sg & (adv > 0) & mask
    return AepoTokenLoss(loss, ratio, clipped, clipped_lower, sg_clipped, weight, log_ratio)


def aepo_metrics(out: AepoTokenLoss, response_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """verl's policy-loss metrics plus AEPO's own, as 0-d tensors (the plugin turns them into floats)."""
    mask = response_mask.bool()
    maskf = response_mask.to(out.log_ratio.dtype)
    n = maskf.sum().clamp_min(1.0)
    flat = maskf.reshape(-1)
    return {
        "actor/pg_clipfrac": (out.clipped & mask).sum() / n,
        "actor/ppo_kl": -torch.dot(out.log_ratio.detach().reshape(-1), flat) / n,
        "actor/pg_clipfrac_lower": (out.clipped_lower & mask).sum() / n,
        "actor/aepo_sg_clipfrac": out.sg_clipped.sum() / n,
        "actor/aepo_adv_weight_mean": torch.dot(out.weight.detach().reshape(-1).to(flat.dtype), flat) / n,
    }
