"""The overrides that turn a resolved GPU config into a CPU rehearsal through verl's own launcher.

Two kinds, appended after the config's own overrides (Hydra keeps the last value; every one is written `++key=value`,
which sets a key whether or not verl's schema has it):

- **sizes** (`Shrunk` rows, printed at the start of the run and logged under `rlx/smoke/`): the model, the data
  unless the experiment brings its own parquet files, batch and group sizes, lengths, steps, learning rates. Every
  algorithm knob (estimator, loss mode and aggregation, clip ratios, KL, entropy, `algorithm.rlx.*`, ...) stays.
- **platform** (not shown as shrunk; each names the verl behaviour it answers): CPU device, rlx's CPU rollout, one
  worker per pool, sdpa attention, no checkpoints, no validation unless asked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlx.smoke.sizes import Shrunk, shrunk_params, shrunk_table

SAMPLES_PER_STEP = 128  # calibrated in verl-on-cpu.md section 10: 16 prompts x 8 moved the score in 30 steps
MAX_GROUP = 8
MAX_MINI_BATCHES = 4
ACTOR_LR = 2e-3  # verl-on-cpu.md section 10: lr 2e-3 moved the copy task from scratch; 4e-3 peaked then collapsed
CRITIC_LR = 1e-3
MAX_CRITIC_WARMUP = 1
DEFAULT_STEPS = 3
TASK_PROMPT_LENGTH = 8  # `123=` is 4 byte tokens; room for the user's own short prompts
USER_PROMPT_LENGTH = 64  # a user's own data: prompts truncated (left) to this many bytes
USER_RESPONSE_LENGTH = 16
A = "actor_rollout_ref.actor"
R = "actor_rollout_ref.rollout"


@dataclass(frozen=True)
class CpuPlan:
    """What a CPU run through verl sets: the shrunk sizes (shown) and every override (appended to the job)."""

    shrunk: tuple[Shrunk, ...]
    overrides: tuple[str, ...]
    own_data: bool
    steps: int

    def table(self) -> str:
        return shrunk_table(self.shrunk, "cpu")

    def params(self) -> dict[str, str]:
        return shrunk_params(self.shrunk)


def _int(v: Any, default: int) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _render(v: Any) -> str:
    from rlx.resolve.overrides import render_value

    return render_value(v)


def own_data_files(get) -> bool:
    """The experiment brings its own data: data.train_files names parquet files that exist here."""
    files = get("data.train_files", None)
    files = [files] if isinstance(files, str) else list(files or [])
    return bool(files) and all(isinstance(f, str) and Path(os.path.expanduser(f)).is_file() for f in files)


def plan(
    get,
    *,
    assets: dict[str, str],
    steps: int | None,
    seed: int = 0,
    task_response_length: int = 4,
    has_critic: bool = False,
) -> CpuPlan:
    """The CPU overrides for a resolved config read through `get(path, default)`.

    `assets` holds `model` (tiny checkpoint dir), `train`/`val` (task parquet), `reward` (reward file) and
    `checkpoints` (a scratch dir).
    """
    total = int(steps) if steps else DEFAULT_STEPS
    own = own_data_files(get)
    n_resolved = _int(get(f"{R}.n", 1), 1)
    n = max(1, min(n_resolved, MAX_GROUP))
    prompts = max(1, SAMPLES_PER_STEP // n)
    train_batch = _int(get("data.train_batch_size", 0), 0)
    mini = _int(get(f"{A}.ppo_mini_batch_size", 0), 0)
    ratio = train_batch // mini if train_batch > 0 and mini > 0 else 1
    mini_batches = max(1, min(ratio, MAX_MINI_BATCHES, prompts))
    while prompts % mini_batches:
        mini_batches -= 1
    mb_prompts = prompts // mini_batches
    micro = mb_prompts * n  # one micro-batch per mini-batch: per-call overhead dominates on CPU
    prompt_len = USER_PROMPT_LENGTH if own else TASK_PROMPT_LENGTH
    resp_len = USER_RESPONSE_LENGTH if own else task_response_length
    rows: list[tuple[str, Any, str]] = [
        ("actor_rollout_ref.model.path", assets["model"], "tiny random Qwen2 with a byte tokenizer, built locally"),
        ("data.max_prompt_length", prompt_len, "prompts truncated to this many tokens"),
        ("data.max_response_length", resp_len, "task size"),
        (f"{R}.n", n, f"group size capped at {MAX_GROUP}"),
        ("data.train_batch_size", prompts, f"{SAMPLES_PER_STEP} samples per step"),
        (f"{A}.ppo_mini_batch_size", mb_prompts, f"{mini_batches} mini-batches per step"),
        (f"{A}.ppo_micro_batch_size_per_gpu", micro, "one micro-batch per mini-batch"),
        (f"{A}.optim.lr", ACTOR_LR, "a random init needs a large lr"),
        ("trainer.total_training_steps", total, "--steps"),
    ]
    if not own:
        rows[1:1] = [
            ("data.train_files", assets["train"], "synthetic task (the experiment names no parquet file here)"),
            ("data.val_files", assets["val"], "synthetic task"),
            ("reward.custom_reward_function.path", assets["reward"], "the task's verifiable reward"),
        ]
    if get(f"{A}.loss_scale_factor", None) is not None:
        rows.append((f"{A}.loss_scale_factor", resp_len, "a length: the CPU max_response_length"))
    if has_critic:
        rows.append(("critic.optim.lr", CRITIC_LR, "a fresh value head must learn fast"))
        rows.append(("critic.ppo_micro_batch_size_per_gpu", micro, "one micro-batch per mini-batch"))
    if _int(get(f"{A}.optim.lr_warmup_steps", -1), -1) > 0:
        rows.append((f"{A}.optim.lr_warmup_steps", -1, "no warm-up in a run of a few steps"))
    warmup = _int(get("trainer.critic_warmup", 0), 0)
    if warmup > 0:
        rows.append(("trainer.critic_warmup", min(warmup, MAX_CRITIC_WARMUP), "a short run"))
    shrunk = tuple(Shrunk(k, get(k, None), v, why) for k, v, why in rows)
    platform: list[tuple[str, Any]] = [
        ("trainer.device", "cpu"),
        ("trainer.nnodes", 1),
        ("trainer.n_gpus_per_node", 1),  # one fake GPU on the embedded head, see rlx.verl_cpu.engine
        ("trainer.total_epochs", 1000),  # total_training_steps ends the run
        ("trainer.save_freq", -1),
        ("trainer.test_freq", -1),
        ("trainer.val_before_train", False),
        ("trainer.resume_mode", "disable"),
        ("trainer.default_local_dir", assets["checkpoints"]),
        ("data.truncation", "left"),
        ("data.filter_overlong_prompts", False),
        ("data.dataloader_num_workers", 0),
        ("data.seed", seed),
        (f"{R}.name", "rlx_cpu"),
        (f"{R}.mode", "async"),
        (f"{R}.tensor_model_parallel_size", 1),
        (f"{R}.data_parallel_size", 1),
        (f"{R}.pipeline_model_parallel_size", 1),
        (f"{R}.prompt_length", prompt_len),
        (f"{R}.response_length", resp_len),
        (f"{R}.calculate_log_probs", True),  # training/rollout_probs_diff_* proves the weight sync
        (f"{R}.agent.num_workers", 1),
        (f"{R}.log_prob_micro_batch_size_per_gpu", micro),
        ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", micro),
        ("actor_rollout_ref.model.use_remove_padding", False),  # needs flash-attn's varlen kernels
        ("actor_rollout_ref.model.enable_gradient_checkpointing", False),
        ("actor_rollout_ref.model.override_config.attn_implementation", "sdpa"),  # FlashAttention2 is CUDA only
        (f"{A}.strategy", "fsdp2"),  # FSDP1 asks for an accelerator device (torch/distributed/fsdp/_init_utils.py:374)
        ("actor_rollout_ref.ref.strategy", "fsdp2"),
        (f"{A}.fsdp_config.use_torch_compile", False),
        ("actor_rollout_ref.ref.fsdp_config.use_torch_compile", False),
        (f"{A}.fsdp_config.dtype", "float32"),
        ("actor_rollout_ref.ref.fsdp_config.dtype", "float32"),
        (f"{A}.optim.lr_warmup_steps_ratio", 0.0),
        ("reward.num_workers", 1),
        ("transfer_queue.backend.SimpleStorage.num_data_storage_units", 1),
    ]
    if has_critic:
        platform += [
            ("critic.model.path", assets["model"]),
            ("critic.strategy", "fsdp2"),
            ("critic.model.use_remove_padding", False),
            ("critic.model.enable_gradient_checkpointing", False),
            ("critic.fsdp.use_torch_compile", False),
            ("critic.fsdp.dtype", "float32"),
            ("critic.ppo_mini_batch_size", mb_prompts),
            ("critic.optim.lr_warmup_steps_ratio", 0.0),
        ]
    overrides = [f"++{s.key}={_render(s.smoke)}" for s in shrunk]
    overrides += [f"++{k}={_render(v)}" for k, v in platform]
    return CpuPlan(shrunk=shrunk, overrides=tuple(overrides), own_data=own, steps=total)
