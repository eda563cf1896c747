"""Which keys of a resolved verl config the smoke engine shrinks, and to what.

A smoke run keeps every algorithm knob of the resolved config (estimator, loss mode, clip ratios, loss_agg_mode, KL,
entropy coefficient, temperature/top_p, filter_groups, `algorithm.rlx.*`, ppo_epochs, grad_clip, ...) and replaces
only sizes: the GPU-scale values would not run, or not learn, on two CPU cores in a minute. smoke-calibration.md holds
the measurements behind each value.

| key                                              | smoke value                                      | why                                         |
|--------------------------------------------------|--------------------------------------------------|---------------------------------------------|
| actor_rollout_ref.model.path                     | tiny random Qwen2 (2 layers, hidden 64, 4 heads) | no downloads; learns in seconds             |
| data.train_files / val_files                     | the task's parquet (verl format)                 | synthetic task with a verifiable reward     |
| data.max_prompt_length                           | 5 (BOS, 3 digits, `=`)                           | task size                                   |
| data.max_response_length                         | the task's answer + EOS (4, `code`: 5)           | task size                                   |
| actor_rollout_ref.rollout.n                      | min(n, 8)                                        | calibrated group size                       |
| data.train_batch_size                            | 128 samples / n prompts (16 at n = 8)            | calibrated batch                            |
| actor_rollout_ref.actor.ppo_mini_batch_size      | prompts / clamp(train_batch/mini_batch, 1, 4)    | keeps the number of updates per step, <= 4  |
| actor.ppo_micro_batch_size_per_gpu (and critic)  | the mini-batch (MICRO_PER_MINI = 1 micro-batch)  | per-call overhead dominates on CPU          |
| actor_rollout_ref.actor.optim.lr                 | 5e-4 (Adam-W, no warm-up or decay schedule)      | 1e-6 is for pretrained models               |
| critic.optim.lr                                  | 1e-3                                             | a fresh value head must learn fast          |
| actor.loss_scale_factor (when set)               | data.max_response_length of the smoke task       | it is a length (Dr.GRPO's constant)         |
| trainer.critic_warmup (when > 0)                 | min(critic_warmup, 3)                            | a smoke run has ~200 steps, not thousands   |
| trainer.total_training_steps / total_epochs      | --steps (default 200)                            | ~0.9 on copy after 130-170 steps            |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SAMPLES_PER_STEP = 128
MAX_GROUP = 8
MAX_MINI_BATCHES = 4
MICRO_PER_MINI = 1
ACTOR_LR = 5e-4
CRITIC_LR = 1e-3
MAX_CRITIC_WARMUP = 3
DEFAULT_STEPS = 200


@dataclass(frozen=True)
class Shrunk:
    """One replaced key: its resolved value, the smoke value and why."""

    key: str
    resolved: Any
    smoke: Any
    why: str


@dataclass(frozen=True)
class SmokeSizes:
    """The sizes a smoke run uses (everything else comes from the resolved config)."""

    steps: int
    n: int
    prompts: int
    mini_batches: int
    micro_per_mini: int
    max_prompt_length: int
    max_response_length: int
    actor_lr: float
    critic_lr: float
    critic_warmup: int
    loss_scale_factor: float | None
    shrunk: tuple[Shrunk, ...] = field(default=())

    @property
    def samples(self) -> int:
        return self.prompts * self.n

    @property
    def mini_batch_prompts(self) -> int:
        return self.prompts // self.mini_batches

    def table(self) -> str:
        """The shrunk keys as aligned text, printed at the start of a run."""
        return shrunk_table(self.shrunk, "smoke")

    def params(self) -> dict[str, str]:
        """MLflow params for the smoke sizes, under rlx's own namespace (verl's own keys keep the resolved values)."""
        return shrunk_params(self.shrunk)


def shrunk_table(shrunk: tuple[Shrunk, ...], label: str) -> str:
    """Shrunk keys as aligned text: key, resolved value, `label` value (both engines print it at the start)."""
    rows = [("key", "resolved", label)] + [(s.key, _fmt(s.resolved), _fmt(s.smoke)) for s in shrunk]
    w0, w1 = (max(len(r[i]) for r in rows) for i in range(2))
    return "\n".join(f"  {a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows)


def shrunk_params(shrunk: tuple[Shrunk, ...]) -> dict[str, str]:
    """MLflow params for shrunk keys, under `rlx/smoke/` (verl's own keys hold the values the run used)."""
    return {f"rlx/smoke/{s.key}": _fmt(s.smoke) for s in shrunk}


def _fmt(v: Any) -> str:
    return "null" if v is None else str(v)


def _int(v: Any, default: int) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def plan(get, *, max_prompt_length: int, max_response_length: int, steps: int | None) -> SmokeSizes:
    """Smoke sizes for a resolved config read through `get(dotted_path, default)`."""
    n_resolved = _int(get("actor_rollout_ref.rollout.n", 1), 1)
    n = max(1, min(n_resolved, MAX_GROUP))
    prompts = max(1, SAMPLES_PER_STEP // n)
    train_batch = _int(get("data.train_batch_size", 0), 0)
    mini = _int(get("actor_rollout_ref.actor.ppo_mini_batch_size", 0), 0)
    ratio = train_batch // mini if train_batch > 0 and mini > 0 else 1
    mini_batches = max(1, min(ratio, MAX_MINI_BATCHES, prompts))
    while prompts % mini_batches:  # equal mini-batches that hold whole groups
        mini_batches -= 1
    lsf = get("actor_rollout_ref.actor.loss_scale_factor", None)
    warmup = _int(get("trainer.critic_warmup", 0), 0)
    total_steps = int(steps) if steps else DEFAULT_STEPS
    mb_prompts = prompts // mini_batches
    micro = MICRO_PER_MINI if mb_prompts * n >= 2 * MICRO_PER_MINI else 1
    sizes: dict[str, Any] = dict(
        steps=total_steps,
        n=n,
        prompts=prompts,
        mini_batches=mini_batches,
        micro_per_mini=micro,
        max_prompt_length=max_prompt_length,
        max_response_length=max_response_length,
        actor_lr=ACTOR_LR,
        critic_lr=CRITIC_LR,
        critic_warmup=min(warmup, MAX_CRITIC_WARMUP) if warmup > 0 else 0,
        loss_scale_factor=float(max_response_length) if lsf is not None else None,
    )
    shrunk = [
        Shrunk(
            "actor_rollout_ref.model.path",
            get("actor_rollout_ref.model.path", None),
            "rlx-smoke-qwen2-tiny",
            "tiny random Qwen2 built in code",
        ),
        Shrunk("data.train_files", get("data.train_files", None), "<task parquet>", "synthetic task"),
        Shrunk("data.max_prompt_length", get("data.max_prompt_length", None), max_prompt_length, "task size"),
        Shrunk("data.max_response_length", get("data.max_response_length", None), max_response_length, "task size"),
        Shrunk("actor_rollout_ref.rollout.n", n_resolved, n, f"group size capped at {MAX_GROUP}"),
        Shrunk("data.train_batch_size", train_batch, prompts, f"{SAMPLES_PER_STEP} samples per step"),
        Shrunk(
            "actor_rollout_ref.actor.ppo_mini_batch_size", mini, mb_prompts, f"{mini_batches} mini-batches per step"
        ),
        Shrunk(
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
            get("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", None),
            mb_prompts * n // micro,
            f"{micro} micro-batches per mini-batch",
        ),
        Shrunk(
            "actor_rollout_ref.actor.optim.lr",
            get("actor_rollout_ref.actor.optim.lr", None),
            ACTOR_LR,
            "random init needs a large lr; no lr schedule",
        ),
        Shrunk("trainer.total_training_steps", get("trainer.total_training_steps", None), total_steps, "--steps"),
    ]
    if lsf is not None:
        shrunk.append(
            Shrunk(
                "actor_rollout_ref.actor.loss_scale_factor",
                lsf,
                sizes["loss_scale_factor"],
                "a length: the smoke max_response_length",
            )
        )
    if warmup > 0:
        shrunk.append(Shrunk("trainer.critic_warmup", warmup, sizes["critic_warmup"], "a short run"))
    return SmokeSizes(**sizes, shrunk=tuple(shrunk))


def critic_row(get) -> Shrunk:
    """The critic lr row, added when the run has a critic."""
    return Shrunk("critic.optim.lr", get("critic.optim.lr", None), CRITIC_LR, "a fresh value head must learn fast")
