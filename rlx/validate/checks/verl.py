"""RLX2xx: what verl's own `verl.utils.config.validate_config` enforces, reimplemented without importing verl.

verl runs these checks only inside the job, after `ray.init`, and stops at the first failure. rlx does the same
arithmetic statically and reports every failure with its config path. `tests/contract/test_validate_verl_parity.py`
proves that this module and verl's real function agree on the whole test corpus.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from rlx import verl_keys as K
from rlx.validate.context import Context
from rlx.validate.rules import ERROR, Finding, declare, rule

LOSS_AGG_MODES = ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
VLLM_MAX_LORA_RANK = 512  # verl.workers.rollout.vllm_rollout.utils.get_vllm_max_lora_rank's fallback table


def _dynamic(ctx: Context) -> bool:
    return ctx.flag(f"{K.ACTOR}.use_dynamic_bsz")


def _micro_sections(ctx: Context) -> list[tuple[str, str, str]]:
    """(section, deprecated key, per-GPU key) for each micro-batch pair verl checks in this config."""
    out = []
    if not _dynamic(ctx):
        out.append((K.ACTOR, "ppo_micro_batch_size", "ppo_micro_batch_size_per_gpu"))
        if ctx.uses_ref:
            out.append((K.REF, "log_prob_micro_batch_size", "log_prob_micro_batch_size_per_gpu"))
        out.append((K.ROLLOUT, "log_prob_micro_batch_size", "log_prob_micro_batch_size_per_gpu"))
    if ctx.uses_critic and not ctx.flag("critic.use_dynamic_bsz"):
        out.append(("critic", "ppo_micro_batch_size", "ppo_micro_batch_size_per_gpu"))
    return out


@rule(
    "RLX201",
    "rollout batch not divisible across GPUs",
    ERROR,
    category="verl",
    explanation="""
    verl asserts that data.train_batch_size * rollout.n is divisible by the minimal batch: the total GPU count
    (trainer.n_gpus_per_node * trainer.nnodes), or for Megatron the data-parallel size times the micro batch.
    Skipped with use_dynamic_bsz, as verl does.""",
)
def batch_divisible(ctx: Context) -> Iterator[Finding]:
    if _dynamic(ctx) or not ctx.n_gpus:
        return
    train, n = ctx.int(K.TRAIN_BATCH), ctx.int(K.ROLLOUT_N)
    if train is None or n is None:
        return
    minimal, what = ctx.n_gpus, f"the GPU count ({ctx.n_gpus})"
    if ctx.value(f"{K.ACTOR}.strategy") == "megatron":
        mp = _megatron_size(ctx)
        micro = ctx.int(K.PPO_MICRO_BATCH_PER_GPU)
        if mp is None or micro is None or ctx.n_gpus % mp:
            return  # RLX202 reports the parallel layout
        minimal, what = ctx.n_gpus // mp * micro, f"data-parallel size x micro batch ({minimal})"
    if minimal and (train * n) % minimal:
        # The nearest larger train batch that divides: a multiple of minimal / gcd(n, minimal).
        step = minimal // math.gcd(n, minimal)
        yield ctx.finding(
            K.TRAIN_BATCH,
            f"data.train_batch_size * rollout.n = {train} * {n} = {train * n} is not divisible by {what}",
            f"make data.train_batch_size * actor_rollout_ref.rollout.n a multiple of {minimal}: e.g. set "
            f"{K.TRAIN_BATCH}={-(-train // step) * step}",
        )


def _megatron_size(ctx: Context) -> int | None:
    m = f"{K.ACTOR}.megatron"
    tp, pp, cp = (
        ctx.int(f"{m}.{k}")
        for k in ("tensor_model_parallel_size", "pipeline_model_parallel_size", "context_parallel_size")
    )
    return tp * pp * cp if tp is not None and pp is not None and cp is not None else None


@rule(
    "RLX202",
    "Megatron parallel sizes do not divide the GPUs",
    ERROR,
    category="verl",
    explanation="""
    With actor.strategy=megatron, verl asserts that the GPU count is divisible by tensor x pipeline x context
    parallel size.""",
)
def megatron_layout(ctx: Context) -> Iterator[Finding]:
    if _dynamic(ctx) or ctx.value(f"{K.ACTOR}.strategy") != "megatron" or not ctx.n_gpus:
        return
    size = _megatron_size(ctx)
    if size and ctx.n_gpus % size:
        yield ctx.finding(
            f"{K.ACTOR}.megatron.tensor_model_parallel_size",
            f"{ctx.n_gpus} GPUs are not divisible by tensor x pipeline x context parallel size ({size})",
            "choose parallel sizes whose product divides trainer.n_gpus_per_node * trainer.nnodes",
        )


@rule(
    "RLX203",
    "micro batch size not set",
    ERROR,
    category="verl",
    explanation="""
    Without use_dynamic_bsz, verl needs a micro batch size for the actor update, the rollout's and the reference's
    log-prob passes, and the critic. All of them default to null, so verl's own example scripts always set them;
    `rlx` presets set them in `_base.yaml`.""",
)
def micro_unset(ctx: Context) -> Iterator[Finding]:
    for section, old, new in _micro_sections(ctx):
        if ctx.value(f"{section}.{old}") is None and ctx.value(f"{section}.{new}") is None:
            yield ctx.finding(
                f"{section}.{new}",
                f"neither {section}.{new} nor {section}.{old} is set",
                f"set {section}.{new}=4 (as memory allows); or set "
                f"{'critic' if section == 'critic' else K.ACTOR}.use_dynamic_bsz=true",
            )


@rule(
    "RLX204",
    "micro batch size set twice",
    ERROR,
    category="verl",
    explanation="""
    verl refuses a section where both the deprecated global micro batch size and the `_per_gpu` one are set. For the
    critic, `ppo_micro_batch_size_per_gpu` defaults to `${.ppo_micro_batch_size}`, so setting only the deprecated
    key sets both.""",
)
def micro_twice(ctx: Context) -> Iterator[Finding]:
    for section, old, new in _micro_sections(ctx):
        if ctx.value(f"{section}.{old}") is not None and ctx.value(f"{section}.{new}") is not None:
            yield ctx.finding(
                f"{section}.{old}",
                f"both {section}.{old} and {section}.{new} are set",
                f"remove {section}.{old} (deprecated); keep {section}.{new}",
            )


def _update_sections(ctx: Context) -> list[str]:
    out = [] if _dynamic(ctx) else [K.ACTOR]
    if ctx.uses_critic and not ctx.flag("critic.use_dynamic_bsz"):
        out.append("critic")
    return out


@rule(
    "RLX205",
    "mini batch larger than the train batch",
    ERROR,
    category="verl",
    explanation="""
    verl raises when data.train_batch_size < ppo_mini_batch_size, for the actor and for the critic: a step would not
    fill one mini-batch.""",
)
def mini_le_train(ctx: Context) -> Iterator[Finding]:
    train = ctx.int(K.TRAIN_BATCH)
    for section in _update_sections(ctx):
        mini = ctx.int(f"{section}.ppo_mini_batch_size")
        if train is not None and mini is not None and train < mini:
            yield ctx.finding(
                f"{section}.ppo_mini_batch_size",
                f"{section}.ppo_mini_batch_size={mini} is larger than data.train_batch_size={train}",
                f"set {section}.ppo_mini_batch_size to at most {train} (e.g. {max(train // 4, 1)})",
            )


@rule(
    "RLX206",
    "mini batch not divisible by the micro batch",
    ERROR,
    category="verl",
    explanation="""
    When the deprecated global ppo_micro_batch_size is set, verl requires ppo_mini_batch_size to be a multiple of
    it, for the actor and the critic.""",
)
def mini_divisible(ctx: Context) -> Iterator[Finding]:
    for section in _update_sections(ctx):
        mini, micro = ctx.int(f"{section}.ppo_mini_batch_size"), ctx.int(f"{section}.ppo_micro_batch_size")
        if mini is not None and micro and mini % micro:
            yield ctx.finding(
                f"{section}.ppo_micro_batch_size",
                f"{section}.ppo_mini_batch_size={mini} is not divisible by ppo_micro_batch_size={micro}",
                f"use {section}.ppo_micro_batch_size_per_gpu instead",
            )


@rule(
    "RLX207",
    "global micro batch smaller than the GPU count",
    ERROR,
    category="verl",
    explanation="""
    With the deprecated global ppo_micro_batch_size, verl requires micro batch x Ulysses sequence-parallel size >=
    the number of GPUs, so every GPU gets a sample.""",
)
def micro_covers_gpus(ctx: Context) -> Iterator[Finding]:
    if not ctx.n_gpus:
        return
    for section in _update_sections(ctx):
        micro = ctx.int(f"{section}.ppo_micro_batch_size")
        sp = ctx.int(f"{section}.ulysses_sequence_parallel_size") or 1
        if micro is not None and micro * sp < ctx.n_gpus:
            yield ctx.finding(
                f"{section}.ppo_micro_batch_size",
                f"{section}.ppo_micro_batch_size={micro} x sequence parallel {sp} is below the {ctx.n_gpus} GPUs",
                f"use {section}.ppo_micro_batch_size_per_gpu instead",
            )


@rule(
    "RLX208",
    "unknown loss_agg_mode",
    ERROR,
    category="verl",
    explanation="""
    ActorConfig accepts only token-mean, token-sum, seq-mean-token-sum, seq-mean-token-mean and
    seq-mean-token-sum-norm (`ValueError: Invalid loss_agg_mode`).""",
)
def loss_agg_mode(ctx: Context) -> Iterator[Finding]:
    from rlx.errors import suggestion

    mode = ctx.value(K.LOSS_AGG_MODE)
    if mode not in LOSS_AGG_MODES:
        yield ctx.finding(
            K.LOSS_AGG_MODE,
            f"loss_agg_mode={mode} is not one of verl's modes",
            (suggestion(str(mode), LOSS_AGG_MODES) or "") + f" valid: {', '.join(LOSS_AGG_MODES)}",
        )


@rule(
    "RLX211",
    "sequence parallelism without remove-padding",
    ERROR,
    category="verl",
    explanation="""
    FSDP actors with ulysses_sequence_parallel_size > 1 require actor_rollout_ref.model.use_remove_padding=true.""",
)
def sp_needs_rmpad(ctx: Context) -> Iterator[Finding]:
    if _dynamic(ctx):
        return
    sp = ctx.int(f"{K.ACTOR}.ulysses_sequence_parallel_size")
    if sp and sp > 1 and not ctx.value("actor_rollout_ref.model.use_remove_padding", False):
        yield ctx.finding(
            "actor_rollout_ref.model.use_remove_padding",
            f"ulysses_sequence_parallel_size={sp} needs use_remove_padding=true",
            "set actor_rollout_ref.model.use_remove_padding=true",
        )


@rule(
    "RLX212",
    "router replay R2 with bypass mode",
    ERROR,
    category="verl",
    explanation="""
    router_replay.mode=R2 records routes while recomputing old log-probs, but rollout_correction.bypass_mode skips
    that forward pass; verl refuses the combination.""",
)
def router_replay(ctx: Context) -> Iterator[Finding]:
    engine = "megatron" if ctx.value(f"{K.ACTOR}.strategy") == "megatron" else "fsdp_config"
    mode = ctx.value(f"{K.ACTOR}.{engine}.router_replay.mode")
    if mode == "R2" and ctx.flag("algorithm.rollout_correction.bypass_mode"):
        yield ctx.finding(
            "algorithm.rollout_correction.bypass_mode",
            "router_replay.mode=R2 with bypass_mode=true",
            "set algorithm.rollout_correction.bypass_mode=false",
        )


@rule(
    "RLX213",
    "sampled validation at temperature <= 0",
    ERROR,
    category="verl",
    explanation="""
    With rollout.val_kwargs.do_sample=true, verl asserts rollout.temperature > 0.""",
)
def val_temperature(ctx: Context) -> Iterator[Finding]:
    t = ctx.num(K.TEMPERATURE)
    if ctx.flag(f"{K.ROLLOUT}.val_kwargs.do_sample") and t is not None and t <= 0:
        yield ctx.finding(
            K.TEMPERATURE,
            f"val_kwargs.do_sample=true with rollout.temperature={t}",
            f"set {K.TEMPERATURE}=1.0 or {K.ROLLOUT}.val_kwargs.do_sample=false",
        )


@rule(
    "RLX215",
    "LoRA rank too large for vLLM",
    ERROR,
    category="verl",
    explanation="""
    For a vLLM rollout verl maps the LoRA rank to vLLM's allowed max_lora_rank values (up to 512) and raises above
    that.""",
)
def lora_rank(ctx: Context) -> Iterator[Finding]:
    m = "actor_rollout_ref.model"
    rank = ctx.int(f"{m}.lora.rank") or 0
    path = f"{m}.lora.rank"
    if rank <= 0:
        rank, path = ctx.int(f"{m}.lora_rank") or 0, f"{m}.lora_rank"
    if ctx.flag(f"{m}.lora.merge"):
        rank = 0
    if rank > VLLM_MAX_LORA_RANK and ctx.value(K.ROLLOUT_NAME) == "vllm":
        yield ctx.finding(
            path,
            f"LoRA rank {rank} exceeds vLLM's maximum of {VLLM_MAX_LORA_RANK}",
            f"use a rank <= {VLLM_MAX_LORA_RANK} (vLLM allows 1, 8, 16, 32, 64, 128, 256, 320, 512)",
        )


VERL_RAISED = declare(
    "RLX290",
    "verl's validate_config raised (--deep)",
    ERROR,
    category="verl",
    explanation="""With `--deep`, rlx imports verl and runs its real `verl.utils.config.validate_config` on the
    resolved config. Anything it raises that rlx's static rules did not already explain is reported here. verl's
    critic check loads the critic model's tokenizer, so a model path absent on this machine is skipped (static, not
    local).""",
)
