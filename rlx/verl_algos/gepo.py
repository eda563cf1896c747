"""GEPO's policy loss in verl (`rlx_gepo`, arXiv 2508.17850); the maths are `rlx.ops.gepo`."""

from __future__ import annotations

import logging
from typing import Any

import torch
from verl.trainer.ppo.core_algos import register_policy_loss

from rlx.ops import gepo as _gepo
from rlx.ops.options import resolve_options
from rlx.verl_algos.common import clip_params, extra, floats, reduce

logger = logging.getLogger(__name__)
_warned: set[str] = set()


@register_policy_loss("rlx_gepo")
def compute_policy_loss_rlx_gepo(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config: Any = None,
    rollout_is_weights: torch.Tensor | None = None,
    *,
    log_denom: torch.Tensor | None = None,
    log_w_max: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """GEPO policy loss (arXiv 2508.17850): group-expectation importance weight, PPO-clipped per sequence.

    See `rlx.ops.gepo`. Use `loss_agg_mode="seq-mean-token-mean"` for the paper's per-sequence mean. `log_denom`
    comes from the keyword, else `loss_extras`, else (with a warning and `actor/gepo_denominator_fallback`=1) from
    this micro-batch taken as one group. Padded positions may hold NaN/±inf (selected away); a non-finite old
    log-prob at a valid token raises `ValueError` when the denominator is computed. `actor/pg_clipfrac_lower`
    (verl's dual-clip share) is 0: GEPO has no dual clip; the lower-bound clip share is `actor/gepo_clipfrac_low`.
    """
    log_denom = extra("loss", "log_denom", log_denom)
    fallback = log_denom is None
    if fallback:
        if "gepo_fallback" not in _warned:
            _warned.add("gepo_fallback")
            logger.warning(
                "rlx_gepo: no group denominator given; using the micro-batch as one group "
                "(exact only if it holds one whole prompt group). Run through `python -m rlx.verl_entry`."
            )
        index = torch.zeros(old_log_prob.shape[0], dtype=torch.long, device=old_log_prob.device)
        log_denom = _gepo.group_log_denominator(old_log_prob, response_mask, index)
    opts = resolve_options("gepo", None, log_w_max=log_w_max)
    low, high, _ = clip_params(config)
    out = _gepo.gepo_token_loss(
        old_log_prob,
        log_prob,
        advantages,
        response_mask,
        log_denom.to(device=log_prob.device),
        clip_low=low,
        clip_high=high,
        log_w_max=float(opts["log_w_max"]),
    )
    loss = reduce(out.loss, response_mask, loss_agg_mode, config, rollout_is_weights)
    metrics: dict[str, torch.Tensor | float] = dict(_gepo.gepo_metrics(out, response_mask))
    metrics["actor/gepo_denominator_fallback"] = 1.0 if fallback else 0.0
    return loss, floats(metrics)
