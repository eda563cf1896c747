"""RLX4xx: algorithm constraints, run from the algorithm registry, plus inert loss-specific keys.

The constraints themselves are data in `rlx/algorithms/catalog.py`. Which algorithms apply: the one named by
`--algo`/the preset; in `--verl` mode (no preset) the algorithms whose `adv_estimator` and `loss_mode` match the
config. When several match (GRPO, Dr.GRPO and DAPO all use grpo + vanilla) only the rules all of them share run,
so a plain GRPO script is not judged against DAPO's paper settings.
"""

from __future__ import annotations

from collections.abc import Iterator

from rlx import verl_keys as K
from rlx.algorithms.registry import Algorithm
from rlx.render import fmt_value
from rlx.validate.context import Context
from rlx.validate.rules import ERROR, Finding, rule


def infer_algorithms(get) -> list[Algorithm]:
    """The registered algorithms a plain verl config is an instance of, best match first (no names hard-coded)."""
    from rlx.algorithms import ALGORITHMS

    adv, loss = get(K.ADV_ESTIMATOR), get(K.LOSS_MODE)
    for match in (
        lambda a: a.adv_estimator == adv and a.loss_mode == loss,
        lambda a: a.adv_estimator == adv,
        lambda a: a.loss_mode == loss and loss != "vanilla",
    ):
        found = [a for a in ALGORITHMS if a.inferable and match(a)]
        if found:
            return found
    return []


def constraint_findings(ctx: Context) -> Iterator[Finding]:
    """Every registry constraint that holds for this config, with `{value}` filled in and the rule's code."""
    if not ctx.algorithms:
        return
    shared = set.intersection(*({c.code for c in a.constraints} for a in ctx.algorithms))
    seen: set[tuple[str, str]] = set()
    for algo in ctx.algorithms:
        for c in algo.constraints:
            if c.code not in shared or (c.code, c.path) in seen:
                continue
            seen.add((c.code, c.path))
            if not c.when(ctx.get):
                continue
            value = fmt_value(ctx.value(c.path))
            hint = c.hint_for(ctx.get).format(value=value)
            yield Finding(c.path, c.message.format(value=value), hint, severity=c.severity, code=c.code)


@rule(
    "RLX406",
    "clip_ratio set alone",
    ERROR,
    category="algorithm",
    explanation="""
    verl's losses clip with clip_ratio_low and clip_ratio_high whenever they are not null, and both default to 0.2.
    Setting only actor.clip_ratio (as older scripts do) therefore changes nothing: the run clips at 0.2/0.2. The
    user's intent is lost, so this is an error. clip_cov reads clip_ratio itself and is exempt.""",
)
def clip_ratio_alone(ctx: Context) -> Iterator[Finding]:
    v = ctx.num(K.CLIP_RATIO)
    if not ctx.user_set(K.CLIP_RATIO) or v is None or v == ctx.defaults.get(K.CLIP_RATIO):
        return
    if ctx.value(K.LOSS_MODE) == "clip_cov":
        return
    low, high = ctx.value(K.CLIP_LOW), ctx.value(K.CLIP_HIGH)
    if low is not None and high is not None and (low != v or high != v):
        yield ctx.finding(
            K.CLIP_RATIO,
            f"clip_ratio={fmt_value(v)} has no effect: the loss clips with clip_ratio_low={fmt_value(low)} and "
            f"clip_ratio_high={fmt_value(high)}",
            f"set actor_rollout_ref.actor.clip_ratio_low={fmt_value(v)} actor_rollout_ref.actor.clip_ratio_high="
            f"{fmt_value(v)} (or set them to null)",
        )


# Keys only one policy loss reads.
LOSS_ONLY_KEYS = {
    K.TAU_POS: "sapo",
    K.TAU_NEG: "sapo",
    f"{K.ACTOR}.policy_loss.clip_cov_ratio": "clip_cov",
    f"{K.ACTOR}.policy_loss.clip_cov_lb": "clip_cov",
    f"{K.ACTOR}.policy_loss.clip_cov_ub": "clip_cov",
    f"{K.ACTOR}.policy_loss.kl_cov_ratio": "kl_cov",
    f"{K.ACTOR}.policy_loss.ppo_kl_coef": "kl_cov",
    f"{K.ACTOR}.policy_loss.dro_beta": "dro",
}


@rule(
    "RLX407",
    "setting unused by the chosen loss",
    ERROR,
    category="algorithm",
    explanation="""
    Some actor settings are read by one policy loss only: tau_pos/tau_neg by sapo, clip_cov_* by clip_cov,
    kl_cov_ratio and ppo_kl_coef by kl_cov, dro_beta by dro. Set with another loss_mode they are silently ignored,
    which usually means the loss_mode was forgotten.""",
)
def loss_only_keys(ctx: Context) -> Iterator[Finding]:
    loss = ctx.value(K.LOSS_MODE)
    for path, owner in LOSS_ONLY_KEYS.items():
        if loss == owner or not ctx.user_set(path) or ctx.value(path) == ctx.defaults.get(path):
            continue
        yield ctx.finding(
            path,
            f"{path.rpartition('.')[2]}={fmt_value(ctx.value(path))} is only read by the "
            f"{owner} loss, but loss_mode={loss}: it is ignored",
            f"set {K.LOSS_MODE}={owner}, or remove {path}",
        )
