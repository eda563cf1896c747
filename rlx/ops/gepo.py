"""GEPO's group-expectation importance weight (Group Expectation PO, arXiv 2508.17850).

Per sample i with length-normalised sequence probabilities q_i = exp(mean_t logπold) and p_i = exp(mean_t logπθ):

    Ê_q[q] = Σ_j q_j² / Σ_j q_j   over the prompt group of i (its uid), detached
    w_i    = p_i / Ê_q[q]          (≠ 1 even on-policy: w_i = q_i / Ê_q[q])
    ℓ_i    = max(-w_i·A, -clip(w_i, 1-ε_l, 1+ε_h)·A)   broadcast to the tokens of i

The official code takes the expectation over the per-device batch; rlx groups by uid (`group_log_denominator`), so
the denominator does not depend on how verl splits the batch into micro-batches. Gradient flows through p_i only.

Non-finite inputs: padded positions (response_mask = 0) may hold NaN or ±inf in either log-prob or in the
advantages; they are selected away with `torch.where` everywhere (sequence means, the loss matrix, the metrics), never
multiplied by a 0 mask. A non-finite logπold at a valid token makes Ê_q[q] undefined: `group_log_denominator` raises
`ValueError` naming the row and position (rlx fails the step rather than train on a made-up denominator).

Metrics: GEPO has no dual clip (neither has verl's GSPO), so `actor/pg_clipfrac_lower`, verl's name for the
dual-clip share, is 0 as in verl's GSPO loss; the share of tokens clipped at 1-ε_l (A < 0, w < 1-ε_l) is
`actor/gepo_clipfrac_low`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from rlx.ops.common import group_index, group_logsumexp, masked_mean, seq_mean
from rlx.ops.options import DEFAULTS

LOG_W_MAX = float(DEFAULTS["gepo"]["log_w_max"])  # clamp on log w_i: exp() stays finite


def seq_mean_log_prob(log_prob: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Length-normalised sequence log-probability (Σ_t m·logπ)/|y| per sample [bs]; 0 for an empty response."""
    return seq_mean(log_prob, response_mask)


def group_log_denominator(old_log_prob: torch.Tensor, response_mask: torch.Tensor, index: Any) -> torch.Tensor:
    """log Ê_q[q] = log Σ_j q_j² − log Σ_j q_j over each sample's prompt group, returned per sample [bs].

    Args:
        old_log_prob: logπold per token [bs, T].
        response_mask: valid response tokens [bs, T].
        index: group label per sample (verl's `uid`: ndarray of str, list, or an integer tensor).

    Empty responses are left out of their group's expectation; a sample whose whole group is empty gets 0.
    Computed in log space (stable for long responses) without a Python loop over samples. Padded positions may hold
    anything (NaN, -inf): they are selected away.

    Raises:
        ValueError: logπold is NaN or ±inf at a valid token (the group expectation would be undefined).
    """
    with torch.no_grad():
        old_log_prob = old_log_prob.detach()
        log_q = seq_mean_log_prob(old_log_prob, response_mask)
        valid = response_mask.sum(-1) > 0
        if not bool(torch.where(valid, torch.isfinite(log_q), True).all()):  # [bs] check; padding is selected away
            _raise_non_finite(old_log_prob, response_mask)
        gidx, n_groups = group_index(index, device=log_q.device)
        if n_groups == 0:
            return torch.zeros_like(log_q)
        neg_inf = torch.full_like(log_q, -torch.inf)
        log_sum_q2 = group_logsumexp(torch.where(valid, 2.0 * log_q, neg_inf), gidx, n_groups)
        log_sum_q = group_logsumexp(torch.where(valid, log_q, neg_inf), gidx, n_groups)
        log_denom = (log_sum_q2 - log_sum_q)[gidx]
        return torch.where(torch.isfinite(log_denom), log_denom, torch.zeros_like(log_denom))


def _raise_non_finite(old_log_prob: torch.Tensor, response_mask: torch.Tensor) -> None:
    bad = response_mask.bool() & ~torch.isfinite(old_log_prob)
    where = "a valid response token"
    if bool(bad.any()):
        row, pos = (int(v) for v in bad.nonzero()[0])
        where = (
            f"{int(bad.sum())} valid response token(s) (first: row {row}, position {pos}, value "
            f"{float(old_log_prob[row, pos])})"
        )
    raise ValueError(
        f"rlx_gepo: the old log-prob is not finite at {where}; GEPO's group expectation E_q[q] would be undefined. "
        "hint: check the actor's old log-prob recomputation (NaN usually means a diverged model or a low-precision "
        "overflow)"
    )


class GepoLoss(NamedTuple):
    """Per-token GEPO loss and what its metrics come from."""

    loss: torch.Tensor  # [bs, T] per-token loss (the sequence loss broadcast over its tokens)
    weight: torch.Tensor  # w_i [bs]
    clipped: torch.Tensor  # bool [bs, T]: the clipped branch is active
    clipped_lower: torch.Tensor  # bool [bs, T]: clipped at 1-ε_l with a negative advantage (not a dual clip)
    log_ratio: torch.Tensor  # token logπθ - logπold (clamped), for ppo_kl


def gepo_token_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    log_denom: torch.Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    log_w_max: float = LOG_W_MAX,
) -> GepoLoss:
    """GEPO's per-token loss matrix; reduce it with seq-mean-token-mean to get the paper's per-sequence mean.

    Args:
        old_log_prob, log_prob, advantages, response_mask: verl's [bs, T] policy-loss inputs.
        log_denom: log Ê_q[q] per sample [bs] (from `group_log_denominator`, computed over the whole uid group).
        clip_low, clip_high: ε_l, ε_h (paper: 0.2 both).
        log_w_max: upper clamp on log w_i.
    """
    valid = response_mask.bool()
    log_p = seq_mean_log_prob(log_prob, response_mask)
    log_w = torch.clamp(log_p - log_denom.detach().to(log_p.dtype), max=log_w_max)
    w = torch.exp(log_w)
    w_tok = w.unsqueeze(-1).expand_as(advantages)
    adv = torch.where(valid, advantages, 0)  # padded advantages may be NaN: select them away, do not multiply by 0
    loss1 = -adv * w_tok
    loss2 = -adv * torch.clamp(w_tok, 1.0 - clip_low, 1.0 + clip_high)
    clipped = (loss2 > loss1) & valid
    loss = torch.maximum(loss1, loss2)  # 0 at padded positions: w is finite there (seq mean) and adv is 0
    clipped_lower = clipped & (adv < 0) & (w_tok < 1.0 - clip_low)
    with torch.no_grad():  # for ppo_kl only; masked_mean selects padded positions away
        log_ratio = torch.clamp(log_prob.detach() - old_log_prob, min=-20.0, max=20.0)
    return GepoLoss(loss, w, clipped, clipped_lower, log_ratio)


def gepo_metrics(out: GepoLoss, response_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """verl's metric names plus the weight's statistics over non-empty sequences.

    `actor/pg_clipfrac_lower` is verl's dual-clip share: GEPO has no dual clip, so it is 0 (as verl's GSPO reports);
    the lower-bound clip share is `actor/gepo_clipfrac_low`.
    """
    mask = response_mask.bool()
    valid = mask.any(-1)
    w = out.weight.detach()
    mean_w = masked_mean(w, valid)
    zero = mean_w * 0
    nonempty = bool(valid.any())
    return {
        "actor/pg_clipfrac": masked_mean(out.clipped.float(), mask),
        "actor/ppo_kl": masked_mean(-out.log_ratio.detach(), mask),
        "actor/pg_clipfrac_lower": zero,
        "actor/gepo_clipfrac_low": masked_mean(out.clipped_lower.float(), mask),
        "actor/gepo_weight_mean": mean_w,
        "actor/gepo_weight_min": torch.where(valid, w, torch.inf).min() if nonempty else zero,
        "actor/gepo_weight_max": torch.where(valid, w, -torch.inf).max() if nonempty else zero,
        "actor/gepo_weight_var": masked_mean((w - mean_w) ** 2, valid),
    }
