"""One training step of the smoke engine, phase by phase, in verl's order (`trainer/ppo/ray_trainer.py`).

`sample` starts the step's `Batch`; `score`, `log_probs`, `shape_rewards`, `advantages` and `update` fill it in (and
its `metrics` and `timing`), in that order. Every phase reads the run's `Setup` (`rlx.smoke.setup`) and mutates only
the batch and the models, optimisers and generators the set-up holds; the sampling generator is drawn from in the
same order every run, so the same seed gives the same curve. torch and verl are imported inside the functions.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rlx.errors import ConfigError, JobFailedError
from rlx.smoke import updates
from rlx.smoke.setup import Setup
from rlx.smoke.tasks import code_markers
from rlx.smoke.tensors import d_scores, generate, logprob_entropy, metric_value, stats


@dataclass
class Batch:
    """One step's samples and everything computed from them. Rows are `sz.prompts` prompts x `sz.n` samples, a
    prompt's samples adjacent; token tensors are [rows, max_response_length] over the response."""

    step: int
    epoch: int
    picked: Any  # the dataset row of each prompt
    prompts: Any  # [rows, prompt_len] token ids
    uid: Any  # numpy object array: the group (prompt) id of each row
    sample_rows: list[dict[str, Any]]  # the dataset row of each sample
    resp: Any  # response token ids, padded after EOS
    mask: Any  # response_mask (float): generated tokens up to and including EOS
    seqs: Any  # prompts + responses
    metrics: dict[str, float] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    # score
    scores: Any = None  # [rows] sequence scores (GAD: the discriminator's)
    extras: dict[str, list[Any]] = field(default_factory=dict)  # reward_extra_info plus code markers, per row
    correct: list[bool] = field(default_factory=list)
    lengths: Any = None  # [rows] response lengths
    token_scores: Any = None  # the score at each response's last token
    teacher_seqs: Any = None  # GAD: prompts + teacher responses
    teacher_mask: Any = None
    # log_probs
    old_lp: Any = None
    old_ent: Any = None
    ref_lp: Any = None
    values: Any = None  # the critic's, masked
    # shape_rewards
    token_rewards: Any = None  # token scores minus the KL penalty when KL is in the reward
    keep: Any = None  # [rows] bool: not evicted by group filtering
    # advantages
    advantages: Any = None
    returns: Any = None
    # update
    log_denom: Any = None  # GEPO's group denominator, when the loss asks for it
    sel: Any = None  # the kept rows' indices


@contextmanager
def _timed(timing: dict[str, float], key: str) -> Iterator[None]:
    t = time.monotonic()
    yield
    timing[key] = time.monotonic() - t


# ------------------------------------------------------------------------------------------------------- 1. sample
def _rollout(s: Setup, prompts, *, greedy: bool):
    """The policy's responses to `prompts` with the resolved sampling settings (greedy: argmax), and their mask."""
    import torch

    with torch.no_grad():
        return generate(
            s.policy,
            prompts,
            s.sz.max_response_length,
            s.tok.eos_id,
            s.tok.pad_id,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            greedy=greedy,
            gen=s.gen,
        )


def sample(s: Setup, step: int) -> Batch:
    """The next prompts in the data order, `n` samples each with the resolved temperature, top_p and top_k."""
    import numpy as np
    import torch

    sz = s.sz
    picked, epoch = s.order.take(sz.prompts, s.rng)
    timing: dict[str, float] = {}
    with _timed(timing, "gen"):
        prompts = torch.tensor([s.prompt_ids[i] for i in picked]).repeat_interleave(sz.n, dim=0)
        uid = np.array([str(i) for i in picked for _ in range(sz.n)], dtype=object)
        sample_rows = [s.rows[i] for i in picked for _ in range(sz.n)]
        s.policy.eval()
        resp, mask = _rollout(s, prompts, greedy=not s.do_sample)
        seqs = torch.cat([prompts, resp], dim=1)
    return Batch(
        step=step,
        epoch=epoch,
        picked=picked,
        prompts=prompts,
        uid=uid,
        sample_rows=sample_rows,
        resp=resp,
        mask=mask,
        seqs=seqs,
        timing=timing,
    )


# -------------------------------------------------------------------------------------------------------- 2. score
def _call_reward(fn, row: Mapping[str, Any], solution: str) -> tuple[float, dict[str, Any]]:
    """Call a reward function with verl's signature; a dict result gives `score` plus extras (reward_extra_info)."""
    try:
        out = fn(row["data_source"], solution, row["reward_model"]["ground_truth"], row.get("extra_info"))
    except Exception as e:
        raise JobFailedError(
            f"the reward function raised {type(e).__name__}: {e}",
            where=f"data_source={row['data_source']}",
            hint="fix the reward function; the smoke run calls it exactly as verl does",
        ) from e
    if isinstance(out, Mapping):
        if "score" not in out:
            raise JobFailedError(
                "the reward function returned a dict without a 'score' key",
                hint="return a float, or a dict with 'score' and extra metrics (verl's contract)",
            )
        return float(out["score"]), dict(out)
    return float(out), {}


def score(s: Setup, b: Batch) -> None:
    """Rewards through verl's `compute_score` signature (GAD: the discriminator's score), at each last token."""
    import torch

    tok, sz, mask = s.tok, s.sz, b.mask
    with _timed(b.timing, "reward"):
        solutions = [tok.decode(r) for r in b.resp.tolist()]
        scored = [_call_reward(s.reward_fn, row, sol) for row, sol in zip(b.sample_rows, solutions, strict=False)]
        scores = torch.tensor([sc for sc, _ in scored], dtype=torch.float32)
        extras: dict[str, list[Any]] = {}
        for (_, ex), sol in zip(scored, solutions, strict=False):
            merged = {**code_markers(sol), "correct": None, **ex}
            for k, v in merged.items():
                extras.setdefault(k, []).append(v)
        correct = [
            bool(c) if c is not None else sc >= 1.0 for c, (sc, _) in zip(extras["correct"], scored, strict=False)
        ]
        extras["correct"] = correct
        if s.disc is not None:
            assert s.teacher_ids is not None  # built whenever the discriminator is
            # GAD: the task's score is only logged; the student's reward is D's score of its own response
            b.metrics["critic/task_score/mean"] = float(scores.mean())
            teacher_resp = torch.tensor([s.teacher_ids[i] for i in b.picked]).repeat_interleave(sz.n, dim=0)
            b.teacher_mask = (teacher_resp != tok.pad_id).to(mask.dtype)
            b.teacher_seqs = torch.cat([b.prompts, teacher_resp], dim=1)
            s.disc.eval()
            with torch.no_grad():
                scores = d_scores(s.disc, b.seqs, mask, s.prompt_len).float()
        lengths = mask.sum(-1)
        last = (lengths - 1).clamp_min(0).long()
        token_scores = torch.zeros_like(mask)
        token_scores[torch.arange(len(scores)), last] = scores
    b.scores, b.extras, b.correct, b.lengths, b.token_scores = scores, extras, correct, lengths, token_scores


# ---------------------------------------------------------------------------------------------------- 3. log_probs
def log_probs(s: Setup, b: Batch) -> None:
    """Old log-probs and entropy, reference log-probs, critic values."""
    import torch

    P, mask = s.prompt_len, b.mask  # noqa: N806
    with _timed(b.timing, "old_log_prob"), torch.no_grad():
        b.old_lp, b.old_ent = logprob_entropy(s.policy, b.seqs, P, s.temperature)
    if s.ref is not None:
        with _timed(b.timing, "ref"), torch.no_grad():
            b.ref_lp, _ = logprob_entropy(s.ref, b.seqs, P, s.temperature, want_entropy=False)
    if s.critic is not None:
        with _timed(b.timing, "values"):
            s.critic.eval()
            with torch.no_grad():
                b.values = s.critic(b.seqs)[:, P - 1 : -1] * mask
    b.metrics["actor/entropy"] = float(s.core_algos.agg_loss(b.old_ent, mask, "token-mean"))


# ------------------------------------------------------------------------------------------------ 4. shape_rewards
def shape_rewards(s: Setup, b: Batch) -> None:
    """KL in the reward (verl's `kl_penalty` and KL controller), then DAPO group filtering (`algorithm.filter_groups`)."""
    import torch

    mask, metrics = b.mask, b.metrics
    token_rewards = b.token_scores
    if s.kl_ctrl is not None:
        kld = s.core_algos.kl_penalty(b.old_lp, b.ref_lp, kl_penalty=str(s.get("algorithm.kl_penalty", "kl"))) * mask
        beta = s.kl_ctrl.value
        token_rewards = b.token_scores - beta * kld
        current_kl = float((kld.sum(-1) / mask.sum(-1).clamp_min(1)).mean())
        s.kl_ctrl.update(current_kl=current_kl, n_steps=len(b.scores))
        metrics.update({"actor/reward_kl_penalty": current_kl, "actor/reward_kl_penalty_coeff": beta})
    keep = torch.ones(len(b.scores), dtype=torch.bool)
    filter_metric, n = s.filter_metric, s.sz.n
    if filter_metric is not None and n > 1:
        if filter_metric == "reward":
            fvals = token_rewards.sum(-1).tolist()
        elif filter_metric in b.extras:
            fvals = [float(v) for v in b.extras[filter_metric]]
        else:
            raise ConfigError(
                f"algorithm.filter_groups.metric={filter_metric!r} is not a key the reward function returns",
                where="algorithm.filter_groups.metric",
                hint="use 'reward', or return a dict with that key from compute_score; keys: "
                + ", ".join(sorted(b.extras)),
            )
        fv = torch.tensor(fvals).view(-1, n)
        keep = (fv.std(dim=1, unbiased=False) > 0).repeat_interleave(n)
        metrics["training/filter_groups/evicted_samples"] = float((~keep).sum())
    b.token_rewards, b.keep = token_rewards, keep


# --------------------------------------------------------------------------------------------------- 5. advantages
def advantages(s: Setup, b: Batch) -> None:
    """Advantages and returns from verl's estimator registry, then the data metrics verl logs for the batch."""
    _estimator_diagnostics()  # drop what a call outside this step left (rlx.verl_entry clears before its call too)
    with _timed(b.timing, "adv"):
        b.advantages, b.returns = _call_estimator(s, b)
    b.metrics.update(_estimator_diagnostics())
    b.metrics.update(_data_metrics(s, b))


def _call_estimator(s: Setup, b: Batch):
    """Call the estimator the way verl's `compute_advantage` does; extra inputs by what its signature names."""
    import torch

    core_algos, adv_fn, params, get = s.core_algos, s.adv_fn, s.adv_params, s.get
    token_rewards, mask, uid, values, extras = b.token_rewards, b.mask, b.uid, b.values, b.extras
    if adv_fn is core_algos.get_adv_estimator_fn("gae"):
        return adv_fn(
            token_level_rewards=token_rewards,
            values=values,
            response_mask=mask,
            gamma=float(get("algorithm.gamma", 1.0)),
            lam=float(get("algorithm.lam", 1.0)),
        )
    if adv_fn is core_algos.get_adv_estimator_fn("grpo"):
        return adv_fn(
            token_level_rewards=token_rewards,
            response_mask=mask,
            index=uid,
            norm_adv_by_std_in_grpo=bool(get("algorithm.norm_adv_by_std_in_grpo", True)),
        )
    kwargs: dict[str, Any] = {
        "token_level_rewards": token_rewards,
        "response_mask": mask,
        "config": s.algo_cfg,
        "index": uid,
    }
    if "reward_baselines" in params:
        kwargs["reward_baselines"] = _greedy_baselines(s, b)
    available = {
        "values": values,
        "old_log_probs": b.old_lp,
        "first_code_pos": torch.tensor([float(p) for p in extras["first_code_pos"]]),
        "used_code": torch.tensor([bool(u) for u in extras["used_code"]]),
        "correct": torch.tensor([bool(c) for c in extras["correct"]]),
        "code_pass": (torch.tensor([bool(c) for c in extras["code_pass"]]) if "code_pass" in extras else None),
    }
    for name, value in available.items():
        if name in params:
            if value is None and inspect.signature(adv_fn).parameters[name].default is inspect.Parameter.empty:
                raise ConfigError(
                    f"advantage estimator {get('algorithm.adv_estimator')!r} needs {name!r}, which "
                    "this run does not produce",
                    where="algorithm.adv_estimator",
                    hint="enable the critic (critic.enable=true)" if name == "values" else None,
                )
            if value is not None:
                kwargs[name] = value
    kwargs = {k: v for k, v in kwargs.items() if k in params or s.adv_varkw}
    return adv_fn(**kwargs)


def _greedy_baselines(s: Setup, b: Batch):
    """ReMax's baseline: the reward of a greedy response per prompt, broadcast to its samples."""
    import torch

    sz, tok = s.sz, s.tok
    resp, _ = _rollout(s, b.prompts[:: sz.n], greedy=True)
    base = [_call_reward(s.reward_fn, b.sample_rows[i * sz.n], tok.decode(r))[0] for i, r in enumerate(resp.tolist())]
    return torch.tensor(base, dtype=torch.float32).repeat_interleave(sz.n)


def _estimator_diagnostics() -> dict[str, float]:
    """Metrics rlx's estimators leave behind for the trainer to log (`rlx.verl_plugin.estimator_metrics`)."""
    import sys

    found = getattr(sys.modules.get("rlx.verl_plugin"), "estimator_metrics", None)
    if not isinstance(found, dict):
        return {}
    out = {k: v for k, v in ((k, metric_value(v)) for k, v in found.items()) if v is not None}
    found.clear()
    return out


def _data_metrics(s: Setup, b: Batch) -> dict[str, float]:
    """The batch's data metrics, as verl's compute_data_metrics names them."""
    import torch

    metrics: dict[str, float] = {}
    vmask = b.mask.bool()
    returns, values, extras = b.returns, b.values, b.extras
    metrics.update(stats("critic/score", b.scores))
    metrics.update(stats("critic/rewards", b.token_rewards.sum(-1)))
    metrics.update(stats("critic/advantages", b.advantages[vmask]))
    metrics.update(stats("critic/returns", returns[vmask]))
    if values is not None:
        metrics.update(stats("critic/values", values[vmask]))
        ret_v, val_v = returns[vmask], values[vmask]
        metrics["critic/vf_explained_var"] = float(1 - (ret_v - val_v).var() / (ret_v.var() + 1e-5))
    metrics.update(stats("response_length", b.lengths))
    metrics["response_length/clip_ratio"] = float(
        (b.resp[:, -1] != s.tok.pad_id).logical_and(b.resp[:, -1] != s.tok.eos_id).float().mean()
    )
    metrics.update(stats("prompt_length", torch.full((len(b.scores),), float(s.prompt_len))))
    used = torch.tensor([bool(u) for u in extras["used_code"]])
    pos = torch.tensor([float(p) for p in extras["first_code_pos"]])
    metrics["code/usage_ratio"] = float(used.float().mean())
    if bool(used.any()):
        metrics["code/first_pos/mean"] = float(pos[used].mean())
    metrics["critic/acc/mean"] = float(torch.tensor(b.correct, dtype=torch.float32).mean())
    return metrics


# ------------------------------------------------------------------------------------------------------- 6. update
def update(s: Setup, b: Batch) -> None:
    """The critic (or GAD's discriminator) update, then the actor's (verl's order); critic warm-up holds the actor
    back."""
    if "log_denom" in s.loss_params:
        from rlx.ops.gepo import group_log_denominator

        b.log_denom = group_log_denominator(b.old_lp, b.mask, b.uid)
    b.sel = b.keep.nonzero().squeeze(-1)
    if s.disc is not None:
        with _timed(b.timing, "update_critic"):
            b.metrics.update(updates.update_discriminator(s, b))
    if s.critic is not None:
        with _timed(b.timing, "update_critic"):
            b.metrics.update(updates.update_critic(s, b))
    if b.step > s.sz.critic_warmup:
        with _timed(b.timing, "update_actor"):
            loss_kw: dict[str, Any] = {}
            if "entropy_stats" in s.loss_params:
                # AEPO's entropy statistics cover the step's batch, not each micro-batch (as rlx.verl_entry does)
                from rlx.ops.aepo import entropy_stats

                loss_kw["entropy_stats"] = entropy_stats(b.old_ent[b.sel].double(), b.mask[b.sel])
            from rlx.verl_plugin import loss_extras

            with loss_extras(**loss_kw):
                b.metrics.update(updates.update_actor(s, b))
