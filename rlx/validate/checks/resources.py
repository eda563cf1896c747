"""RLX5xx: resources the config asks for, checked statically.

Static, not local: GPU counts and model paths describe the cluster, not this machine, so `n_gpus_per_node=8` on a
laptop is fine. What is checked is internal consistency: a positive GPU count, rollout parallelism that fits a node,
and sequence lengths that fit the engine's context.
"""

from __future__ import annotations

from collections.abc import Iterator

from rlx import verl_keys as K
from rlx.validate.context import Context
from rlx.validate.rules import ERROR, Finding, rule

R = K.ROLLOUT


@rule(
    "RLX501",
    "no GPUs asked for",
    ERROR,
    category="resources",
    explanation="""
    trainer.n_gpus_per_node x trainer.nnodes is the number of GPUs the job asks Ray for. Zero or a negative count
    cannot place a single worker (verl fails with `Total available GPUs ... is less than total desired GPUs`).""",
)
def total_gpus(ctx: Context) -> Iterator[Finding]:
    per, nodes = ctx.int(K.GPUS_PER_NODE), ctx.int(K.NNODES)
    if per is not None and per < 1:
        yield ctx.finding(
            K.GPUS_PER_NODE,
            f"trainer.n_gpus_per_node={per}: the job asks for no GPUs",
            "set trainer.n_gpus_per_node to the GPUs per node of the cluster, e.g. 8",
        )
    if nodes is not None and nodes < 1:
        yield ctx.finding(K.NNODES, f"trainer.nnodes={nodes}: the job asks for no nodes", "set trainer.nnodes=1")


@rule(
    "RLX502",
    "rollout parallelism does not fit a node",
    ERROR,
    category="resources",
    explanation="""
    Each rollout replica uses tensor x data x pipeline parallel GPUs. verl places replicas on the GPUs of the
    trainer's nodes: a replica must divide the GPUs of one node, or (multi-node tensor parallelism) span whole nodes
    and divide the total GPU count.""",
)
def rollout_layout(ctx: Context) -> Iterator[Finding]:
    per = ctx.int(K.GPUS_PER_NODE)
    tp = ctx.int(f"{R}.tensor_model_parallel_size")
    dp = ctx.int(f"{R}.data_parallel_size") or 1
    pp = ctx.int(f"{R}.pipeline_model_parallel_size") or 1
    if not per or per < 1 or not tp or tp < 1:
        return
    size = tp * dp * pp
    n_gpus = ctx.n_gpus or per
    fits = per % size == 0 if size <= per else size % per == 0 and n_gpus % size == 0
    if not fits:
        path = f"{R}.tensor_model_parallel_size"
        yield ctx.finding(
            path,
            f"a rollout replica needs tensor x data x pipeline = {tp} x {dp} x {pp} = {size} GPUs, which neither "
            f"divides the {per} GPUs per node nor spans whole nodes",
            f"set {path} to a divisor of trainer.n_gpus_per_node ({', '.join(str(d) for d in _divisors(per))})",
        )


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@rule(
    "RLX503",
    "prompt + response longer than the engine's context",
    ERROR,
    category="resources",
    explanation="""
    The rollout engine must hold max_prompt_length + max_response_length tokens. When rollout.max_model_len is set
    below that, vLLM truncates or rejects long prompts at run time.""",
)
def context_length(ctx: Context) -> Iterator[Finding]:
    prompt, resp, limit = ctx.int(K.MAX_PROMPT_LEN), ctx.int(K.MAX_RESPONSE_LEN), ctx.int(f"{R}.max_model_len")
    if prompt is None or resp is None or limit is None:
        return
    if prompt + resp > limit:
        yield ctx.finding(
            f"{R}.max_model_len",
            f"max_prompt_length + max_response_length = {prompt} + {resp} = {prompt + resp} exceeds "
            f"rollout.max_model_len={limit}",
            f"set {R}.max_model_len to at least {prompt + resp} (or null to use the model's own limit)",
        )


@rule(
    "RLX504",
    "dynamic batch token budget below one sequence",
    ERROR,
    category="resources",
    explanation="""
    With use_dynamic_bsz, micro-batches are packed up to ppo_max_token_len_per_gpu tokens; verl asserts that one
    full sequence (prompt + response) fits (`max_token_len must be greater than the sequence length`).""",
)
def dynamic_budget(ctx: Context) -> Iterator[Finding]:
    prompt, resp = ctx.int(K.MAX_PROMPT_LEN), ctx.int(K.MAX_RESPONSE_LEN)
    if prompt is None or resp is None:
        return
    pairs = [
        (K.USE_DYNAMIC_BSZ, f"{K.ACTOR}.ppo_max_token_len_per_gpu"),
        (f"{R}.log_prob_use_dynamic_bsz", f"{R}.log_prob_max_token_len_per_gpu"),
    ]
    if ctx.uses_critic:
        pairs.append(("critic.use_dynamic_bsz", "critic.ppo_max_token_len_per_gpu"))
    for flag, path in pairs:
        budget = ctx.int(path)
        if ctx.flag(flag) and budget is not None and budget < prompt + resp:
            yield ctx.finding(
                path,
                f"{path}={budget} is below one full sequence ({prompt} + {resp} = {prompt + resp} tokens)",
                f"set {path} to at least {prompt + resp} (typically 2-3x that)",
            )


def _dynamic_sections(ctx: Context) -> list[str]:
    out = [K.ACTOR] if ctx.flag(K.USE_DYNAMIC_BSZ) else []
    if ctx.uses_critic and ctx.flag("critic.use_dynamic_bsz"):
        out.append("critic")
    return out


@rule(
    "RLX505",
    "mini batch larger than the train batch (dynamic batch size)",
    ERROR,
    category="resources",
    explanation="""
    verl skips its batch checks when use_dynamic_bsz=true, but the update still splits data.train_batch_size
    prompts into mini-batches of ppo_mini_batch_size: a mini-batch larger than the train batch never fills, so the
    configured number of updates per step is not what runs (RLX205 without dynamic batch size).""",
)
def dynamic_mini_le_train(ctx: Context) -> Iterator[Finding]:
    train = ctx.int(K.TRAIN_BATCH)
    for section in _dynamic_sections(ctx):
        mini = ctx.int(f"{section}.ppo_mini_batch_size")
        if train is not None and mini is not None and train < mini:
            yield ctx.finding(
                f"{section}.ppo_mini_batch_size",
                f"{section}.ppo_mini_batch_size={mini} is larger than data.train_batch_size={train}",
                f"set {section}.ppo_mini_batch_size={train}",
            )


@rule(
    "RLX506",
    "rollout batch not divisible across GPUs (dynamic batch size)",
    ERROR,
    category="resources",
    explanation="""
    The trainer splits data.train_batch_size * rollout.n responses evenly across the data-parallel workers
    (trainer.n_gpus_per_node * trainer.nnodes), also under use_dynamic_bsz=true, where verl skips the assertion:
    a remainder fails the split at the first step (RLX201 without dynamic batch size).""",
)
def dynamic_batch_divisible(ctx: Context) -> Iterator[Finding]:
    import math

    if not _dynamic_sections(ctx) or not ctx.n_gpus:
        return
    train, n = ctx.int(K.TRAIN_BATCH), ctx.int(K.ROLLOUT_N)
    workers, what = ctx.n_gpus, "the GPU count"
    if ctx.value(f"{K.ACTOR}.strategy") == "megatron":
        from rlx.validate.checks.verl import _megatron_size

        mp = _megatron_size(ctx)
        if not mp or ctx.n_gpus % mp:
            return  # RLX202 reports the parallel layout
        workers, what = ctx.n_gpus // mp, "the data-parallel size"
    if train is None or n is None or (train * n) % workers == 0:
        return
    step = workers // math.gcd(n, workers)
    yield ctx.finding(
        K.TRAIN_BATCH,
        f"data.train_batch_size * rollout.n = {train} * {n} = {train * n} is not divisible by {what} ({workers})",
        f"set {K.TRAIN_BATCH}={-(-train // step) * step}",
    )
