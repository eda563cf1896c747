"""What rlx's verl algorithms share: the extra inputs the rlx trainer hands over, verl's clip parameters and loss
reduction, and the diagnostics an estimator leaves for the trainer to log.

- `loss_extras(...)` / `estimator_extras(...)`: contexts in which a loss called by verl's `ppo_loss`, or an estimator
  called by verl's `compute_advantage`, sees inputs verl's call cannot pass (`entropy`, `log_denom`, `values`, ...);
  `extra(kind, key, given)` reads one, the keyword winning.
- `estimator_metrics`: the last estimator call's diagnostics; the trainer (and the smoke engine) logs and clears it.
  It is one dict for the process: estimators clear and update it, nobody rebinds it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from verl.trainer.ppo.core_algos import agg_loss

_local = threading.local()
estimator_metrics: dict[str, float] = {}  # diagnostics of the last rlx estimator call (the trainer logs and clears)


# ---- extras handed over by the rlx trainer / actor loss ------------------------------------------------------------


def _stack(kind: str) -> list[dict[str, Any]]:
    if not hasattr(_local, kind):
        setattr(_local, kind, [])
    return getattr(_local, kind)


@contextmanager
def _extras(kind: str, values: dict[str, Any]) -> Iterator[None]:
    stack = _stack(kind)
    stack.append(values)
    try:
        yield
    finally:
        stack.pop()


def loss_extras(**values: Any):
    """Context in which rlx losses called by verl's `ppo_loss` see extra inputs (`entropy`, `log_denom`)."""
    return _extras("loss", values)


def estimator_extras(**values: Any):
    """Context in which rlx estimators called by verl's `compute_advantage` see extra inputs (`values`, ...)."""
    return _extras("estimator", values)


def extra(kind: str, key: str, given: Any) -> Any:
    """`given` when it is not None, else `key` from the innermost `kind` ("loss" or "estimator") extras."""
    if given is not None:
        return given
    stack = _stack(kind)
    return stack[-1].get(key) if stack else None


# ---- shared by the losses and estimators -----------------------------------------------------------------------------


def clip_params(config: Any) -> tuple[float, float, float]:
    if config is None:
        return 0.2, 0.2, 3.0
    eps = config.get("clip_ratio", 0.2)
    low = config.get("clip_ratio_low", None)
    high = config.get("clip_ratio_high", None)
    return (eps if low is None else low), (eps if high is None else high), config.get("clip_ratio_c", 3.0)


def reduce(
    loss_mat: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str,
    config: Any,
    rollout_is_weights: torch.Tensor | None,
) -> torch.Tensor:
    if rollout_is_weights is not None:
        loss_mat = loss_mat * rollout_is_weights
    batch_info = dict((getattr(config, "global_batch_info", None) or {}) if config is not None else {})
    if (batch_info.get("dp_size") or 1) <= 1:
        # Without verl's global counts agg_loss divides by this micro-batch's counts, NaN when the mask is empty;
        # the same counts floored at 1 give the same loss otherwise and 0 for an empty mask.
        if batch_info.get("batch_num_tokens") is None:
            batch_info["batch_num_tokens"] = response_mask.sum().clamp_min(1)
        if batch_info.get("global_batch_size") is None:
            batch_info["global_batch_size"] = (response_mask.sum(-1) > 0).sum().clamp_min(1)
    return agg_loss(loss_mat=loss_mat, loss_mask=response_mask, loss_agg_mode=loss_agg_mode, **batch_info)


def floats(metrics: Mapping[str, torch.Tensor | float]) -> dict[str, float]:
    """One host sync for all tensor metrics instead of one `.item()` each."""
    tensors = {k: v for k, v in metrics.items() if isinstance(v, torch.Tensor)}
    keys = list(tensors)
    values = torch.stack([tensors[k].detach().float().reshape(()) for k in keys]).tolist() if keys else []
    out = {k: float(v) for k, v in metrics.items() if not isinstance(v, torch.Tensor)}
    out.update(zip(keys, values, strict=True))
    return out


def cfg(config: Any, key: str, default: Any) -> Any:
    return config.get(key, default) if config is not None and hasattr(config, "get") else default
