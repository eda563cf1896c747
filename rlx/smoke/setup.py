"""A smoke run's set-up: the resolved config read once, verl's registry functions, the tiny models, the data.

`setup(config, task=..., steps=..., seed=...)` does everything a run does before its first step, in a fixed order
(the seeded model builds and the data order depend on it), and returns a `Setup`; the step phases
(`rlx.smoke.phases`) read it and never rebuild any of it. torch and verl are imported inside the functions: importing
this module is cheap.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from rlx.algorithms.hooks import trainer_options
from rlx.errors import ConfigError, RlxError
from rlx.smoke import sizes as sizes_mod
from rlx.smoke.tasks import Task, compute_score, get_task, prompt_text, teacher_response

ALGO_CFG_ENV = "RLX_ALGO_CFG"
THREADS_ENV = "RLX_SMOKE_THREADS"
# One torch thread by default: on a 2-core machine shared with Ray and other processes, two threads measured 20x
# slower per step (OpenMP threads spin while waiting for a core); on an idle machine one thread costs ~20 %.
# The thread count is part of the numerics: the same seed gives the same curve for the same thread count.
NUM_THREADS = 1


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


# ------------------------------------------------------------------------------------------------------------- setup
@dataclass
class PromptOrder:
    """The data order: a seeded permutation of the rows, walked `prompts` at a time; a new one starts each epoch."""

    order: Any  # numpy index permutation of the dataset rows
    cursor: int = 0
    epoch: int = 0

    def take(self, count: int, rng: Any) -> tuple[Any, int]:
        """The next `count` row indices, and the epoch they belong to."""
        if self.cursor + count > len(self.order):
            self.order, self.cursor, self.epoch = rng.permutation(len(self.order)), 0, self.epoch + 1
        picked = self.order[self.cursor : self.cursor + count]
        self.cursor += count
        return picked, self.epoch


@dataclass(frozen=True)
class Setup:
    """Everything a smoke run builds once: the fields never change; the models, optimisers, random generators, KL
    controller and data order they hold are updated in place by the steps."""

    # the config, and the sizes it was shrunk to
    cfg: Any  # the resolved verl config (DictConfig)
    get: Callable[..., Any]  # get(path, default): a resolved value of `cfg`
    task: Task
    sz: sizes_mod.SmokeSizes
    options: dict[str, Any]  # the `algorithm.rlx` tree (rlx's plugin options)
    seed: int
    # verl's registry functions and what their signatures ask for
    core_algos: Any  # verl.trainer.ppo.core_algos
    adv_name: str
    loss_mode: str
    adv_fn: Callable[..., Any]
    loss_fn: Callable[..., Any]
    adv_params: set[str]
    adv_varkw: bool
    loss_params: set[str]
    actor_cfg: Any  # verl's ActorConfig
    algo_cfg: Any  # the `algorithm` section (DictConfig)
    reward_fn: Callable[..., Any]
    reward_name: str
    # which parts of the algorithm run
    use_critic: bool
    discriminator: bool  # the critic is trained as a discriminator (a spec's teacher_option is set)
    use_ref: bool
    use_kl_in_reward: bool
    nll_coef: float
    filter_metric: str | None
    # rollout sampling
    temperature: float
    top_p: float
    top_k: int
    do_sample: bool
    # seeded state: sampling generator, data-order rng
    gen: Any  # torch.Generator
    rng: Any  # numpy Generator
    # models and optimisers
    tok: Any  # CharTokenizer
    policy: Any
    ref: Any  # the frozen reference policy, when KL is in the loss or the reward
    optimizer: Any
    critic: Any = None
    critic_opt: Any = None
    critic_cfg: dict[str, Any] | None = None
    disc: Any = None  # GAD's discriminator (on the critic)
    disc_opt: Any = None
    kl_ctrl: Any = None  # verl's KL controller, for KL in the reward
    # data
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    prompt_ids: list[list[int]] = dataclasses.field(default_factory=list)
    teacher_ids: list[list[int]] | None = None  # GAD: each row's teacher response, EOS-terminated and padded
    order: PromptOrder = dataclasses.field(default_factory=lambda: PromptOrder(order=[]))

    @property
    def prompt_len(self) -> int:
        """Every prompt has the same width."""
        return self.task.max_prompt_length

    def info(self, algorithm: str | None) -> dict[str, Any]:
        """What `run` hands its `on_start` callback."""
        return {
            "algorithm": algorithm,
            "adv_estimator": self.adv_name,
            "loss_mode": self.loss_mode,
            "task": self.task.name,
            "seed": self.seed,
            "sizes": self.sz,
            "shrunk": self.sz.table(),
            "reward_fn": self.reward_name,
            "critic": self.use_critic,
            "discriminator": self.discriminator,
            "reference": self.use_ref,
            "kl_in_reward": self.use_kl_in_reward,
            "filter_groups": self.filter_metric,
            "loss_agg_mode": self.actor_cfg.loss_agg_mode,
            "clip_ratio_low": self.actor_cfg.clip_ratio_low,
            "clip_ratio_high": self.actor_cfg.clip_ratio_high,
            "ppo_epochs": self.actor_cfg.ppo_epochs,
        }


def setup(config: Any, *, task: str = "copy", steps: int | None = None, seed: int = 0) -> Setup:
    """Read the config, load verl's registry functions, build the seeded models and the data (see `rlx.smoke.engine.run`
    for the arguments). The order of the seeded calls is part of the numerics: keep it."""
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
    # what the specs ask of the trainer (rlx.algorithms.hooks, as rlx.verl_entry reads them): a spec's teacher column
    # makes the critic a discriminator whose score sg(D(student)) is the reward; its NLL option weighs the NLL term
    extras = trainer_options(get)
    gad_key = extras.teacher_key
    gad = gad_key is not None
    if gad and not use_critic:
        raise ConfigError(
            f"{extras.teacher_path} is set: the discriminator runs on the critic, but the critic is disabled",
            where="critic.enable",
            hint="set critic.enable=true",
        )
    use_kl_in_reward = bool(get("algorithm.use_kl_in_reward", False))
    use_ref = bool(actor_cfg.use_kl_loss) or use_kl_in_reward
    nll_coef = extras.nll_coef
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

    return Setup(
        cfg=cfg,
        get=get,
        task=the_task,
        sz=sz,
        options=options,
        seed=seed,
        core_algos=core_algos,
        adv_name=adv_name,
        loss_mode=loss_mode,
        adv_fn=adv_fn,
        loss_fn=loss_fn,
        adv_params=adv_params,
        adv_varkw=adv_varkw,
        loss_params=loss_params,
        actor_cfg=actor_cfg,
        algo_cfg=algo_cfg,
        reward_fn=reward_fn,
        reward_name=reward_name,
        use_critic=use_critic,
        discriminator=gad,
        use_ref=use_ref,
        use_kl_in_reward=use_kl_in_reward,
        nll_coef=nll_coef,
        filter_metric=filter_metric,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        do_sample=do_sample,
        gen=gen,
        rng=rng,
        tok=tok,
        policy=policy,
        ref=ref,
        optimizer=optimizer,
        critic=critic,
        critic_opt=critic_opt,
        critic_cfg=critic_cfg,
        disc=disc,
        disc_opt=disc_opt,
        kl_ctrl=kl_ctrl,
        rows=rows,
        prompt_ids=prompt_ids,
        teacher_ids=teacher_ids,
        # the first epoch's data order (the same rng draws each later epoch's, in PromptOrder.take)
        order=PromptOrder(order=rng.permutation(len(rows))),
    )
