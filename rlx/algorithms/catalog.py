"""Every algorithm rlx knows, declared once. Values and rules come from each paper (cited by its arXiv id)
and verl 0.9.1's source; `python -m rlx.docgen` renders them as docs/algorithms.md.

Rule codes RLX4xx are algorithm constraints. A code names one rule; several algorithms may share it (for example the
group-size rules), each with its own threshold or wording.
"""

from __future__ import annotations

from rlx import verl_keys as K
from rlx.algorithms.registry import (
    MISSING_VALUE,
    Algorithm,
    AlgorithmRegistry,
    Constraint,
    Family,
    Getter,
    Severity,
    Status,
    custom,
    eq,
    gt,
    gt_path,
    is_false,
    is_null,
    is_true,
    le_path,
    lt,
    ne,
    one_of,
    outside_open,
)

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
SMTM, TM, SMTSN = "seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"
ASPO_KEY = f"{K.RLX_ALGO}.aspo"
AEPO_KEY = f"{K.RLX_ALGO}.aepo"
VAPO_KEY = f"{K.RLX_ALGO}.vapo"
GAD_KEY = f"{K.RLX_ALGO}.gad"


def _unset(g, path: str) -> bool:
    v = g(path)
    return v is None or v is MISSING_VALUE


def _micro_fixes(g, sections: list[tuple[str, str, str]]) -> list[str]:
    """`section.per_gpu_key=4` for each micro batch pair verl will require and neither key sets (RLX203)."""
    return [f"{s}.{new}=4" for s, old, new in sections if _unset(g, f"{s}.{old}") and _unset(g, f"{s}.{new}")]


def _critic_hint(g) -> str:
    # Turning the critic on makes verl require its micro batch size: propose both, so the fix is complete.
    fixes = [f"{K.CRITIC_ENABLE}=true"]
    if g("critic.use_dynamic_bsz") is not True:
        fixes += _micro_fixes(g, [("critic", "ppo_micro_batch_size", "ppo_micro_batch_size_per_gpu")])
    return "set " + " ".join(fixes) + ", with critic.model.path naming the value model's initial weights"


def _static_bsz_hint(g) -> str:
    # Without dynamic batch size verl requires the micro batch sizes, which dynamic-bsz configs often leave null.
    sections = [
        (K.ACTOR, "ppo_micro_batch_size", "ppo_micro_batch_size_per_gpu"),
        (K.ROLLOUT, "log_prob_micro_batch_size", "log_prob_micro_batch_size_per_gpu"),
    ]
    if g(K.USE_KL_LOSS) is True or g(K.USE_KL_IN_REWARD) is True:
        sections.append((K.REF, "log_prob_micro_batch_size", "log_prob_micro_batch_size_per_gpu"))
    return "set " + " ".join([f"{K.USE_DYNAMIC_BSZ}=false", *_micro_fixes(g, sections)])


def _number(v) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None


def _overlong_len_hint(g) -> str:
    m = _number(g(K.MAX_RESP_LEN_KW))
    if m is None or m < 2:
        return f"set {K.OVERLONG_LEN} to about a fifth of {K.MAX_RESP_LEN_KW} (DAPO: 4096 of 20480)"
    return f"set {K.OVERLONG_LEN}={m // 5} (a fifth of max_resp_len={m}, as DAPO's 4096 of 20480)"


def _max_resp_len_hint(g) -> str:
    r = _number(g(K.MAX_RESPONSE_LEN))
    if r is None:
        return f"set {K.MAX_RESP_LEN_KW} to the value of {K.MAX_RESPONSE_LEN}"
    fixes = [f"{K.MAX_RESP_LEN_KW}={r}"]
    buffer = g(K.OVERLONG_LEN)
    if isinstance(buffer, (int, float)) and not isinstance(buffer, bool) and buffer >= r:
        # A buffer as long as the response would penalise every response (expected length <= 0): shrink it too.
        fixes.append(f"{K.OVERLONG_LEN}={max(r // 5, 1)}")
    return "set " + " ".join(fixes) + " (the penalty then reaches -1 where generation is truncated)"


def _critic_off(g) -> bool:
    enable = g(K.CRITIC_ENABLE)
    if enable is None or enable is MISSING_VALUE:  # verl: null means "on only for gae"
        return g(K.ADV_ESTIMATOR) != "gae"
    return enable is False


def _critic_on(g) -> bool:
    return not _critic_off(g)


# ---- rules shared by several algorithms -------------------------------------------------------------------------

KL_TWICE = Constraint(
    "RLX403",
    W,
    K.USE_KL_IN_REWARD,
    is_true(K.USE_KL_LOSS) & is_true(K.USE_KL_IN_REWARD),
    title="KL applied twice",
    message="KL is applied twice: in the loss (actor.use_kl_loss) and in the reward (algorithm.use_kl_in_reward)",
    hint="keep one: set algorithm.use_kl_in_reward=false (GRPO-style) or actor_rollout_ref.actor.use_kl_loss=false",
    explanation="verl adds a KL penalty to the reward when use_kl_in_reward is on, and a KL term to the loss when "
    "use_kl_loss is on. Both together penalise the same divergence twice (verl#265).",
)
FILTER_N = Constraint(
    "RLX441",
    E,
    K.ROLLOUT_N,
    is_true(K.FILTER_GROUPS) & lt(K.ROLLOUT_N, 2),
    title="group filtering needs groups",
    message="algorithm.filter_groups is on with rollout.n={value}: a group of one always has equal rewards, so every "
    "group is filtered out",
    hint="set actor_rollout_ref.rollout.n=16 (DAPO) or algorithm.filter_groups.enable=false",
    explanation="DAPO's dynamic sampling keeps a group only if 0 < #correct < n. With n < 2 no group qualifies.",
)
FILTER_V0 = Constraint(
    "RLX445",
    E,
    K.FILTER_GROUPS,
    is_true(K.FILTER_GROUPS) & eq(K.USE_V1, False),
    title="group filtering needs the v1 trainer",
    message="algorithm.filter_groups is on but trainer.use_v1=false: verl's legacy trainer has no group filtering",
    hint="set trainer.use_v1=true",
    explanation="In verl 0.9.1 only the v1 trainer's ReplayBuffer implements filter_groups.",
)
REMAX_V1 = Constraint(
    "RLX446",
    E,
    K.USE_V1,
    eq(K.ADV_ESTIMATOR, "remax") & ne(K.USE_V1, False),
    title="ReMax needs the legacy trainer",
    message="algorithm.adv_estimator=remax with trainer.use_v1=true: verl's v1 trainer never computes the greedy "
    "baseline ReMax subtracts, so the first advantage step fails with a TypeError (missing reward_baselines)",
    hint="set trainer.use_v1=false",
    explanation="ReMax's baseline is the reward of a greedy rollout of each prompt. In verl 0.9.1 only the legacy "
    "trainer generates it (trainer/ppo/ray_trainer.py:1520-1535 sets batch['reward_baselines']); the v1 trainer's "
    "_compute_advantage (trainer/ppo/v1/trainer_base.py:1743) fetches no such field, and compute_advantage "
    "(ray_trainer.py:258) passes reward_baselines only when present, so compute_remax_outcome_advantage "
    "(core_algos.py:735) is called without its required argument.",
)
COMMON = (KL_TWICE, FILTER_N, FILTER_V0, REMAX_V1)


def _group_size(name: str, recommended: int = 4) -> tuple[Constraint, ...]:
    return (
        Constraint(
            "RLX401",
            E,
            K.ROLLOUT_N,
            lt(K.ROLLOUT_N, 2),
            title="group-relative method with a group of one",
            message=f"{name} is group-relative but rollout.n={{value}}: every advantage is zero and nothing is learned",
            hint=f"set actor_rollout_ref.rollout.n={max(recommended, 8)}",
            explanation="Group-relative estimators subtract the mean reward of the prompt's group. With one sample "
            "per prompt the sample is its own baseline, so every advantage is 0 and training is a silent no-op "
            "(OpenRLHF and prime-rl call this out; verl does not check it).",
        ),
        Constraint(
            "RLX402",
            E,
            K.ROLLOUT_N,
            lt(K.ROLLOUT_N, recommended) & ~lt(K.ROLLOUT_N, 2),
            title="group too small for a useful baseline",
            message=f"{name} needs rollout.n >= {recommended}; rollout.n={{value}} gives a baseline too noisy to learn from",
            hint=f"set actor_rollout_ref.rollout.n={max(recommended, 8)}",
            explanation="With 2 or 3 samples per prompt most groups have equal rewards (zero advantage) and the "
            "group standard deviation is a poor estimate. Group-relative methods are run with n >= 4 in practice.",
        ),
        Constraint(
            "RLX405",
            W,
            K.CRITIC_ENABLE,
            custom("critic.enable is true", lambda g: g(K.CRITIC_ENABLE) is True),
            title="critic enabled for a critic-free method",
            message=f"critic.enable=true, but {name} does not use a critic: it is trained and never read",
            hint="set critic.enable=false (or null) to save the critic's GPUs",
            explanation="Group-relative estimators take their baseline from the group; a critic only costs memory.",
        ),
    )


def _agg(name: str, expected: str, severity: Severity = W, why: str = "") -> Constraint:
    return Constraint(
        "RLX404",
        severity,
        K.LOSS_AGG_MODE,
        ne(K.LOSS_AGG_MODE, expected),
        title="loss aggregation does not match the algorithm",
        message=f"{name} aggregates the loss with {expected}, but loss_agg_mode={{value}}"
        + (f" ({why})" if why else ""),
        hint=f"set actor_rollout_ref.actor.loss_agg_mode={expected}",
        explanation="loss_agg_mode decides how token losses become a batch loss. token-mean weights long responses "
        "more; seq-mean-token-mean weights each response equally; seq-mean-token-sum-norm divides by a constant. "
        "The papers differ, and verl's default (token-mean) matches only some of them.",
    )


def _needs_critic(name: str) -> Constraint:
    return Constraint(
        "RLX410",
        E,
        K.CRITIC_ENABLE,
        custom("the critic is disabled", _critic_off),
        title="critic-based method without a critic",
        message=f"{name} needs a value model, but the critic is disabled (critic.enable={{value}})",
        hint=_critic_hint,
        explanation="GAE advantages need V(s). verl enables the critic automatically only for adv_estimator=gae.",
    )


REGISTRY = AlgorithmRegistry()
register = REGISTRY.register

# ---- verl built-ins ---------------------------------------------------------------------------------------------

register(
    Algorithm(
        "ppo",
        "PPO",
        "PPO with a learned critic and GAE advantages",
        "1707.06347",
        Family.CRITIC,
        Status.READY,
        clip_level="token",
        adv_estimator="gae",
        loss_mode="vanilla",
        aliases=("gae",),
        constraints=(_needs_critic("PPO"), *COMMON),
    )
)
register(
    Algorithm(
        "grpo",
        "GRPO",
        "critic-free PPO: the baseline is the group's mean reward, scaled by its std",
        "2402.03300",
        Family.GROUP,
        Status.READY,
        clip_level="token",
        adv_estimator="grpo",
        loss_mode="vanilla",
        constraints=(*_group_size("GRPO"), *COMMON),
    )
)
register(
    Algorithm(
        "drgrpo",
        "Dr.GRPO",
        "GRPO without length and std normalisation: an unbiased policy gradient",
        "2503.20783",
        Family.GROUP,
        Status.READY,
        clip_level="token",
        adv_estimator="grpo",
        loss_mode="vanilla",
        aliases=("dr_grpo", "dr.grpo"),
        constraints=(
            *_group_size("Dr.GRPO"),
            Constraint(
                "RLX430",
                E,
                K.ADV_ESTIMATOR,
                one_of(K.ADV_ESTIMATOR, ("grpo_vectorized", "gdpo")) & eq(K.NORM_ADV_BY_STD, False),
                title="std normalisation flag ignored by the estimator",
                message="adv_estimator={value} ignores algorithm.norm_adv_by_std_in_grpo=false and still divides by the "
                "group std, so this is not Dr.GRPO",
                hint="set algorithm.adv_estimator=grpo (the only estimator that honours the flag)",
                explanation="verl's generic estimator call path never passes norm_adv_by_std_in_grpo; only `grpo` is "
                "called with it.",
            ),
            Constraint(
                "RLX431",
                E,
                K.LOSS_SCALE_FACTOR,
                eq(K.LOSS_AGG_MODE, SMTSN) & is_null(K.LOSS_SCALE_FACTOR),
                title="seq-mean-token-sum-norm without a constant",
                message="loss_agg_mode=seq-mean-token-sum-norm with loss_scale_factor=null divides by the padded width of "
                "each micro-batch, which changes every step",
                hint="set actor_rollout_ref.actor.loss_scale_factor to data.max_response_length",
                explanation="Dr.GRPO divides the summed token loss by a constant C, the maximum generation length.",
            ),
            Constraint(
                "RLX432",
                W,
                K.LOSS_SCALE_FACTOR,
                eq(K.LOSS_AGG_MODE, SMTSN)
                & custom(
                    f"{K.LOSS_SCALE_FACTOR} != {K.MAX_RESPONSE_LEN}",
                    lambda g: (
                        g(K.LOSS_SCALE_FACTOR) is not None
                        and g(K.MAX_RESPONSE_LEN) is not None
                        and float(g(K.LOSS_SCALE_FACTOR)) != float(g(K.MAX_RESPONSE_LEN))
                    ),
                ),
                title="Dr.GRPO constant differs from the generation limit",
                message="loss_scale_factor={value} differs from data.max_response_length, so the constant C is not "
                "the maximum generation length",
                hint="set actor_rollout_ref.actor.loss_scale_factor=${{data.max_response_length}} (the preset's default)",
                explanation="The paper's C is the maximum generation length; the preset ties the two by interpolation, "
                "so this fires only when a user sets the factor apart by hand.",
            ),
            _agg("Dr.GRPO", SMTSN, why="otherwise it is only GRPO without std"),
            *COMMON,
        ),
    )
)
register(
    Algorithm(
        "dapo",
        "DAPO",
        "GRPO for long CoT: clip-higher, dynamic sampling, token-level loss, overlong shaping",
        "2503.14476",
        Family.GROUP,
        Status.READY,
        clip_level="token",
        adv_estimator="grpo",
        loss_mode="vanilla",
        constraints=(
            *_group_size("DAPO"),
            Constraint(
                "RLX440",
                E,
                K.OVERLONG_LEN,
                is_true(K.OVERLONG_ENABLE)
                & custom(
                    f"{K.OVERLONG_LEN} <= 0 or >= {K.MAX_RESP_LEN_KW}",
                    lambda g: not 0 < float(g(K.OVERLONG_LEN)) < float(g(K.MAX_RESP_LEN_KW)),
                ),
                title="overlong buffer outside the response length",
                message="the DAPO overlong buffer ({value} tokens) must be positive and shorter than "
                "reward.reward_kwargs.max_resp_len",
                hint=_overlong_len_hint,
                explanation="The soft overlong penalty ramps from 0 at max_resp_len - len to -1 at max_resp_len; verl "
                "asserts 0 < len <= max_resp_len at run time. len = max_resp_len passes verl's assertion but puts the "
                "expected length at 0, so every response is penalised: rlx asks for len < max_resp_len.",
            ),
            Constraint(
                "RLX442",
                W,
                K.MAX_RESP_LEN_KW,
                is_true(K.OVERLONG_ENABLE)
                & custom(
                    f"{K.MAX_RESP_LEN_KW} != {K.MAX_RESPONSE_LEN}",
                    lambda g: g(K.MAX_RESP_LEN_KW) != g(K.MAX_RESPONSE_LEN),
                ),
                title="overlong penalty length differs from the generation limit",
                message="reward.reward_kwargs.max_resp_len={value} differs from data.max_response_length",
                hint=_max_resp_len_hint,
                explanation="The penalty is meant to reach -1 exactly where generation is truncated.",
            ),
            Constraint(
                "RLX443",
                W,
                K.CLIP_HIGH,
                le_path(K.CLIP_HIGH, K.CLIP_LOW),
                title="clip-higher is not higher",
                message="DAPO's clip-higher needs clip_ratio_high > clip_ratio_low, but clip_ratio_high={value}",
                hint="set actor_rollout_ref.actor.clip_ratio_high=0.28 (paper section 3.1)",
                explanation="Decoupled clipping lets low-probability tokens grow, which keeps entropy from collapsing.",
            ),
            Constraint(
                "RLX444",
                W,
                K.FILTER_METRIC,
                is_true(K.FILTER_GROUPS) & eq(K.FILTER_METRIC, "reward") & is_true(K.OVERLONG_ENABLE),
                title="group filtering on shaped rewards",
                message="filter_groups.metric=reward with the overlong penalty on: length penalties make all-correct "
                "groups look non-degenerate",
                hint="set algorithm.filter_groups.metric=acc",
                explanation="Filter on accuracy, which the dapo reward manager reports as `acc`.",
            ),
            _agg("DAPO", TM, why="paper section 3.3: token-level policy gradient loss"),
            *COMMON,
        ),
    )
)
register(
    Algorithm(
        "gspo",
        "GSPO",
        "sequence-level importance ratio, clipping and optimisation",
        "2507.18071",
        Family.GROUP,
        Status.READY,
        clip_level="sequence",
        adv_estimator="grpo",
        loss_mode="gspo",
        constraints=(
            *_group_size("GSPO"),
            Constraint(
                "RLX420",
                W,
                K.CLIP_HIGH,
                gt(K.CLIP_LOW, 1e-2) | gt(K.CLIP_HIGH, 1e-2),
                title="token-scale clip ratio on a sequence ratio",
                message="GSPO clips a sequence-level ratio whose log is ~1e-3; a clip ratio above 1e-2 (token scale, "
                "like PPO's 0.2) almost never clips",
                hint="set actor_rollout_ref.actor.clip_ratio_low=3e-4 actor_rollout_ref.actor.clip_ratio_high=4e-4 "
                "(paper v2 section 5.1)",
                explanation="GSPO's ratio is the geometric mean of token ratios. The paper uses 3e-4/4e-4; ranges of "
                "0.2 copied from token-level PPO are three orders of magnitude too wide (TRL#3834).",
            ),
            Constraint(
                "RLX421",
                W,
                K.PPO_MINI_BATCH,
                custom(
                    "one mini-batch and ppo_epochs == 1",
                    lambda g: int(g(K.PPO_MINI_BATCH)) >= int(g(K.TRAIN_BATCH)) and int(g(K.PPO_EPOCHS)) == 1,
                ),
                title="clipping is inert with one update per rollout",
                message="one mini-batch per step and ppo_epochs=1: the ratio is exactly 1, so GSPO's clipping never acts",
                hint="set actor_rollout_ref.actor.ppo_mini_batch_size to data.train_batch_size/4 (paper: 4 mini-batches)",
                explanation="The policy only moves away from the rollout policy after the first update of a step.",
            ),
            _agg("GSPO", SMTM, why="the paper averages over sequences"),
            *COMMON,
        ),
    )
)
register(
    Algorithm(
        "gmpo",
        "GMPO",
        "geometric-mean policy optimisation: robust to outlier token ratios",
        "2507.20673",
        Family.GROUP,
        Status.READY,
        adv_estimator="grpo",
        loss_mode="geo_mean",
        constraints=(
            *_group_size("GMPO"),
            Constraint(
                "RLX450",
                W,
                K.USE_DYNAMIC_BSZ,
                is_true(K.USE_DYNAMIC_BSZ),
                title="geo_mean with dynamic batch size",
                message="verl's geo_mean loss averages per micro-batch, so use_dynamic_bsz=true scales gradients by a "
                "varying micro-batch count",
                hint=_static_bsz_hint,
                explanation="geo_mean returns torch.mean over the micro-batch without global_batch_info.",
            ),
            Constraint(
                "RLX451",
                W,
                K.CLIP_HIGH,
                gt(K.CLIP_HIGH, 1.0) | gt(K.CLIP_LOW, 1.0),
                title="log-space clip wider than e",
                message="GMPO clips in log space; clip_ratio_high={value} allows ratios beyond e",
                hint="use 0.4 (the paper's (e^-0.4, e^0.4))",
                explanation="GMPO's clip range is applied to log ratios.",
            ),
            *COMMON,
        ),
    )
)
register(
    Algorithm(
        "cispo",
        "CISPO",
        "clip the importance weight, not the update: every token keeps its gradient",
        "2506.13585",
        Family.GROUP,
        Status.READY,
        adv_estimator="grpo",
        loss_mode="cispo",
        constraints=(
            *_group_size("CISPO"),
            Constraint(
                "RLX460",
                W,
                K.CLIP_LOW,
                lt(K.CLIP_LOW, 1.0),
                title="CISPO lower bound active",
                message="CISPO is published without a lower bound, but clip_ratio_low={value} truncates weights below "
                "1 - clip_ratio_low",
                hint="set actor_rollout_ref.actor.clip_ratio_low=1.0 (lower bound 0, i.e. off)",
                explanation="MiniMax-M1 sets a large epsilon_low so the IS weight is only capped from above.",
            ),
            Constraint(
                "RLX461",
                W,
                K.CLIP_HIGH,
                ~gt(K.CLIP_HIGH, 0.2),
                title="CISPO weight cap at PPO's default",
                message="clip_ratio_high={value} caps the IS weight at 1.2: heavily truncated, not CISPO as published",
                hint="set actor_rollout_ref.actor.clip_ratio_high=4.0 (weight cap 5.0, ScaleRL/TRL)",
                explanation="CISPO's upper cap is tuned, typically a weight cap of about 5.",
            ),
            _agg("CISPO", TM),
            *COMMON,
        ),
    )
)
register(
    Algorithm(
        "sapo",
        "SAPO",
        "a smooth temperature-controlled gate instead of the hard clip",
        "2511.20347",
        Family.GROUP,
        Status.READY,
        adv_estimator="grpo",
        loss_mode="sapo",
        constraints=(
            *_group_size("SAPO"),
            Constraint(
                "RLX470",
                E,
                K.TAU_POS,
                custom(
                    f"{K.TAU_POS} <= 0 or {K.TAU_NEG} <= 0",
                    lambda g: float(g(K.TAU_POS)) <= 0 or float(g(K.TAU_NEG)) <= 0,
                ),
                title="SAPO temperature not positive",
                message="SAPO's gate needs positive temperatures (tau_pos={value})",
                hint="set actor_rollout_ref.actor.tau_pos=1.0 actor_rollout_ref.actor.tau_neg=1.05",
                explanation="The gate is (4/tau) * sigmoid(tau * (ratio - 1)); tau <= 0 flips or divides by zero.",
            ),
            Constraint(
                "RLX471",
                W,
                K.TAU_NEG,
                gt_path(K.TAU_POS, K.TAU_NEG),
                title="negative updates gated less than positive ones",
                message="tau_neg={value} < tau_pos: SAPO damps negative-advantage updates more, not less",
                hint="set actor_rollout_ref.actor.tau_neg=1.05 with tau_pos=1.0",
                explanation="The paper's asymmetric temperatures make the gate for A < 0 steeper.",
            ),
            Constraint(
                "RLX472",
                INFO,
                K.LOSS_AGG_MODE,
                ne(K.LOSS_AGG_MODE, SMTM),
                title="loss_agg_mode ignored by sapo",
                message="verl's sapo loss always aggregates with seq-mean-token-mean; loss_agg_mode={value} is ignored",
                hint="set actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean to say what happens",
                explanation="verl 0.9.1 forces seq-mean-token-mean inside compute_policy_loss_sapo.",
            ),
            *COMMON,
        ),
    )
)
register(
    Algorithm(
        "rloo",
        "RLOO",
        "REINFORCE with a leave-one-out baseline over the group",
        "2402.14740",
        Family.GROUP,
        Status.READY,
        clip_level="token",
        adv_estimator="rloo",
        loss_mode="vanilla",
        constraints=(*_group_size("RLOO"), *COMMON),
    )
)
register(
    Algorithm(
        "reinforce_pp",
        "REINFORCE++",
        "REINFORCE with a batch-normalised baseline and token-level KL",
        "2501.03262",
        Family.SINGLE,
        Status.READY,
        clip_level="token",
        adv_estimator="reinforce_plus_plus",
        loss_mode="vanilla",
        aliases=("reinforce++", "reinforce_plus_plus"),
        constraints=COMMON,
    )
)
register(
    Algorithm(
        "remax",
        "ReMax",
        "REINFORCE with the greedy rollout's reward as the baseline",
        "2310.10505",
        Family.SINGLE,
        Status.READY,
        clip_level="token",
        adv_estimator="remax",
        loss_mode="vanilla",
        constraints=COMMON,
    )
)

# ---- implemented by rlx as verl plugins: each spec's verl_module registers its plugin_names ------------------

register(
    Algorithm(
        "aepo",
        "AEPO",
        "Agentic Entropy-Balanced PO: entropy-balanced clipping and entropy-weighted advantages",
        "2510.14545",
        Family.GROUP,
        Status.READY,
        clip_level="token",
        options={"alpha": 0.2, "sg_scope": "high_entropy", "weight_floor": 0.0, "stats_scope": "batch"},
        adv_estimator="grpo",
        loss_mode="rlx_aepo",
        needs_rlx_entrypoint=True,
        plugin_names={"policy_loss": "rlx_aepo"},
        verl_module="rlx.verl_algos.aepo",
        constraints=(
            *_group_size("AEPO"),
            Constraint(
                "RLX485",
                W,
                f"{AEPO_KEY}.alpha",
                gt(f"{AEPO_KEY}.alpha", 0.5),
                title="AEPO entropy weight too large",
                message="aepo.alpha={value}: 1 + alpha * normalised entropy turns negative for low-entropy tokens",
                hint="use alpha <= 0.5 (paper: 0.2)",
                explanation="Entropy is standardised per batch, so values below -1/alpha flip the advantage's sign.",
            ),
            Constraint(
                "RLX486",
                W,
                K.ENTROPY_COEFF,
                gt(K.ENTROPY_COEFF, 0),
                title="double entropy pressure",
                message="entropy_coeff={value} adds an entropy bonus on top of AEPO's entropy-weighted advantages",
                hint="set actor_rollout_ref.actor.entropy_coeff=0",
                explanation="AEPO already up-weights high-entropy tokens.",
            ),
            Constraint(
                "RLX487",
                W,
                f"{AEPO_KEY}.sg_scope",
                eq(f"{AEPO_KEY}.sg_scope", "low_entropy"),
                title="AEPO ARLArena-compatible scope",
                message="aepo.sg_scope=low_entropy preserves gradients for low-entropy tokens: the inverse of the paper",
                hint="use aepo.sg_scope=high_entropy (paper) or all (reference code)",
                explanation="sg_scope=high_entropy is the paper's text, all the ARPO reference code, low_entropy ARLArena's "
                "behaviour (rlx/ops/aepo.py).",
            ),
            *COMMON,
        ),
    )
)
register(
    Algorithm(
        "aspo",
        "ASPO",
        "advantage shaping that rewards earlier code invocation in correct responses",
        "2508.19201",
        Family.GROUP,
        Status.READY,
        clip_level="token",
        options={
            "base": "grpo",
            "delta": -2.0,
            "k": 0.7,
            "require_code_pass": False,
            "code_detection": {"messages": True, "markdown_fences": True, "html_tags": True, "tool_json": True},
        },
        adv_estimator="rlx_aspo",
        loss_mode="vanilla",
        needs_rlx_entrypoint=True,
        plugin_names={"adv_estimator": "rlx_aspo"},
        verl_module="rlx.verl_algos.aspo",
        constraints=(
            *_group_size("ASPO"),
            Constraint(
                "RLX480",
                E,
                f"{ASPO_KEY}.k",
                outside_open(f"{ASPO_KEY}.k", 0, 1),
                title="ASPO clip factor outside (0, 1)",
                message="aspo.k={value}: the bias is clipped to k*|A|, so k >= 1 can cancel or flip the correctness sign",
                hint="set algorithm.rlx.aspo.k=0.7 (conservative) or 0.9 (aggressive)",
                explanation="ASPO keeps correctness dominant by bounding the shaping term below |A|.",
            ),
            Constraint(
                "RLX481",
                E,
                f"{ASPO_KEY}.delta",
                eq(f"{ASPO_KEY}.delta", 0) | eq(f"{ASPO_KEY}.delta", 0.0),
                title="ASPO with delta = 0",
                message="aspo.delta=0 makes ASPO a no-op",
                hint="set algorithm.rlx.aspo.delta=-2.0",
                explanation="delta scales the position bias; negative values reward earlier code.",
            ),
            Constraint(
                "RLX482",
                W,
                f"{ASPO_KEY}.delta",
                gt(f"{ASPO_KEY}.delta", 0),
                title="ASPO rewards later code",
                message="aspo.delta={value} > 0 rewards calling code later",
                hint="use a negative delta (-2.0) to encourage early code invocation",
                explanation="b_i = delta * (p_i - mean p) / mean L; with delta > 0 later positions get a positive bias.",
            ),
            *COMMON,
        ),
    )
)
register(
    Algorithm(
        "gepo",
        "GEPO",
        "group-expectation importance weights for stale, heterogeneous rollouts",
        "2508.17850",
        Family.GROUP,
        Status.READY,
        options={"log_w_max": 10.0},
        adv_estimator="grpo",
        loss_mode="rlx_gepo",
        needs_rlx_entrypoint=True,
        plugin_names={"policy_loss": "rlx_gepo"},
        verl_module="rlx.verl_algos.gepo",
        constraints=(
            *_group_size("GEPO"),
            Constraint(
                "RLX490",
                W,
                K.ROLLOUT_N,
                lt(K.ROLLOUT_N, 8) & ~lt(K.ROLLOUT_N, 4),
                title="GEPO group expectation from few samples",
                message="GEPO estimates E_q[q] from the group; rollout.n={value} is below the paper's 8",
                hint="set actor_rollout_ref.rollout.n=8",
                explanation="The denominator is a group average; small groups make it noisy.",
            ),
            Constraint(
                "RLX491",
                W,
                K.CLIP_HIGH,
                lt(K.CLIP_HIGH, 0.05) | lt(K.CLIP_LOW, 0.05),
                title="GSPO-size clip on GEPO weights",
                message="GEPO weights are O(1) away from 1 even on-policy; clip_ratio_high={value} freezes learning",
                hint="use 0.2 on both sides (paper)",
                explanation="w_i = q_i / E_q[q] differs from 1 on-policy, unlike GSPO's ratio.",
            ),
            _agg("GEPO", SMTM, why="the paper averages per sequence"),
            *COMMON,
        ),
    )
)
register(
    Algorithm(
        "vapo",
        "VAPO",
        "value-model PPO for long CoT: length-adaptive GAE, clip-higher, positive-example NLL",
        "2504.05118",
        Family.CRITIC,
        Status.READY,
        clip_level="token",
        options={"alpha": 0.05, "lambda_critic": 1.0, "nll_coef": 0.1},
        adv_estimator="rlx_vapo",
        loss_mode="vanilla",
        needs_rlx_entrypoint=True,
        plugin_names={"adv_estimator": "rlx_vapo"},
        verl_module="rlx.verl_algos.vapo",
        nll_option="nll_coef",
        constraints=(
            _needs_critic("VAPO"),
            Constraint(
                "RLX495",
                E,
                f"{VAPO_KEY}.alpha",
                ~gt(f"{VAPO_KEY}.alpha", 0),
                title="VAPO length-adaptive alpha not positive",
                message="vapo.alpha={value}: lambda = 1 - 1/(alpha*|y|) needs alpha > 0",
                hint="set algorithm.rlx.vapo.alpha=0.05 (paper)",
                explanation="alpha controls how fast the policy's GAE lambda approaches 1 with response length.",
            ),
            Constraint(
                "RLX496",
                W,
                K.CRITIC_WARMUP,
                eq(K.CRITIC_WARMUP, 0),
                title="no value warm-up",
                message="trainer.critic_warmup=0: the actor trains on an untrained value model",
                hint="set trainer.critic_warmup=50 (paper)",
                explanation="VAPO pre-trains the value model so early advantages are not biased.",
            ),
            Constraint(
                "RLX497",
                W,
                f"{VAPO_KEY}.lambda_critic",
                ne(f"{VAPO_KEY}.lambda_critic", 1.0),
                title="critic lambda is not 1",
                message="vapo.lambda_critic={value}: VAPO trains the value model on Monte-Carlo returns (lambda 1)",
                hint="set algorithm.rlx.vapo.lambda_critic=1.0",
                explanation="Decoupled GAE: lambda_critic = 1 gives unbiased value targets.",
            ),
            Constraint(
                "RLX498",
                W,
                K.CRITIC_LR,
                custom(f"{K.CRITIC_LR} < {K.ACTOR_LR}", lambda g: float(g(K.CRITIC_LR)) < float(g(K.ACTOR_LR))),
                title="critic learns slower than the actor",
                message="critic.optim.lr={value} is below the actor's learning rate",
                hint="set critic.optim.lr=2e-6 with actor lr 1e-6 (paper)",
                explanation="The value model must track the policy; VAPO uses twice the actor's learning rate.",
            ),
            Constraint(
                "RLX499",
                E,
                K.SHUFFLE,
                is_true(K.SHUFFLE) & gt(f"{VAPO_KEY}.nll_coef", 0),
                title="VAPO NLL term with a shuffled actor batch",
                message="actor.shuffle=true: rlx cannot know which update mini-batch a sample trains in, so it cannot "
                "normalise VAPO's positive-example NLL by that mini-batch's correct-token count",
                hint="set actor_rollout_ref.actor.shuffle=false (verl's default)",
                explanation="The NLL term is -sum over correct tokens / the number of correct tokens in the same update "
                "mini-batch; the trainer computes that count once per mini-batch from verl's unshuffled split.",
            ),
            _agg("VAPO", TM),
            *COMMON,
        ),
    )
)

RC = "algorithm.rollout_correction"


def _rc_threshold_upper(g: Getter) -> float:
    """The TIS upper bound verl reads from rollout_is_threshold: a float, or the upper half of "lower_upper"."""
    v = g(f"{RC}.rollout_is_threshold")
    return float(str(v).split("_")[-1])


register(
    Algorithm(
        "gspo-decoupled",
        "GSPO (AReaL decoupled)",
        "AReaL's GSPO: decoupled loss vs a recomputed proximal policy, behaviour weight capped at 5 "
        "(verl caps per token; AReaL drops the token)",
        "2507.18071",
        Family.GROUP,
        Status.READY,
        clip_level="sequence",
        adv_estimator="grpo",
        loss_mode="gspo",
        inferable=False,  # a plain verl GSPO config is GSPO; decoupled rules apply only when asked for by name
        constraints=(
            *_group_size("GSPO"),
            Constraint(
                "RLX475",
                E,
                f"{RC}.bypass_mode",
                is_true(f"{RC}.bypass_mode"),
                title="bypass mode never recomputes the proximal policy",
                message="rollout_correction.bypass_mode=true reuses the rollout log-probs as old_log_prob: the proximal "
                "policy is never recomputed and the decoupled loss collapses to two policies",
                hint="set algorithm.rollout_correction.bypass_mode=false",
                explanation="verl ray_trainer/trainer_base: bypass mode sets old_log_probs = rollout_log_probs and skips "
                "compute_rollout_correction_and_add_to_batch, so no behaviour weight is applied.",
            ),
            Constraint(
                "RLX476",
                E,
                f"{RC}.rollout_is_threshold",
                custom(f"{RC}.rollout_is_threshold upper bound <= 1", lambda g: _rc_threshold_upper(g) <= 1.0),
                title="behaviour-weight cap at or below 1",
                message="rollout_is_threshold={value}: a cap <= 1 truncates every token the rollout under-sampled, "
                "biasing the loss instead of correcting it",
                hint="set algorithm.rollout_correction.rollout_is_threshold=5.0 (AReaL behav_imp_weight_cap)",
                explanation="Truncated IS caps w = pi_prox / pi_behav; the cap must exceed 1 (AReaL: 5.0).",
            ),
            Constraint(
                "RLX477",
                E,
                f"{RC}.rollout_is",
                is_null(f"{RC}.rollout_is") | is_false("actor_rollout_ref.rollout.calculate_log_probs"),
                title="decoupled loss without a behaviour weight",
                message="rollout_correction.rollout_is={value} or rollout.calculate_log_probs=false: verl computes no "
                "behaviour importance weight, so the loss is plain GSPO",
                hint="set algorithm.rollout_correction.rollout_is=token actor_rollout_ref.rollout.calculate_log_probs=true",
                explanation="verl only applies rollout correction when rollout_log_probs are in the batch and "
                "rollout_is is set (trainer_base.py compute_rollout_correction_and_add_to_batch).",
            ),
            _agg("GSPO", SMTM, why="the paper averages over sequences"),
            *COMMON,
        ),
    )
)


RM_ENABLE = "reward.reward_model.enable"
CUSTOM_RM_PATH = "reward.custom_reward_function.path"


def _teacher_key_missing(g: Getter) -> bool:
    v = g(f"{GAD_KEY}.teacher_key")
    return v is None or v is MISSING_VALUE or not str(v).strip()


def _gad_critic_hint(g: Getter) -> str:
    fixes = [f"{K.CRITIC_ENABLE}=true"]
    if g("critic.use_dynamic_bsz") is not True:
        fixes += _micro_fixes(g, [("critic", "ppo_micro_batch_size", "ppo_micro_batch_size_per_gpu")])
    return (
        "set " + " ".join(fixes) + ", with critic.model.path naming the student's weights (D starts from the student)"
    )


def _other_reward_active(g: Getter) -> bool:
    return g(RM_ENABLE) is True or not _unset(g, CUSTOM_RM_PATH)


def _other_reward_hint(g: Getter) -> str:
    fixes = []
    if g(RM_ENABLE) is True:
        fixes.append(f"{RM_ENABLE}=false")
    if not _unset(g, CUSTOM_RM_PATH):
        fixes.append(f"{CUSTOM_RM_PATH}=null")
    return "set " + " ".join(fixes) + " (the discriminator is GAD's only reward)"


register(
    Algorithm(
        "gad",
        "GAD",
        "black-box on-policy distillation: a discriminator trained to rank teacher text above student text is the "
        "student's reward",
        "2511.10643",
        Family.GROUP,
        Status.READY,
        clip_level="sequence",
        adv_estimator="grpo",
        loss_mode="gspo",
        needs_rlx_entrypoint=True,
        teacher_option="teacher_key",
        inferable=False,  # a GSPO config with a critic is not GAD unless asked for by name (teacher data needed)
        constraints=(
            *_group_size("GAD", 8)[:2],  # RLX405 (critic on a critic-free method) does not apply: D is the critic
            Constraint(
                "RLX465",
                E,
                f"{GAD_KEY}.teacher_key",
                custom("no teacher-response column", _teacher_key_missing),
                title="GAD without teacher responses",
                message="gad.teacher_key={value}: the discriminator has no teacher text to rank above the student's",
                hint=f"set ++{GAD_KEY}.teacher_key=teacher_response (the dataset column holding the teacher's answer)",
                explanation="GAD trains D with L_D = -log sigmoid(D(teacher) - D(student)); without a teacher "
                "response per prompt there is no loss for D and no reward for the student.",
            ),
            Constraint(
                "RLX466",
                E,
                K.CRITIC_ENABLE,
                custom("the critic is disabled", _critic_off),
                title="GAD without a discriminator",
                message="GAD's discriminator runs on the critic worker, but the critic is disabled "
                "(critic.enable={value})",
                hint=_gad_critic_hint,
                explanation="rlx trains the critic worker as D (a scalar head on the last response token, initialised "
                "from the student) with the Bradley-Terry loss instead of the value loss.",
            ),
            Constraint(
                "RLX467",
                W,
                K.CRITIC_WARMUP,
                eq(K.CRITIC_WARMUP, 0),
                title="no discriminator warm-up",
                message="trainer.critic_warmup=0: the student is rewarded by an untrained discriminator from step 1",
                hint="set trainer.critic_warmup=10 (D-only steps; the paper warms D up before the adversarial stage)",
                explanation="GAD warms D up alone on teacher vs student text so its first rewards separate the two.",
            ),
            Constraint(
                "RLX468",
                W,
                RM_ENABLE,
                custom("a reward model or custom reward function is active", _other_reward_active),
                title="second reward source beside the discriminator",
                message="a reward model (reward.reward_model.enable) or custom reward function "
                "(reward.custom_reward_function.path) is active: GAD's discriminator score wins, rlx writes "
                "sg(D(student)) as the token-level reward and the other score is unused",
                hint=_other_reward_hint,
                explanation="GAD is reward-free: the discriminator is the on-policy reward model. A second reward "
                "source costs compute and its score is overwritten.",
            ),
            _agg("GAD", SMTM, why="GSPO loss (rlx's GAD preset; the paper's PPO-clip is the other choice)"),
            *COMMON,
        ),
    )
)

BUILTIN: tuple[Algorithm, ...] = tuple(REGISTRY)
"""rlx's own specs, in declaration order: the `builtin` entry point of group `rlx.algorithms`."""
