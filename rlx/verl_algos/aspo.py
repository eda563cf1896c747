"""ASPO's advantage estimator in verl (`rlx_aspo`, arXiv 2508.19201); the maths are `rlx.ops.aspo`."""

from __future__ import annotations

from typing import Any

import torch
from verl.trainer.ppo.core_algos import (
    compute_gae_advantage_return,
    compute_grpo_vectorized_outcome_advantage,
    get_adv_estimator_fn,
    register_adv_est,
)

from rlx.ops import aspo as _aspo
from rlx.ops.common import group_index
from rlx.ops.options import resolve_options
from rlx.verl_algos.common import cfg, estimator_metrics, extra


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
    index = extra("estimator", "index", index)
    if index is None:
        raise ValueError("rlx_aspo needs the prompt-group index (verl's uid) to compare code positions within groups")
    first_code_pos = extra("estimator", "first_code_pos", first_code_pos)
    used_code = extra("estimator", "used_code", used_code)
    if first_code_pos is None or used_code is None:
        raise ValueError(
            "rlx_aspo needs per-sample first_code_pos and used_code: emit them from the reward function as "
            "reward_extra_info (e.g. with rlx.ops.code_detect.detect_code) and run `python -m rlx.verl_entry`"
        )
    correct = extra("estimator", "correct", correct)
    code_pass = extra("estimator", "code_pass", code_pass)
    lengths = extra("estimator", "lengths", lengths)
    base = str(opts["base"])
    gidx, _ = group_index(index, device=token_level_rewards.device)  # factorise string uids once, not per step
    norm = cfg(config, "norm_adv_by_std_in_grpo", True)
    if base == "grpo":
        adv, returns = _verl_grpo(
            token_level_rewards, response_mask, index, norm, extra("estimator", "session_keys", session_keys)
        )
    elif base == "grpo_vectorized":
        adv, returns = compute_grpo_vectorized_outcome_advantage(
            token_level_rewards, response_mask, gidx, norm_adv_by_std_in_grpo=norm
        )
    elif base == "gae":
        values = extra("estimator", "values", values)
        if values is None:
            raise ValueError("rlx_aspo with base=gae needs critic values (critic.enable=true, rlx entrypoint)")
        adv, returns = compute_gae_advantage_return(
            token_level_rewards, values, response_mask, cfg(config, "gamma", 1.0), cfg(config, "lam", 1.0)
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
