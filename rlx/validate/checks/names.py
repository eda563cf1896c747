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


@rule("RLX301", "unknown advantage estimator", ERROR, category="names", explanation="""
    algorithm.adv_estimator must name an estimator registered with verl's `register_adv_est` (gae, grpo, rloo, ...)
    or by rlx's plugin (rlx_*). verl only looks it up when computing the first advantages, after the rollout.""")
def adv_estimator(ctx: Context) -> Iterator[Finding]:
    yield from _unknown(ctx, K.ADV_ESTIMATOR, "adv_estimator", "advantage estimator")


@rule("RLX302", "unknown policy loss", ERROR, category="names", explanation="""
    actor_rollout_ref.actor.policy_loss.loss_mode must name a loss registered with verl's `register_policy_loss`
    (vanilla, gspo, sapo, cispo, geo_mean, ...) or by rlx's plugin (rlx_*). verl's validation passes `gspoo`; the
    job fails at the first actor update.""")
def policy_loss(ctx: Context) -> Iterator[Finding]:
    yield from _unknown(ctx, K.LOSS_MODE, "policy_loss", "policy loss")


@rule("RLX303", "unknown KL type", ERROR, category="names", explanation="""
    actor.kl_loss_type and algorithm.kl_penalty take kl|k1, abs, mse|k2, low_var_kl|k3 or full, optionally with a
    `+` suffix (straight-through k2 gradient). Anything else raises NotImplementedError in the first KL
    computation.""")
def kl_type(ctx: Context) -> Iterator[Finding]:
    paths = [(K.KL_LOSS_TYPE, ctx.flag(K.USE_KL_LOSS)), ("algorithm.kl_penalty", ctx.flag(K.USE_KL_IN_REWARD))]
    for path, used in paths:
        value = ctx.value(path)
        if not used or not isinstance(value, str):
            continue
        if value.removesuffix("+") not in verl_names.KL_TYPES:
            yield ctx.finding(path, f"{path}={value} is not a KL type verl implements",
                              (suggestion(value, verl_names.KL_TYPES) or "") + " use low_var_kl (k3)")


@rule("RLX305", "unknown rollout engine", ERROR, category="names", explanation="""
    actor_rollout_ref.rollout.name selects the inference engine. verl 0.9.1 registers vllm, sglang and trtllm (the
    HuggingFace rollout was removed).""")
def rollout_name(ctx: Context) -> Iterator[Finding]:
    from rlx.validate.checks.schema import REMOVED_VALUES

    name = ctx.value(K.ROLLOUT_NAME)
    if (isinstance(name, str) and name != "???" and name not in verl_names.ROLLOUT_NAMES
            and name not in REMOVED_VALUES[K.ROLLOUT_NAME]):
        yield ctx.finding(K.ROLLOUT_NAME, f"rollout engine '{name}' is not one of verl's",
                          (suggestion(name, verl_names.ROLLOUT_NAMES) or "") + " use vllm, sglang or trtllm")


NOT_LOADED = declare(
    "RLX304", "name missing from verl's registry after import (--deep)", ERROR, category="names",
    explanation="""With `--deep`, rlx imports verl (which loads plugins from the `verl.plugins` entry-point group,
    rlx's included) and looks the estimator and loss up in verl's real registries. verl swallows plugin import
    errors (logged at DEBUG only), so an rlx_* name that rlx knows but verl does not means the plugin failed to
    load in this environment.""",
)
