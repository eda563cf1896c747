"""AEPO's policy loss in verl (`rlx_aepo`, arXiv 2510.14545); the maths are `rlx.ops.aepo`."""

from __future__ import annotations

from typing import Any, cast

import torch
from verl.trainer.ppo.core_algos import register_policy_loss

from rlx.ops import aepo as _aepo
from rlx.ops.options import resolve_options
from rlx.verl_algos.common import clip_params, extra, floats, reduce

_UNSET: Any = object()  # "keyword not given" (None is a value: AEPO's weight_floor=None means no floor)


@register_policy_loss("rlx_aepo")
def compute_policy_loss_rlx_aepo(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config: Any = None,
    rollout_is_weights: torch.Tensor | None = None,
    *,
    entropy: torch.Tensor | None = None,
    alpha: float | None = None,
    sg_scope: str | None = None,
    weight_floor: float | None | object = _UNSET,
    entropy_stats: tuple[Any, Any] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """AEPO policy loss (arXiv 2510.14545): entropy-weighted advantages and entropy-balanced clipping.

    See `rlx.ops.aepo`. `entropy` comes from the keyword, else from `loss_extras`; without it this raises.
    `weight_floor=None` means no floor (omit it for the configured one). `entropy_stats` (mean, std) over the
    whole batch comes from the keyword, else `loss_extras`; the rlx trainer computes it once per step, so that
    the loss does not depend on the micro-batch split. Option `stats_scope="micro_batch"` restores the reference
    code's per-call statistics.
    """
    entropy = extra("loss", "entropy", entropy)
    if entropy is None:
        raise ValueError(
            "rlx_aepo needs per-token entropy: run through `python -m rlx.verl_entry` (rlx train does), "
            "or pass entropy=... when calling the loss directly"
        )
    opts = resolve_options("aepo", None, alpha=alpha, sg_scope=sg_scope)
    floor = opts.get("weight_floor") if weight_floor is _UNSET else cast("float | None", weight_floor)
    scope = str(opts.get("stats_scope", "batch"))
    if scope not in ("batch", "micro_batch"):
        raise ValueError(f"aepo.stats_scope must be 'batch' or 'micro_batch', got {scope!r}")
    stats = extra("loss", "entropy_stats", entropy_stats) if scope == "batch" else None
    low, high, clip_c = clip_params(config)
    out = _aepo.aepo_token_loss(
        old_log_prob,
        log_prob,
        advantages,
        response_mask,
        entropy.to(log_prob.dtype),
        alpha=float(opts["alpha"]),
        clip_low=low,
        clip_high=high,
        clip_c=clip_c,
        sg_scope=str(opts["sg_scope"]),
        weight_floor=floor,
        stats=stats,
    )
    loss = reduce(out.loss, response_mask, loss_agg_mode, config, rollout_is_weights)
    return loss, floats(_aepo.aepo_metrics(out, response_mask))
