"""rlx's verl plugin: registers rlx's policy losses and advantage estimators with verl's registries.

verl imports this module (entry-point group `verl.plugins`, declared in rlx's pyproject) in every process that imports
verl, Ray workers included. It registers:

- policy losses (`actor_rollout_ref.actor.policy_loss.loss_mode`): `rlx_aepo`, `rlx_gepo`;
- advantage estimators (`algorithm.adv_estimator`): `rlx_aspo`, `rlx_vapo`.

Interfaces (stable; other rlx modules and the CPU smoke engine depend on them):

- Losses have verl's signature `(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean",
  config=None, rollout_is_weights=None)` plus keyword-only extras: `rlx_aepo` takes `entropy` ([bs, T]) and
  `alpha`, `sg_scope`, `weight_floor`; `rlx_gepo` takes `log_denom` ([bs], log of the group expectation Ê_q[q] from
  `rlx.ops.gepo.group_log_denominator`). They multiply by `rollout_is_weights`, reduce with verl's `agg_loss(...,
  **config.global_batch_info)` and return `actor/pg_clipfrac`, `actor/ppo_kl`, `actor/pg_clipfrac_lower` plus their
  own metrics. verl's `ppo_loss` cannot pass the extras, so when a keyword is None the loss reads it from
  `loss_extras(...)`, a context the rlx actor loss (`rlx.verl_entry.RlxActorLoss`) opens around verl's `ppo_loss`.
  AEPO without entropy raises; GEPO without a denominator falls back to treating the micro-batch as one group (exact
  only when the micro-batch is one prompt group), logs a warning once and reports `actor/gepo_denominator_fallback`=1.
- Estimators have verl's generic signature `fn(token_level_rewards, response_mask, config, index=None, **kwargs)`
  (`config` = verl's `algorithm` DictConfig) and return (advantages, returns). Keyword extras: `rlx_aspo` takes
  `first_code_pos`, `used_code` ([bs]; -1 / False without code), `correct=None` (default: sequence score > 0),
  `code_pass=None`, `lengths=None`, `values=None` (for base `gae`); `rlx_vapo` takes `values` ([bs, T]). When verl's
  generic call omits them they come from `estimator_extras(...)`, opened by the rlx trainer (`rlx.verl_entry`).
  Their diagnostics are left in `estimator_metrics` for the trainer to log.
- Options: keyword arguments when given, else `config.rlx.<algo>` (estimators), else `algo_options(algo)`, which reads
  the JSON object in env `RLX_ALGO_CFG` (the resolved `algorithm.rlx` section: `{"aepo": {...}, ...}`; rlx's
  entrypoint and the smoke engine set it), else the paper defaults in `DEFAULTS`.
- Plugin algorithms: each spec's `verl_module` (`rlx.algorithms.Algorithm`) is imported here too, so a third-party
  package's losses and estimators are registered in every verl process without a `verl.plugins` entry of its own.
- `ensure_registered()` imports verl and raises `RlxError` if any spec's `plugin_names` is missing (verl swallows
  plugin import errors at DEBUG level).

Kept light: torch and verl's `core_algos` (which verl has imported anyway); the maths live in `rlx.ops`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import torch
from verl.trainer.ppo.core_algos import (
    agg_loss,
    compute_gae_advantage_return,
    compute_grpo_vectorized_outcome_advantage,
    get_adv_estimator_fn,
    register_adv_est,
    register_policy_loss,
)

from rlx.ops import aepo as _aepo
from rlx.ops import aspo as _aspo
from rlx.ops import gepo as _gepo
from rlx.ops import vapo as _vapo
from rlx.ops.common import group_index
from rlx.ops.options import DEFAULTS, ENV_VAR, algo_options, resolve_options  # noqa: F401 (public API)

logger = logging.getLogger(__name__)


def _own(kind: str) -> tuple[str, ...]:
    """The verl names of `kind` this module registers: those of the specs that leave `verl_module` unset."""
    from rlx.algorithms import ALGORITHMS

    return tuple(
        dict.fromkeys(a.plugin_names[kind] for a in ALGORITHMS if kind in a.plugin_names and not a.verl_module)
    )


POLICY_LOSSES = _own("policy_loss")
ADV_ESTIMATORS = _own("adv_estimator")

_local = threading.local()
estimator_metrics: dict[str, float] = {}  # diagnostics of the last rlx estimator call (the trainer logs and clears)
_warned: set[str] = set()
_UNSET: Any = object()  # "keyword not given" (None is a value: AEPO's weight_floor=None means no floor)


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


def _extra(kind: str, key: str, given: Any) -> Any:
    if given is not None:
        return given
    stack = _stack(kind)
    return stack[-1].get(key) if stack else None


# ---- policy losses -------------------------------------------------------------------------------------------------


def _clip_params(config: Any) -> tuple[float, float, float]:
    if config is None:
        return 0.2, 0.2, 3.0
    eps = config.get("clip_ratio", 0.2)
    low = config.get("clip_ratio_low", None)
    high = config.get("clip_ratio_high", None)
    return (eps if low is None else low), (eps if high is None else high), config.get("clip_ratio_c", 3.0)


def _reduce(
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


def _floats(metrics: Mapping[str, torch.Tensor | float]) -> dict[str, float]:
    """One host sync for all tensor metrics instead of one `.item()` each."""
    tensors = {k: v for k, v in metrics.items() if isinstance(v, torch.Tensor)}
    keys = list(tensors)
    values = torch.stack([tensors[k].detach().float().reshape(()) for k in keys]).tolist() if keys else []
    out = {k: float(v) for k, v in metrics.items() if not isinstance(v, torch.Tensor)}
    out.update(zip(keys, values, strict=True))
    return out


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
    entropy = _extra("loss", "entropy", entropy)
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
    stats = _extra("loss", "entropy_stats", entropy_stats) if scope == "batch" else None
    low, high, clip_c = _clip_params(config)
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
    loss = _reduce(out.loss, response_mask, loss_agg_mode, config, rollout_is_weights)
    return loss, _floats(_aepo.aepo_metrics(out, response_mask))


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
    log_denom = _extra("loss", "log_denom", log_denom)
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
    low, high, _ = _clip_params(config)
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
    loss = _reduce(out.loss, response_mask, loss_agg_mode, config, rollout_is_weights)
    metrics: dict[str, torch.Tensor | float] = dict(_gepo.gepo_metrics(out, response_mask))
    metrics["actor/gepo_denominator_fallback"] = 1.0 if fallback else 0.0
    return loss, _floats(metrics)


# ---- advantage estimators ------------------------------------------------------------------------------------------


def _cfg(config: Any, key: str, default: Any) -> Any:
    return config.get(key, default) if config is not None and hasattr(config, "get") else default


@register_adv_est("rlx_aspo")
def compute_rlx_aspo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    config: Any = None,
    index: Any = None,
    reward_baselines: torch.Tensor | None = None,
    *,
    first_code_pos: Any = None,
    used_code: Any = None,
    correct: Any = None,
    code_pass: Any = None,
    lengths: Any = None,
    values: torch.Tensor | None = None,
    session_keys: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ASPO (arXiv 2508.19201): the base estimator's advantages plus the bounded early-code bias (`rlx.ops.aspo`).

    Options (`algorithm.rlx.aspo.*`): `base` (grpo | gae | any registered estimator), `delta`, `k`,
    `require_code_pass`. Returns are the base estimator's, unchanged. The base is computed exactly as verl computes
    that estimator on its v1 trainer: `grpo` is verl's registered `grpo` and, given `session_keys` (the batch's
    TransferQueue keys `{uid}_{session}_{output}`, which the rlx trainer passes), takes its group statistics over
    each session's final output only and gives every output of a session that output's advantage, as verl's
    `compute_advantage_for_multi_trajectories` does for `grpo`; `gae` is verl's `compute_gae_advantage_return`.
    """
    opts = resolve_options("aspo", config)
    index = _extra("estimator", "index", index)
    if index is None:
        raise ValueError("rlx_aspo needs the prompt-group index (verl's uid) to compare code positions within groups")
    first_code_pos = _extra("estimator", "first_code_pos", first_code_pos)
    used_code = _extra("estimator", "used_code", used_code)
    if first_code_pos is None or used_code is None:
        raise ValueError(
            "rlx_aspo needs per-sample first_code_pos and used_code: emit them from the reward function as "
            "reward_extra_info (e.g. with rlx.ops.code_detect.detect_code) and run `python -m rlx.verl_entry`"
        )
    correct = _extra("estimator", "correct", correct)
    code_pass = _extra("estimator", "code_pass", code_pass)
    lengths = _extra("estimator", "lengths", lengths)
    base = str(opts["base"])
    gidx, _ = group_index(index, device=token_level_rewards.device)  # factorise string uids once, not per step
    norm = _cfg(config, "norm_adv_by_std_in_grpo", True)
    if base == "grpo":
        adv, returns = _verl_grpo(
            token_level_rewards, response_mask, index, norm, _extra("estimator", "session_keys", session_keys)
        )
    elif base == "grpo_vectorized":
        adv, returns = compute_grpo_vectorized_outcome_advantage(
            token_level_rewards, response_mask, gidx, norm_adv_by_std_in_grpo=norm
        )
    elif base == "gae":
        values = _extra("estimator", "values", values)
        if values is None:
            raise ValueError("rlx_aspo with base=gae needs critic values (critic.enable=true, rlx entrypoint)")
        adv, returns = compute_gae_advantage_return(
            token_level_rewards, values, response_mask, _cfg(config, "gamma", 1.0), _cfg(config, "lam", 1.0)
        )
    else:
        adv, returns = get_adv_estimator_fn(base)(
            token_level_rewards=token_level_rewards, response_mask=response_mask, config=config, index=index
        )
    if correct is None:
        correct = token_level_rewards.sum(-1) > 0
    result = _aspo.aspo_bias(
        adv,
        response_mask,
        gidx,
        first_code_pos,
        used_code,
        correct,
        delta=float(opts["delta"]),
        k=float(opts["k"]),
        code_pass=code_pass,
        require_code_pass=bool(opts["require_code_pass"]),
        lengths=lengths,
    )
    estimator_metrics.clear()
    estimator_metrics.update(_aspo.aspo_metrics(response_mask, first_code_pos, used_code, code_pass, result))
    return result.advantages, returns


def session_finals(keys: Any) -> tuple[list[int], list[int]]:
    """(row of each session's final output, in order of the sessions' first rows; per row, its session's position
    in that list) for TransferQueue keys `{uid}_{session}_{output index}`: the final output has the highest index.

    Raises:
        ValueError: a key is not of that form.
    """
    last: dict[str, tuple[int, int]] = {}
    session_of: list[str] = []
    for row, key in enumerate(keys):
        uid_session, _, output = str(key).rpartition("_")
        if not uid_session or "_" not in uid_session or not output.lstrip("-").isdigit():
            raise ValueError(f"rlx_aspo: batch key {key!r} (row {row}) is not '{{uid}}_{{session}}_{{output index}}'")
        session_of.append(uid_session)
        if uid_session not in last or last[uid_session][0] < int(output):
            last[uid_session] = (int(output), row)
    position = {session: i for i, session in enumerate(last)}
    return [row for _, row in last.values()], [position[s] for s in session_of]


def _verl_grpo(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: Any, norm: bool, session_keys: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's registered `grpo`, over each session's final output when `session_keys` are given (see the caller)."""
    import numpy as np

    grpo = get_adv_estimator_fn("grpo")
    labels = np.asarray(index.tolist() if isinstance(index, torch.Tensor) else list(index), dtype=object)
    if session_keys is None:
        return grpo(
            token_level_rewards=token_level_rewards,
            response_mask=response_mask,
            index=labels,
            norm_adv_by_std_in_grpo=norm,
        )
    finals, owner = session_finals(session_keys)
    if len(owner) != token_level_rewards.shape[0]:
        raise ValueError(f"rlx_aspo: {len(owner)} session keys for {token_level_rewards.shape[0]} rows")
    final_mask = response_mask[finals]
    final_adv, _ = grpo(
        token_level_rewards=token_level_rewards[finals],
        response_mask=final_mask,
        index=labels[finals],
        norm_adv_by_std_in_grpo=norm,
    )
    # each final output's scalar advantage (at its first response token), spread over its session's outputs
    scalar = final_adv[torch.arange(len(finals)), final_mask.argmax(dim=1)]
    adv = scalar[torch.as_tensor(owner, dtype=torch.long)].unsqueeze(-1) * response_mask
    return adv, adv


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
    values = _extra("estimator", "values", values)
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
        gamma=float(_cfg(config, "gamma", 1.0)),
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


# ---- registration check ------------------------------------------------------------------------------------------


def _loading_problem() -> str | None:
    """Why verl would not load this plugin by itself in a fresh process (a Ray worker), or None."""
    from importlib.metadata import entry_points

    modules = [m.strip() for m in os.environ.get("VERL_USE_EXTERNAL_MODULES", "").split(",") if m.strip()]
    if __name__ in modules:
        return None
    policy = os.environ.get("VERL_USE_EXTERNAL_PLUGINS", "auto").strip().lower()
    if policy == "none":
        return "VERL_USE_EXTERNAL_PLUGINS=none switches verl's plugin loading off"
    if policy != "auto" and "rlx" not in [p.strip() for p in policy.split(",")]:
        return f"VERL_USE_EXTERNAL_PLUGINS={policy} does not list 'rlx'"
    if not any(ep.name == "rlx" and ep.value == __name__ for ep in entry_points(group="verl.plugins")):
        return "the 'rlx' entry point of group verl.plugins is not installed in this interpreter"
    return None


def ensure_registered() -> None:
    """Check that verl has rlx's losses and estimators, and that it will load them in fresh processes too.

    Imports verl, then checks (1) every rlx name is in `POLICY_LOSS_REGISTRY` / `ADV_ESTIMATOR_REGISTRY` and (2) verl's
    own plugin loading will import this module in a new interpreter (Ray workers rely on it): the `verl.plugins`
    entry point is installed and neither `VERL_USE_EXTERNAL_PLUGINS` nor `VERL_USE_EXTERNAL_MODULES` excludes it.

    Raises:
        RlxError: a name is missing or verl would not load the plugin (verl logs plugin import errors only at DEBUG).
    """
    import verl  # noqa: F401  (loads the verl.plugins entry points)
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, POLICY_LOSS_REGISTRY

    from rlx.algorithms import ALGORITHMS

    registries = {"policy_loss": POLICY_LOSS_REGISTRY, "adv_estimator": ADV_ESTIMATOR_REGISTRY}
    missing = [n for a in ALGORITHMS for kind, n in a.plugin_names.items() if n not in registries.get(kind, {n})]
    problem = _loading_problem()
    if missing or problem:
        from rlx.errors import RlxError

        what = f"{', '.join(missing)} not registered with verl" if missing else problem
        raise RlxError(
            f"rlx's verl plugin is not loaded: {what}",
            where=f"VERL_USE_EXTERNAL_PLUGINS={os.environ.get('VERL_USE_EXTERNAL_PLUGINS', 'auto')}",
            hint="unset VERL_USE_EXTERNAL_PLUGINS (or include 'rlx' in it) and reinstall rlx in this interpreter "
            "(`pip install -e .`); `python -c 'import rlx.verl_plugin'` shows an import error if there is one",
        )


def _install_tracking() -> None:
    """In a job rlx launched (`RLX_VERL_TRACKING=1`), verl's MLflow logger sends through rlx's journal
    (`rlx.track.verl_tracking`): a tracking outage neither stalls a step nor loses its metrics."""
    from rlx.track import verl_tracking

    if verl_tracking.wanted():
        try:
            verl_tracking.install()
        except Exception as e:  # noqa: BLE001 - tracking must never stop verl from loading rlx's algorithms
            logger.warning("rlx: verl's MLflow logger left as is: %s", e)


def _import_spec_modules() -> None:
    """Import the `verl_module` of every plugin algorithm, so its verl names exist wherever rlx's plugin is loaded.

    A module that fails to import is logged and skipped: `ensure_registered` then names what it would have registered.
    """
    import importlib

    from rlx.algorithms import ALGORITHMS

    for module in dict.fromkeys(a.verl_module for a in ALGORITHMS if a.verl_module and a.verl_module != __name__):
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - one broken plugin must not take rlx's algorithms down with it
            logger.warning("rlx: algorithm plugin module %s not imported: %s: %s", module, type(e).__name__, e)


_import_spec_modules()
_install_tracking()
