"""RLX3xx: registered names (advantage estimators, policy losses, KL types, rollout engines), checked statically.

verl accepts `loss_mode=gspoo` at start-up and fails at the first training step (`get_policy_loss_fn` raises).
The registries are read from verl's source (`rlx.validate.verl_names`) plus rlx's plugin names, with a did-you-mean.
"""

from __future__ import annotations

from collections.abc import Iterator

from rlx import verl_keys as K
from rlx.errors import suggestion
from rlx.validate import verl_names
from rlx.validate.context import Context
from rlx.validate.rules import ERROR, Finding, declare, rule


def _unknown(ctx: Context, path: str, kind: str, what: str) -> Iterator[Finding]:
    name = ctx.value(path)
    names = verl_names.known(kind)
    if isinstance(name, str) and name not in names:
        yield ctx.finding(
            path,
            f"{what} '{name}' is not registered in verl {_version()} or by rlx's plugin: verl fails at the first "
            "training step",
            (suggestion(name, names) or "") + f" registered: {', '.join(names)}",
        )


def _version() -> str:
    from rlx import VERL_VERSION

    return VERL_VERSION


@rule(
    "RLX301",
    "unknown advantage estimator",
    ERROR,
    category="names",
    explanation="""
    algorithm.adv_estimator must name an estimator registered with verl's `register_adv_est` (gae, grpo, rloo, ...)
    or by rlx's plugin (rlx_*). verl only looks it up when computing the first advantages, after the rollout.""",
)
def adv_estimator(ctx: Context) -> Iterator[Finding]:
    yield from _unknown(ctx, K.ADV_ESTIMATOR, "adv_estimator", "advantage estimator")


@rule(
    "RLX302",
    "unknown policy loss",
    ERROR,
    category="names",
    explanation="""
    actor_rollout_ref.actor.policy_loss.loss_mode must name a loss registered with verl's `register_policy_loss`
    (vanilla, gspo, sapo, cispo, geo_mean, ...) or by rlx's plugin (rlx_*). verl's validation passes `gspoo`; the
    job fails at the first actor update.""",
)
def policy_loss(ctx: Context) -> Iterator[Finding]:
    yield from _unknown(ctx, K.LOSS_MODE, "policy_loss", "policy loss")


@rule(
    "RLX303",
    "unknown KL type",
    ERROR,
    category="names",
    explanation="""
    actor.kl_loss_type and algorithm.kl_penalty take kl|k1, abs, mse|k2, low_var_kl|k3 or full, optionally with a
    `+` suffix (straight-through k2 gradient). Anything else raises NotImplementedError in the first KL
    computation.""",
)
def kl_type(ctx: Context) -> Iterator[Finding]:
    paths = [(K.KL_LOSS_TYPE, ctx.flag(K.USE_KL_LOSS)), ("algorithm.kl_penalty", ctx.flag(K.USE_KL_IN_REWARD))]
    for path, used in paths:
        value = ctx.value(path)
        if not used or not isinstance(value, str):
            continue
        if value.removesuffix("+") not in verl_names.KL_TYPES:
            yield ctx.finding(
                path,
                f"{path}={value} is not a KL type verl implements",
                (suggestion(value, verl_names.KL_TYPES) or "") + " use low_var_kl (k3)",
            )


@rule(
    "RLX305",
    "unknown rollout engine",
    ERROR,
    category="names",
    explanation="""
    actor_rollout_ref.rollout.name selects the inference engine. verl 0.9.1 registers vllm, sglang and trtllm (the
    HuggingFace rollout was removed).""",
)
def rollout_name(ctx: Context) -> Iterator[Finding]:
    from rlx.validate.checks.schema import REMOVED_VALUES

    name = ctx.value(K.ROLLOUT_NAME)
    if (
        isinstance(name, str)
        and name != "???"
        and name not in verl_names.ROLLOUT_NAMES
        and name not in REMOVED_VALUES[K.ROLLOUT_NAME]
    ):
        yield ctx.finding(
            K.ROLLOUT_NAME,
            f"rollout engine '{name}' is not one of verl's",
            (suggestion(name, verl_names.ROLLOUT_NAMES) or "") + " use vllm, sglang or trtllm",
        )


NOT_LOADED = declare(
    "RLX304",
    "name missing from verl's registry after import (--deep)",
    ERROR,
    category="names",
    explanation="""With `--deep`, rlx imports verl (which loads plugins from the `verl.plugins` entry-point group,
    rlx's included) and looks the estimator and loss up in verl's real registries. verl swallows plugin import
    errors (logged at DEBUG only), so an rlx_* name that rlx knows but verl does not means the plugin failed to
    load in this environment.""",
)


@rule(
    "RLX306",
    "unknown reward manager",
    ERROR,
    category="names",
    explanation="""
    With reward.reward_manager.source=register (the default), reward.reward_manager.name must name a manager
    registered with verl's reward-loop `register` decorator (naive, dapo, gdpo, rate_limited, remote in verl 0.9.1,
    read from verl's source). verl looks the name up only when the reward loop starts, inside the job.""",
)
def reward_manager(ctx: Context) -> Iterator[Finding]:
    name = ctx.value(K.REWARD_MANAGER)
    if ctx.value("reward.reward_manager.source", "register") != "register" or not isinstance(name, str):
        return
    names = verl_names.verl_static_extras()["reward_manager"]
    if name not in names:
        yield ctx.finding(
            K.REWARD_MANAGER,
            f"reward manager '{name}' is not registered in verl {_version()}: the "
            "job fails when the reward loop starts",
            (suggestion(name, names) or "") + f" registered: {', '.join(names)}",
        )


@rule(
    "RLX307",
    "unknown critic loss_agg_mode",
    ERROR,
    category="names",
    explanation="""
    critic.loss_agg_mode takes the same modes as the actor's (token-mean, token-sum, seq-mean-token-sum,
    seq-mean-token-mean, seq-mean-token-sum-norm), but verl validates only the actor's: a bad critic mode passes
    start-up and fails at the first critic update. Checked when the critic is used.""",
)
def critic_loss_agg_mode(ctx: Context) -> Iterator[Finding]:
    from rlx.validate.checks.verl import LOSS_AGG_MODES

    mode = ctx.value("critic.loss_agg_mode")
    if not ctx.uses_critic or mode is None or mode in LOSS_AGG_MODES:
        return
    if mode == ctx.value(K.LOSS_AGG_MODE):
        return  # inherited from the actor (the default interpolation): RLX208 reports the actor's key
    yield ctx.finding(
        "critic.loss_agg_mode",
        f"critic.loss_agg_mode={mode} is not one of verl's modes: the first critic update fails",
        (suggestion(str(mode), LOSS_AGG_MODES) or "") + f" valid: {', '.join(LOSS_AGG_MODES)}",
    )


@rule(
    "RLX308",
    "group-relative estimator with a group of one",
    ERROR,
    category="names",
    explanation="""
    verl's estimators that take the prompt-group index (`index`, read from verl's source: grpo, rloo, opo, gpg,
    grpo_passk, reinforce_plus_plus_baseline, the optimal-token baselines, ...) compare each response with the
    other responses to its prompt. With rollout.n=1 every response is its own baseline, so every advantage is 0
    and nothing is learned. RLX401 says the same for algorithms whose registry entry carries the rule; this rule
    covers every other estimator verl registers.""",
)
def group_of_one(ctx: Context) -> Iterator[Finding]:
    est, n = ctx.value(K.ADV_ESTIMATOR), ctx.int(K.ROLLOUT_N)
    if n is None or n >= 2 or est not in verl_names.verl_static_extras()["group_relative"]:
        return
    if ctx.algorithms and all(any(c.code == "RLX401" for c in a.constraints) for a in ctx.algorithms):
        return  # the algorithm registry's RLX401 reports it
    yield ctx.finding(
        K.ROLLOUT_N,
        f"{est} is group-relative but rollout.n={n}: every advantage is zero and nothing is learned",
        f"set {K.ROLLOUT_N}=8",
    )
