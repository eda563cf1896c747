"""The CPU smoke engine: a real RL training loop of a resolved verl config on a tiny model, in a minute on a laptop.

Each step runs the algorithm's real code, in verl's order (`trainer/ppo/ray_trainer.py`):

1. `n` samples per prompt, generated with the resolved temperature, top_p and top_k;
2. rewards through verl's `compute_score(data_source, solution_str, ground_truth, extra_info)` signature (the task's
   scorer, or the config's `reward.custom_reward_function` / legacy `custom_reward_function`);
3. old log-probs and entropy, reference log-probs (when KL is in the loss or the reward), critic values;
4. optional KL-in-reward (verl's `kl_penalty` and KL controller) and DAPO group filtering (`algorithm.filter_groups`);
5. advantages from verl's estimator registry (rlx plugins included) with the resolved `algorithm` section: `gae` and
   `grpo` are called the way verl's `compute_advantage` calls them, every other estimator through the generic path
   plus whatever extra inputs its signature asks for (`values`, `reward_baselines`, ASPO's code markers, ...);
6. critic updates (verl's `compute_value_loss`), then `ppo_epochs` x mini-batches x micro-batches of actor updates
   with the policy loss from verl's registry, configured by an ActorConfig built with verl's own
   `omega_conf_to_dataclass`; `global_batch_info` is set before each micro-batch as `workers/utils/losses.py::ppo_loss`
   does, and the entropy bonus and KL loss are added as it adds them. Extra loss inputs (`entropy=` for AEPO,
   `log_denom=` for GEPO) are passed when the loss function's signature names them; a positive-example NLL term is
   added when `algorithm.rlx.*.nll_coef` is set (VAPO).

Sizes are shrunk (see `rlx.smoke.sizes`); every algorithm knob is kept. One deliberate shortcut, from the calibration:
an optimiser step is skipped for a mini-batch whose advantages are all zero (no policy-gradient signal).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from rlx.errors import ConfigError, JobFailedError, RlxError
from rlx.smoke import sizes as sizes_mod
from rlx.smoke.tasks import code_markers, compute_score, get_task, prompt_text, teacher_response

ALGO_CFG_ENV = "RLX_ALGO_CFG"
THREADS_ENV = "RLX_SMOKE_THREADS"
# One torch thread by default: on a 2-core machine shared with Ray and other processes, two threads measured 20x
# slower per step (OpenMP threads spin while waiting for a core); on an idle machine one thread costs ~20 %.
# The thread count is part of the numerics: the same seed gives the same curve for the same thread count.
NUM_THREADS = 1
LAST_K = 5


@dataclass
class SmokeResult:
    """What a smoke run did: per-step metrics and a summary."""

    algorithm: str | None
    adv_estimator: str
    loss_mode: str
    task: str
    seed: int
    sizes: sizes_mod.SmokeSizes
    history: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.history)

    def series(self, key: str) -> list[float]:
        """One metric over the steps (NaN where a step did not log it)."""
        return [h.get(key, float("nan")) for h in self.history]

    def final(self, key: str = "critic/score/mean", last: int = LAST_K) -> float:
        """Mean of `key` over the last `last` steps."""
        vals = [v for v in self.series(key)[-last:] if v == v]
        return sum(vals) / len(vals) if vals else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "adv_estimator": self.adv_estimator,
            "loss_mode": self.loss_mode,
            "task": self.task,
            "seed": self.seed,
            "steps": self.steps,
            "wall_s": round(self.wall_s, 2),
            "score_first": self.history[0].get("critic/score/mean") if self.history else None,
            "score_final": self.final(),
        }


# ----------------------------------------------------------------------------------------------------------- config
def _as_dictconfig(config: Any):
    from omegaconf import DictConfig, OmegaConf

    if isinstance(config, DictConfig):
        return config
    if isinstance(config, Mapping):
        return OmegaConf.create(dict(config))
    raise ConfigError(
        f"the smoke engine needs a verl config mapping, got {type(config).__name__}",
        hint="pass rlx.resolve.resolve(...).config or .container()",
    )


def _getter(cfg) -> Callable[[str, Any], Any]:
    from omegaconf import OmegaConf

    def get(path: str, default: Any = None) -> Any:
        try:
            v = OmegaConf.select(cfg, path, default=default, throw_on_resolution_failure=False)
        except Exception:  # noqa: BLE001 - an unresolvable interpolation reads as absent
            return default
        return OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v

    return get


def _rlx_options(get) -> dict[str, Any]:
    section = get("algorithm.rlx", None)
    return dict(section) if isinstance(section, Mapping) else {}


def _find_option(options: Mapping[str, Any], name: str) -> Any:
    """The value of `name` anywhere in the `algorithm.rlx` tree (algorithm sections are keyed by algorithm name;
    the engine does not need to know which)."""
    for key, value in options.items():
        if key == name and not isinstance(value, Mapping):
            return value
        if isinstance(value, Mapping):
            found = _find_option(value, name)
            if found is not None:
                return found
    return None


def _import_verl(options: Mapping[str, Any]):
    """Import verl's registries with rlx's plugins loaded and their options set."""
    if options:
        os.environ[ALGO_CFG_ENV] = json.dumps(options, sort_keys=True, default=str)
    import verl  # noqa: F401 - loads the `verl.plugins` entry points (rlx's losses and estimators)
    from verl.trainer.ppo import core_algos

    problem = None
    try:
        from rlx import verl_plugin

        verl_plugin.ensure_registered()
    except RlxError as e:  # reported only if the config actually names a missing function (see _registry_fn)
        problem = e
    except ImportError:
        pass
    return core_algos, problem


def _registry_fn(getter_fn, name: str, registry: Mapping, what: str, path: str, plugin_problem: Exception | None):
    try:
        return getter_fn(name)
    except (ValueError, KeyError, NotImplementedError):
        from rlx.errors import suggestion

        if plugin_problem is not None:
            raise plugin_problem from None
        hint = suggestion(name, registry, fallback="registered: " + ", ".join(sorted(registry)))
        raise ConfigError(f"verl has no {what} named {name!r}", where=path, hint=hint) from None


def _params(fn) -> tuple[set[str], bool]:
    sig = inspect.signature(fn)
    names = {p.name for p in sig.parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names, any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


def _actor_config(cfg, sz: sizes_mod.SmokeSizes):
    """verl's ActorConfig dataclass from the resolved actor section, with the smoke sizes (verl's own converter)."""
    from omegaconf import DictConfig, OmegaConf
    from verl.utils.config import omega_conf_to_dataclass

    actor = cast(DictConfig, OmegaConf.create(OmegaConf.to_container(cfg.actor_rollout_ref.actor, resolve=True)))
    actor.rollout_n = sz.n
    actor.ppo_mini_batch_size = sz.mini_batch_prompts * sz.n
    actor.ppo_micro_batch_size = None
    actor.ppo_micro_batch_size_per_gpu = sz.mini_batch_prompts * sz.n // sz.micro_per_mini
    actor.use_dynamic_bsz = False
    actor.optim.lr = sz.actor_lr
    if sz.loss_scale_factor is not None:
        actor.loss_scale_factor = sz.loss_scale_factor
    try:
        return omega_conf_to_dataclass(actor)
    except Exception as e:  # noqa: BLE001 - verl's __post_init__ checks raise several types
        raise ConfigError(
            f"verl refused the actor config: {str(e).splitlines()[0]}",
            where="actor_rollout_ref.actor",
            hint="run `rlx validate config` on this config",
        ) from None


# ------------------------------------------------------------------------------------------------------------ reward
def _reward_fn(get) -> tuple[Callable[..., Any], str]:
    """The reward function: the config's custom function (verl 0.9.1 `reward.custom_reward_function`, or the legacy
    top-level `custom_reward_function` that verl migrates there), else the smoke tasks' scorer."""
    section, where = get("reward.custom_reward_function", None) or {}, "reward.custom_reward_function"
    legacy = get("custom_reward_function", None) or {}
    if any(v is not None for v in legacy.values()):
        section, where = legacy, "custom_reward_function"
    path = section.get("path")
    if not path:
        return compute_score, "rlx.smoke.tasks.compute_score"
    name = section.get("name") or "compute_score"
    if not os.path.exists(path):
        raise ConfigError(
            f"custom reward file not found: {path}",
            where=f"{where}.path",
            hint="give an absolute path to a .py file defining "
            f"{name}(data_source, solution_str, ground_truth, extra_info)",
        )
    from verl.utils.import_utils import load_extern_object

    try:
        fn = load_extern_object(module_path=path, object_name=name)
    except Exception as e:  # noqa: BLE001 - user code: any import error
        raise ConfigError(
            f"cannot load reward function {name!r} from {path}: {e}",
            where=f"{where}.name",
            hint=f"define `def {name}(data_source, solution_str, ground_truth, extra_info=None)`",
        ) from None
    kwargs = dict(section.get("reward_kwargs") or {})

    def call(data_source, solution_str, ground_truth, extra_info=None):
        return fn(
            data_source=data_source,
            solution_str=solution_str,
            ground_truth=ground_truth,
            extra_info=extra_info,
            **kwargs,
        )

    return call, f"{path}:{name}"


def _score(fn, row: Mapping[str, Any], solution: str) -> tuple[float, dict[str, Any]]:
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


# -------------------------------------------------------------------------------------------------------- tensors
def _response_logits(model, seqs, prompt_len: int, temperature: float):
    logits = model(input_ids=seqs).logits[:, prompt_len - 1 : -1, :]
    return logits / temperature


def _logprob_entropy(model, seqs, prompt_len: int, temperature: float, want_entropy: bool = True):
    import torch
    from verl.utils.torch_functional import entropy_from_logits

    logits = _response_logits(model, seqs, prompt_len, temperature).float()
    resp = seqs[:, prompt_len:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, resp.unsqueeze(-1)).squeeze(-1)
    ent = entropy_from_logits(logits) if want_entropy else None
    return logp, ent


def _sample(
    model, prompts, max_new: int, eos: int, pad: int, *, temperature: float, top_p: float, top_k: int, greedy: bool, gen
):
    """Autoregressive sampling with temperature / top-k / top-p (verl's rollout semantics); EOS ends a response."""
    import torch

    seqs = prompts
    done = torch.zeros(prompts.shape[0], dtype=torch.bool)
    out = []
    for _ in range(max_new):
        logits = model(input_ids=seqs).logits[:, -1, :].float()
        if greedy:
            tok = logits.argmax(-1)
        else:
            logits = logits / temperature
            if top_k and top_k > 0:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, -torch.inf)
            if top_p < 1.0:
                sorted_logits, order = torch.sort(logits, descending=True)
                cum = torch.softmax(sorted_logits, -1).cumsum(-1)
                drop = cum - torch.softmax(sorted_logits, -1) >= top_p  # keep the smallest set reaching top_p
                logits = logits.masked_fill(drop.scatter(1, order, drop), -torch.inf)
            tok = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(-1)
        tok = torch.where(done, torch.full_like(tok, pad), tok)
        out.append(tok)
        done = done | (tok == eos)
        seqs = torch.cat([seqs, tok.unsqueeze(1)], dim=1)
        if bool(done.all()):
            break
    resp = torch.stack(out, dim=1)
    if resp.shape[1] < max_new:
        resp = torch.cat([resp, torch.full((resp.shape[0], max_new - resp.shape[1]), pad)], dim=1)
    # response_mask covers the generated tokens up to and including EOS (verl's compute_response_mask)
    is_eos = (resp == eos).int()
    after_eos = (is_eos.cumsum(1) - is_eos) > 0
    mask = (~after_eos).float()
    return resp, mask


def _stats(prefix: str, x) -> dict[str, float]:
    if x.numel() == 0:
        return {}
    return {f"{prefix}/mean": float(x.mean()), f"{prefix}/max": float(x.max()), f"{prefix}/min": float(x.min())}


def _metric_value(v: Any) -> float | None:
    try:
        import torch

        if isinstance(v, torch.Tensor):
            return float(v.detach().float().mean()) if v.numel() else None
        return float(v)
    except (TypeError, ValueError):
        return None


def _mean_metrics(acc: dict[str, list[float]]) -> dict[str, float]:
    return {k: sum(v) / len(v) for k, v in acc.items() if v}


# --------------------------------------------------------------------------------------------------------------- run
def run(
    config: Any,
    *,
    task: str = "copy",
    steps: int | None = None,
    seed: int = 0,
    on_step: Callable[[int, dict[str, float]], Any] | None = None,
    on_start: Callable[[dict[str, Any]], Any] | None = None,
    algorithm: str | None = None,
) -> SmokeResult:
    """Train the resolved verl `config` on a tiny model and synthetic task, on CPU; return the per-step metrics.

    Args:
        config: the resolved verl config (OmegaConf DictConfig, or the plain dict of `Resolved.container()`).
        task: `copy` (default), `reverse` or `code` (see `rlx.smoke.tasks`).
        steps: training steps (default 200: the copy task reaches a score of 0.9 after about 130-170 steps).
        seed: seeds torch, sampling and data order; the same seed gives the same curve.
        on_step: called after every step with (step, metrics); metric names are verl's.
        on_start: called once before training with a dict describing the run (`sizes`, `shrunk`, `algorithm`...).
        algorithm: the rlx algorithm name, for labels only (the config alone decides what runs).

    Raises:
        ConfigError: the config names an estimator or loss verl does not have, or verl refuses the actor config.
        JobFailedError: the reward function fails or training produces NaNs.
    """
    t_start = time.monotonic()
    if steps is not None and int(steps) < 1:
        from rlx.errors import UsageError

        raise UsageError(f"--steps must be at least 1, got {steps}", where="--steps", hint="e.g. --steps 40")
    cfg = _as_dictconfig(config)
    get = _getter(cfg)
    the_task = get_task(task)
    sz = sizes_mod.plan(
        get, max_prompt_length=the_task.max_prompt_length, max_response_length=the_task.max_response_length, steps=steps
    )
    options = _rlx_options(get)
    core_algos, plugin_problem = _import_verl(options)

    import numpy as np
    import torch

    torch.set_num_threads(int(os.environ.get(THREADS_ENV) or NUM_THREADS))

    adv_name = str(get("algorithm.adv_estimator", "gae"))
    loss_mode = str(get("actor_rollout_ref.actor.policy_loss.loss_mode", "vanilla"))
    adv_fn = _registry_fn(
        core_algos.get_adv_estimator_fn,
        adv_name,
        core_algos.ADV_ESTIMATOR_REGISTRY,
        "advantage estimator",
        "algorithm.adv_estimator",
        plugin_problem,
    )
    loss_fn = _registry_fn(
        core_algos.get_policy_loss_fn,
        loss_mode,
        core_algos.POLICY_LOSS_REGISTRY,
        "policy loss",
        "actor_rollout_ref.actor.policy_loss.loss_mode",
        plugin_problem,
    )
    adv_params, adv_varkw = _params(adv_fn)
    loss_params, _ = _params(loss_fn)
    actor_cfg = _actor_config(cfg, sz)
    algo_cfg = cfg.algorithm
    reward_fn, reward_name = _reward_fn(get)

    critic_enable = get("critic.enable", None)
    # verl's rule (trainer/ppo/utils.py need_critic): critic.enable when set, else on only for gae
    use_critic = bool(critic_enable) if critic_enable is not None else adv_fn is core_algos.get_adv_estimator_fn("gae")
    # GAD (arXiv 2511.10643): the critic worker is the discriminator, sg(D(student)) the reward
    gad_key = get("algorithm.rlx.gad.teacher_key", None)
    gad = gad_key is not None and str(gad_key).strip() != ""
    if gad and not use_critic:
        raise ConfigError(
            "GAD's discriminator runs on the critic, but the critic is disabled",
            where="critic.enable",
            hint="set critic.enable=true",
        )
    use_kl_in_reward = bool(get("algorithm.use_kl_in_reward", False))
    use_ref = bool(actor_cfg.use_kl_loss) or use_kl_in_reward
    nll_coef = float(_find_option(options, "nll_coef") or 0.0)
    filter_cfg = get("algorithm.filter_groups", None) or {}
    filter_metric = filter_cfg.get("metric") if filter_cfg.get("enable") else None
    shrunk = list(sz.shrunk) + ([sizes_mod.critic_row(get)] if use_critic else [])
    sz = dataclasses.replace(sz, shrunk=tuple(shrunk))

    temperature = float(get("actor_rollout_ref.rollout.temperature", 1.0) or 1.0)
    top_p = float(get("actor_rollout_ref.rollout.top_p", 1.0) or 1.0)
    top_k = int(get("actor_rollout_ref.rollout.top_k", -1) or -1)
    do_sample = bool(get("actor_rollout_ref.rollout.do_sample", True))

    # ---- models and data (seeded: the same seed gives the same run)
    from rlx.smoke.model import CharTokenizer, build_critic, build_discriminator, build_policy

    torch.manual_seed(seed)
    np.random.seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    tok = CharTokenizer()
    policy = build_policy(tok)
    ref = build_policy(tok) if use_ref else None
    if ref is not None:
        ref.load_state_dict(policy.state_dict())
        ref.eval().requires_grad_(False)
    optim_cfg = cfg.actor_rollout_ref.actor.optim
    betas = tuple(get("actor_rollout_ref.actor.optim.betas", None) or (0.9, 0.999))
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=sz.actor_lr, betas=betas, weight_decay=float(optim_cfg.get("weight_decay", 0.0) or 0.0)
    )
    critic = critic_opt = None
    critic_cfg = None
    disc = disc_opt = None
    if gad:
        disc = build_discriminator(tok, policy)
        disc_opt = torch.optim.AdamW(
            disc.parameters(), lr=sz.critic_lr, weight_decay=float(get("critic.optim.weight_decay", 0.0) or 0.0)
        )
    elif use_critic:
        critic = build_critic(tok)
        critic_opt = torch.optim.AdamW(
            critic.parameters(), lr=sz.critic_lr, weight_decay=float(get("critic.optim.weight_decay", 0.0) or 0.0)
        )
        critic_cfg = {
            "cliprange_value": float(get("critic.cliprange_value", 0.5)),
            "loss_agg_mode": str(get("critic.loss_agg_mode", "token-mean")),
            "ppo_epochs": int(get("critic.ppo_epochs", 1) or 1),
            "grad_clip": float(get("critic.grad_clip", 1.0) or 1.0),
        }
    kl_ctrl = core_algos.get_kl_controller(algo_cfg.kl_ctrl) if use_kl_in_reward else None

    import tempfile

    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="rlx-smoke-") as tmp:
        data = pd.read_parquet(the_task.write_parquet(os.path.join(tmp, "train.parquet")))
    rows = data.to_dict(orient="records")
    prompt_ids = [[tok.bos_id, *tok.encode(prompt_text(r["prompt"]))] for r in rows]
    teacher_ids = None
    if gad:
        # the dataset's teacher column when it has one, else the smoke task's fixed teacher; answer + EOS, padded
        R = sz.max_response_length  # noqa: N806
        teacher_ids = []
        for r in rows:
            text = r.get(str(gad_key)) or teacher_response(r)
            ids = (tok.encode(str(text)) + [tok.eos_id])[:R]
            teacher_ids.append(ids + [tok.pad_id] * (R - len(ids)))

    info = {
        "algorithm": algorithm,
        "adv_estimator": adv_name,
        "loss_mode": loss_mode,
        "task": the_task.name,
        "seed": seed,
        "sizes": sz,
        "shrunk": sz.table(),
        "reward_fn": reward_name,
        "critic": use_critic,
        "gad": gad,
        "reference": use_ref,
        "kl_in_reward": use_kl_in_reward,
        "filter_groups": filter_metric,
        "loss_agg_mode": actor_cfg.loss_agg_mode,
        "clip_ratio_low": actor_cfg.clip_ratio_low,
        "clip_ratio_high": actor_cfg.clip_ratio_high,
        "ppo_epochs": actor_cfg.ppo_epochs,
    }
    if on_start is not None:
        on_start(info)
    result = SmokeResult(
        algorithm=info["algorithm"],
        adv_estimator=adv_name,
        loss_mode=loss_mode,
        task=the_task.name,
        seed=seed,
        sizes=sz,
    )

    order = rng.permutation(len(rows))
    cursor = 0
    epoch = 0
    P = the_task.max_prompt_length  # noqa: N806 - every prompt has the same width
    for step in range(1, sz.steps + 1):
        t0 = time.monotonic()
        timing: dict[str, float] = {}
        metrics: dict[str, float] = {}
        if cursor + sz.prompts > len(order):
            order, cursor, epoch = rng.permutation(len(rows)), 0, epoch + 1
        picked = order[cursor : cursor + sz.prompts]
        cursor += sz.prompts

        # 1. rollout: n samples per prompt
        t = time.monotonic()
        prompts = torch.tensor([prompt_ids[i] for i in picked]).repeat_interleave(sz.n, dim=0)
        uid = np.array([str(i) for i in picked for _ in range(sz.n)], dtype=object)
        sample_rows = [rows[i] for i in picked for _ in range(sz.n)]
        policy.eval()
        with torch.no_grad():
            resp, mask = _sample(
                policy,
                prompts,
                sz.max_response_length,
                tok.eos_id,
                tok.pad_id,
                temperature=temperature,
                top_p=top_p,
                top_k=top_k,
                greedy=not do_sample,
                gen=gen,
            )
        seqs = torch.cat([prompts, resp], dim=1)
        timing["gen"] = time.monotonic() - t

        # 2. rewards (verl's compute_score signature)
        t = time.monotonic()
        solutions = [tok.decode(r) for r in resp.tolist()]
        scored = [_score(reward_fn, row, s) for row, s in zip(sample_rows, solutions, strict=False)]
        scores = torch.tensor([s for s, _ in scored], dtype=torch.float32)
        extras: dict[str, list[Any]] = {}
        for (_, ex), sol in zip(scored, solutions, strict=False):
            merged = {**code_markers(sol), "correct": None, **ex}
            for k, v in merged.items():
                extras.setdefault(k, []).append(v)
        correct = [bool(c) if c is not None else s >= 1.0 for c, (s, _) in zip(extras["correct"], scored, strict=False)]
        extras["correct"] = correct
        teacher_seqs = teacher_mask = None
        if disc is not None:
            # GAD: the task's score is only logged; the student's reward is D's score of its own response
            metrics["critic/task_score/mean"] = float(scores.mean())
            teacher_resp = torch.tensor([teacher_ids[i] for i in picked]).repeat_interleave(sz.n, dim=0)
            teacher_mask = (teacher_resp != tok.pad_id).to(mask.dtype)
            teacher_seqs = torch.cat([prompts, teacher_resp], dim=1)
            disc.eval()
            with torch.no_grad():
                scores = _d_scores(disc, seqs, mask, P).float()
        lengths = mask.sum(-1)
        last = (lengths - 1).clamp_min(0).long()
        token_scores = torch.zeros_like(mask)
        token_scores[torch.arange(len(scores)), last] = scores
        timing["reward"] = time.monotonic() - t

        # 3. old log-probs / entropy, reference log-probs, values
        t = time.monotonic()
        with torch.no_grad():
            old_lp, old_ent = _logprob_entropy(policy, seqs, P, temperature)
        timing["old_log_prob"] = time.monotonic() - t
        ref_lp = None
        if ref is not None:
            t = time.monotonic()
            with torch.no_grad():
                ref_lp, _ = _logprob_entropy(ref, seqs, P, temperature, want_entropy=False)
            timing["ref"] = time.monotonic() - t
        values = None
        if critic is not None:
            t = time.monotonic()
            critic.eval()
            with torch.no_grad():
                values = critic(seqs)[:, P - 1 : -1] * mask
            timing["values"] = time.monotonic() - t
        metrics["actor/entropy"] = float(core_algos.agg_loss(old_ent, mask, "token-mean"))

        # 4. KL in reward, group filtering
        token_rewards = token_scores
        if kl_ctrl is not None:
            kld = core_algos.kl_penalty(old_lp, ref_lp, kl_penalty=str(get("algorithm.kl_penalty", "kl"))) * mask
            beta = kl_ctrl.value
            token_rewards = token_scores - beta * kld
            current_kl = float((kld.sum(-1) / mask.sum(-1).clamp_min(1)).mean())
            kl_ctrl.update(current_kl=current_kl, n_steps=len(scores))
            metrics.update({"actor/reward_kl_penalty": current_kl, "actor/reward_kl_penalty_coeff": beta})
        keep = torch.ones(len(scores), dtype=torch.bool)
        if filter_metric is not None and sz.n > 1:
            if filter_metric == "reward":
                fvals = token_rewards.sum(-1).tolist()
            elif filter_metric in extras:
                fvals = [float(v) for v in extras[filter_metric]]
            else:
                raise ConfigError(
                    f"algorithm.filter_groups.metric={filter_metric!r} is not a key the reward function returns",
                    where="algorithm.filter_groups.metric",
                    hint="use 'reward', or return a dict with that key from compute_score; keys: "
                    + ", ".join(sorted(extras)),
                )
            fv = torch.tensor(fvals).view(-1, sz.n)
            keep = (fv.std(dim=1, unbiased=False) > 0).repeat_interleave(sz.n)
            metrics["training/filter_groups/evicted_samples"] = float((~keep).sum())

        # 5. advantages from verl's registry
        t = time.monotonic()
        advantages, returns = _advantages(
            core_algos,
            adv_fn,
            adv_params,
            adv_varkw,
            algo_cfg,
            get,
            token_rewards,
            mask,
            uid,
            values,
            extras,
            old_lp,
            policy,
            prompts,
            sz,
            tok,
            reward_fn,
            sample_rows,
            temperature,
            top_p,
            top_k,
            gen,
        )
        timing["adv"] = time.monotonic() - t
        metrics.update(_estimator_diagnostics())

        # data metrics, as verl's compute_data_metrics names them
        vmask = mask.bool()
        metrics.update(_stats("critic/score", scores))
        metrics.update(_stats("critic/rewards", token_rewards.sum(-1)))
        metrics.update(_stats("critic/advantages", advantages[vmask]))
        metrics.update(_stats("critic/returns", returns[vmask]))
        if values is not None:
            metrics.update(_stats("critic/values", values[vmask]))
            ret_v, val_v = returns[vmask], values[vmask]
            metrics["critic/vf_explained_var"] = float(1 - (ret_v - val_v).var() / (ret_v.var() + 1e-5))
        metrics.update(_stats("response_length", lengths))
        metrics["response_length/clip_ratio"] = float(
            (resp[:, -1] != tok.pad_id).logical_and(resp[:, -1] != tok.eos_id).float().mean()
        )
        metrics.update(_stats("prompt_length", torch.full((len(scores),), float(P))))
        used = torch.tensor([bool(u) for u in extras["used_code"]])
        pos = torch.tensor([float(p) for p in extras["first_code_pos"]])
        metrics["code/usage_ratio"] = float(used.float().mean())
        if bool(used.any()):
            metrics["code/first_pos/mean"] = float(pos[used].mean())
        metrics["critic/acc/mean"] = float(torch.tensor(correct, dtype=torch.float32).mean())

        log_denom = None
        if "log_denom" in loss_params:
            from rlx.ops.gepo import group_log_denominator

            log_denom = group_log_denominator(old_lp, mask, uid)

        # 6. critic update, then actor update (verl's order); critic warm-up holds the actor back
        sel = keep.nonzero().squeeze(-1)
        if disc is not None:
            t = time.monotonic()
            metrics.update(
                _update_discriminator(
                    disc,
                    disc_opt,
                    seqs,
                    mask,
                    teacher_seqs,
                    teacher_mask,
                    P,
                    sel,
                    sz,
                    float(get("critic.grad_clip", 1.0) or 1.0),
                    step,
                    seed,
                )
            )
            timing["update_critic"] = time.monotonic() - t
        if critic is not None:
            t = time.monotonic()
            metrics.update(
                _update_critic(core_algos, critic, critic_opt, critic_cfg, seqs, P, mask, values, returns, sel, sz)
            )
            timing["update_critic"] = time.monotonic() - t
        if step > sz.critic_warmup:
            t = time.monotonic()
            loss_kw: dict[str, Any] = {}
            if "entropy_stats" in loss_params:
                # AEPO's entropy statistics cover the step's batch, not each micro-batch (as rlx.verl_entry does)
                from rlx.ops.aepo import entropy_stats

                loss_kw["entropy_stats"] = entropy_stats(old_ent[sel].double(), mask[sel])
            from rlx.verl_plugin import loss_extras

            with loss_extras(**loss_kw):
                metrics.update(
                    _update_actor(
                        core_algos,
                        loss_fn,
                        loss_params,
                        actor_cfg,
                        policy,
                        optimizer,
                        seqs,
                        P,
                        mask,
                        old_lp,
                        ref_lp,
                        advantages,
                        log_denom,
                        correct,
                        nll_coef,
                        sel,
                        sz,
                        temperature,
                        step,
                        seed,
                    )
                )
            timing["update_actor"] = time.monotonic() - t
        metrics["actor/lr"] = sz.actor_lr
        timing["step"] = time.monotonic() - t0
        metrics.update({f"timing_s/{k}": v for k, v in timing.items()})
        metrics["perf/throughput"] = float(mask.sum()) / max(timing["step"], 1e-9)
        metrics["perf/total_num_tokens"] = float(mask.sum())
        metrics["training/global_step"] = float(step)
        metrics["training/epoch"] = float(epoch)
        bad = [k for k in ("actor/pg_loss", "actor/grad_norm") if k in metrics and metrics[k] != metrics[k]]
        if bad:
            raise JobFailedError(
                f"training diverged at step {step}: {', '.join(bad)} is NaN",
                hint="lower the learning rate or check the loss settings",
            )
        result.history.append(metrics)
        if on_step is not None:
            on_step(step, metrics)
    result.wall_s = time.monotonic() - t_start
    return result


def _advantages(
    core_algos,
    adv_fn,
    params,
    varkw,
    algo_cfg,
    get,
    token_rewards,
    mask,
    uid,
    values,
    extras,
    old_lp,
    policy,
    prompts,
    sz,
    tok,
    reward_fn,
    sample_rows,
    temperature,
    top_p,
    top_k,
    gen,
):
    """Call the estimator the way verl's `compute_advantage` does; extra inputs by what its signature names."""
    import torch

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
        "config": algo_cfg,
        "index": uid,
    }
    if "reward_baselines" in params:
        kwargs["reward_baselines"] = _greedy_baselines(
            policy, prompts, sz, tok, reward_fn, sample_rows, temperature, top_p, top_k, gen
        )
    available = {
        "values": values,
        "old_log_probs": old_lp,
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
    kwargs = {k: v for k, v in kwargs.items() if k in params or varkw}
    return adv_fn(**kwargs)


def _estimator_diagnostics() -> dict[str, float]:
    """Metrics rlx's estimators leave behind for the trainer to log (`rlx.verl_plugin.estimator_metrics`)."""
    import sys

    found = getattr(sys.modules.get("rlx.verl_plugin"), "estimator_metrics", None)
    if not isinstance(found, dict):
        return {}
    out = {k: v for k, v in ((k, _metric_value(v)) for k, v in found.items()) if v is not None}
    found.clear()
    return out


def _greedy_baselines(policy, prompts, sz, tok, reward_fn, sample_rows, temperature, top_p, top_k, gen):
    """ReMax's baseline: the reward of a greedy response per prompt, broadcast to its samples."""
    import torch

    first = prompts[:: sz.n]
    with torch.no_grad():
        resp, _ = _sample(
            policy,
            first,
            sz.max_response_length,
            tok.eos_id,
            tok.pad_id,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            greedy=True,
            gen=gen,
        )
    base = [_score(reward_fn, sample_rows[i * sz.n], tok.decode(r))[0] for i, r in enumerate(resp.tolist())]
    return torch.tensor(base, dtype=torch.float32).repeat_interleave(sz.n)


def _mini_batches(sel, sz, step: int, epoch: int, seed: int, shuffle: bool):
    """Index chunks for the updates: `mini_batches` chunks of whole groups (filtered samples dropped)."""
    import torch

    idx = sel
    if shuffle:
        g = torch.Generator().manual_seed(seed * 100003 + step * 101 + epoch)
        idx = idx[torch.randperm(len(idx), generator=g)]
    n_chunks = max(1, min(sz.mini_batches, len(idx)))
    return [c for c in torch.tensor_split(idx, n_chunks) if len(c)]


def _update_actor(
    core_algos,
    loss_fn,
    loss_params,
    actor_cfg,
    policy,
    optimizer,
    seqs,
    P,
    mask,
    old_lp,
    ref_lp,  # noqa: N803
    advantages,
    log_denom,
    correct,
    nll_coef,
    sel,
    sz,
    temperature,
    step,
    seed,
) -> dict[str, float]:
    """`ppo_epochs` x mini-batches x micro-batches of policy-loss updates, as verl's actor worker runs them."""
    import torch

    from_loss: dict[str, list[float]] = {}
    grad_norms: list[float] = []
    skipped = 0
    correct_t = torch.tensor(correct, dtype=torch.float32)
    want_entropy = (
        bool(actor_cfg.calculate_entropy) or float(actor_cfg.entropy_coeff) != 0.0 or "entropy" in loss_params
    )
    policy.train()
    for epoch in range(int(actor_cfg.ppo_epochs)):
        for mb in _mini_batches(sel, sz, step, epoch, seed, bool(actor_cfg.shuffle)):
            if bool((advantages[mb] * mask[mb]).abs().sum() == 0):
                skipped += 1  # calibrated shortcut: no policy-gradient signal in this mini-batch
                continue
            optimizer.zero_grad(set_to_none=True)
            batch_num_tokens = int(mask[mb].sum())
            nll_tokens = float((mask[mb] * correct_t[mb].unsqueeze(-1)).sum())
            for micro in torch.tensor_split(mb, min(sz.micro_per_mini, len(mb))):
                # workers/utils/losses.py::ppo_loss sets these before each micro-batch (dp_size 1 on one CPU)
                actor_cfg.global_batch_info.update(
                    dp_size=1,
                    batch_num_tokens=batch_num_tokens,
                    global_batch_size=len(mb),
                    loss_scale_factor=actor_cfg.loss_scale_factor,
                )
                m = mask[micro]
                logp, ent = _logprob_entropy(policy, seqs[micro], P, temperature, want_entropy=want_entropy)
                kwargs: dict[str, Any] = dict(
                    old_log_prob=old_lp[micro],
                    log_prob=logp,
                    advantages=advantages[micro],
                    response_mask=m.bool(),
                    loss_agg_mode=actor_cfg.loss_agg_mode,
                    config=actor_cfg,
                    rollout_is_weights=None,
                )
                if "entropy" in loss_params:
                    kwargs["entropy"] = ent.detach()
                if "log_denom" in loss_params:
                    kwargs["log_denom"] = log_denom[micro]
                pg_loss, pg_metrics = loss_fn(**kwargs)
                loss = pg_loss
                _acc(from_loss, "actor/pg_loss", pg_loss)
                for k, v in (pg_metrics or {}).items():
                    _acc(from_loss, k if "/" in k else f"actor/{k}", v)
                if ent is not None:
                    entropy_loss = core_algos.agg_loss(
                        loss_mat=ent,
                        loss_mask=m.bool(),
                        loss_agg_mode=actor_cfg.loss_agg_mode,
                        **actor_cfg.global_batch_info,
                    )
                    loss = loss - float(actor_cfg.entropy_coeff) * entropy_loss
                    _acc(from_loss, "actor/entropy_loss", entropy_loss)
                if actor_cfg.use_kl_loss:
                    kld = core_algos.kl_penalty(
                        logprob=logp, ref_logprob=ref_lp[micro], kl_penalty=actor_cfg.kl_loss_type
                    )
                    kl_loss = core_algos.agg_loss(
                        loss_mat=kld,
                        loss_mask=m.bool(),
                        loss_agg_mode=actor_cfg.loss_agg_mode,
                        **actor_cfg.global_batch_info,
                    )
                    loss = loss + kl_loss * float(actor_cfg.kl_loss_coef)
                    _acc(from_loss, "actor/kl_loss", kl_loss)
                    _acc(from_loss, "actor/kl_coef", actor_cfg.kl_loss_coef)
                if nll_coef:
                    from rlx.ops.vapo import positive_nll

                    nll, nll_metrics = positive_nll(logp, m, correct_t[micro], num_tokens=nll_tokens)
                    loss = loss + nll_coef * nll
                    for k, v in nll_metrics.items():
                        _acc(from_loss, k, v)
                loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), float(actor_cfg.grad_clip or 1e9))
            if not torch.isfinite(grad_norm):
                optimizer.zero_grad(set_to_none=True)  # verl skips the step on a non-finite grad norm
            else:
                optimizer.step()
            grad_norms.append(float(grad_norm))
    out = _mean_metrics(from_loss)
    if grad_norms:
        out["actor/grad_norm"] = sum(grad_norms) / len(grad_norms)
    out["actor/skipped_mini_batches"] = float(skipped)
    return out


def _d_scores(disc, seqs, mask, P):  # noqa: N803
    """D(x, y): the discriminator's scalar at the last response token of each row (the prompt's end when empty)."""
    import torch

    from rlx.ops.gad import last_token_index

    out = disc(seqs)
    pos = P + last_token_index(mask).clamp_min(0)
    return out[torch.arange(out.shape[0]), pos]


def _update_discriminator(
    disc,
    opt,
    seqs,
    mask,
    teacher_seqs,
    teacher_mask,
    P,
    sel,
    sz,
    grad_clip,
    step,  # noqa: N803
    seed,
) -> dict[str, float]:
    """GAD's D step: Bradley-Terry loss on (teacher, student) pairs of the same prompt, one update per mini-batch.

    Metrics are those of the forward passes before each update (verl logs the critic's pre-update losses too)."""
    import torch

    from rlx.ops.gad import gad_disc_loss

    acc: dict[str, list[float]] = {}
    disc.train()
    g = torch.Generator().manual_seed(seed * 100_003 + step)
    perm = sel[torch.randperm(len(sel), generator=g)]
    for mb in perm.chunk(max(1, sz.mini_batches)):
        if not len(mb):
            continue
        opt.zero_grad()
        r = gad_disc_loss(
            _d_scores(disc, teacher_seqs[mb], teacher_mask[mb], P), _d_scores(disc, seqs[mb], mask[mb], P)
        )
        r.loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(disc.parameters(), grad_clip)
        opt.step()
        _acc(acc, "critic/d_loss", r.loss)
        _acc(acc, "critic/d_acc", r.d_acc)
        _acc(acc, "critic/d_teacher_score_mean", r.teacher_score_mean)
        _acc(acc, "critic/d_student_score_mean", r.student_score_mean)
        _acc(acc, "critic/grad_norm", gn)
    return _mean_metrics(acc)


def _update_critic(core_algos, critic, opt, ccfg, seqs, P, mask, values, returns, sel, sz) -> dict[str, float]:  # noqa: N803
    """Value-model updates with verl's `compute_value_loss` (clipped value loss)."""
    import torch

    acc: dict[str, list[float]] = {}
    critic.train()
    for epoch in range(ccfg["ppo_epochs"]):
        for mb in _mini_batches(sel, sz, 0, epoch, 0, False):
            opt.zero_grad(set_to_none=True)
            batch_num_tokens = int(mask[mb].sum())
            for micro in torch.tensor_split(mb, min(sz.micro_per_mini, len(mb))):
                vpreds = critic(seqs[micro])[:, P - 1 : -1]
                vf_loss, vf_clipfrac = core_algos.compute_value_loss(
                    vpreds=vpreds,
                    returns=returns[micro],
                    values=values[micro],
                    response_mask=mask[micro].bool(),
                    cliprange_value=ccfg["cliprange_value"],
                    loss_agg_mode=ccfg["loss_agg_mode"],
                    dp_size=1,
                    batch_num_tokens=batch_num_tokens,
                    global_batch_size=len(mb),
                )
                vf_loss.backward()
                _acc(acc, "critic/vf_loss", vf_loss)
                _acc(acc, "critic/vf_clipfrac", vf_clipfrac)
                _acc(acc, "critic/vpred_mean", (vpreds * mask[micro]).sum() / mask[micro].sum().clamp_min(1))
            gn = torch.nn.utils.clip_grad_norm_(critic.parameters(), ccfg["grad_clip"])
            if torch.isfinite(gn):
                opt.step()
            _acc(acc, "critic/grad_norm", gn)
    return _mean_metrics(acc)


def _acc(acc: dict[str, list[float]], key: str, value: Any) -> None:
    v = _metric_value(value)
    if v is not None:
        acc.setdefault(key, []).append(v)
