"""VAPO's advantage estimator in verl (`rlx_vapo`, arXiv 2504.05118); the maths are `rlx.ops.vapo`."""

from __future__ import annotations

from typing import Any

import torch
from verl.trainer.ppo.core_algos import register_adv_est

from rlx.ops import vapo as _vapo
from rlx.ops.options import resolve_options
from rlx.verl_algos.common import cfg, estimator_metrics, extra


@register_adv_est("rlx_vapo")
def compute_rlx_vapo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    config: Any = None,
    index: Any = None,
    reward_baselines: torch.Tensor | None = None,
    *,
    values: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """VAPO (arXiv 2504.05118): length-adaptive-λ GAE advantages (whitened) and λ_critic value targets.

    Options (`algorithm.rlx.vapo.*`): `alpha`, `lambda_critic`; γ is `algorithm.gamma`. Needs `values`.
    """
    values = extra("estimator", "values", values)
    if values is None:
        raise ValueError(
            "rlx_vapo needs critic values: enable the critic (critic.enable=true) and run "
            "`python -m rlx.verl_entry` (rlx train does)"
        )
    opts = resolve_options("vapo", config)
    adv, returns, lam = _vapo.vapo_advantages(
        token_level_rewards,
        values,
        response_mask,
        gamma=float(cfg(config, "gamma", 1.0)),
        alpha=float(opts["alpha"]),
        lambda_critic=float(opts["lambda_critic"]),
    )
    valid = response_mask.sum(-1) > 0
    estimator_metrics.clear()
    if bool(valid.any()):
        estimator_metrics.update(
            {
                "vapo/lambda_mean": float(lam[valid].mean()),
                "vapo/lambda_clamped_ratio": float((lam[valid] <= 0).float().mean()),
            }
        )
    return adv, returns
