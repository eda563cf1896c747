"""The health checks: generic ones (RLX90x) for every run, then per-algorithm ones (RLX92x) from the diagnostics
that each algorithm's paper and reference code watch.

Metric names are verl's (`verl/trainer/ppo/metric_utils.py`, the actor's `actor/*` metrics, the v1 replay buffer's
`training/filter_groups/*`) and rlx's plugins' (`actor/gepo_*`, `aspo/*`). Windows count logged points, not steps:
some metrics skip steps (DAPO logs no `actor/pg_loss` on a step whose groups were all filtered out).
"""

from __future__ import annotations

import numpy as np

from rlx.algorithms import ALGORITHMS
from rlx.doctor.registry import Curve, Result, RunView, Thresholds, fail, health_check, ok, warn

SCORE = "critic/score/mean"
SCORE_MAX = "critic/score/max"
INF = 1e308  # MLflow's SQL store writes +-inf as +-1.7976931348623157e308 (sys.float_info.max)

# What `actor/pg_clipfrac` counts, from each spec's `clip_level` (GSPO and its variants clip the sequence ratio).
TOKEN_CLIP_ALGOS = tuple(a.name for a in ALGORITHMS if a.clip_level == "token")
SEQUENCE_CLIP_ALGOS = tuple(a.name for a in ALGORITHMS if a.clip_level == "sequence")


def _window_means(v: np.ndarray, w: int) -> np.ndarray:
    """Mean of each window of `w` consecutive points; element j covers points j..j+w-1."""
    c = np.cumsum(np.insert(v, 0, 0.0))
    return (c[w:] - c[:-w]) / w


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if len(idx) else None


def _best_score(run: RunView) -> float | None:
    """The best reward any sample reached in the run (max of `critic/score/max`), else the best step mean."""
    for key in (SCORE_MAX, SCORE):
        c = run.curve(key)
        if c is not None and np.isfinite(c.values).any():
            return float(np.nanmax(c.values))
    return None


def _score_at(run: RunView, step: int, w: int = 5) -> float | None:
    """Mean reward over the `w` points up to `step`."""
    c = run.curve(SCORE)
    if c is None:
        return None
    upto = c.values[c.steps <= step][-w:]
    return float(np.nanmean(upto)) if len(upto) else None


def _finite(v: np.ndarray) -> np.ndarray:
    """NaN for every non-finite point (and MLflow's stored infinities): RLX901 reports those, other checks skip them."""
    return np.where(np.isfinite(v) & (np.abs(np.nan_to_num(v)) < INF), v, np.nan)


def _sustained(values: np.ndarray, above: float, w: int) -> int | None:
    """Index of the last point of the first window of `w` points whose mean exceeds `above`."""
    if len(values) < w:
        return None
    j = _first(_window_means(values, w) > above)
    return None if j is None else j + w - 1


# ---- generic checks ---------------------------------------------------------------------------------------------


@health_check(
    "RLX901",
    "NaN or inf in a metric",
    thresholds={},
    metrics=("*",),
    hint="find the first bad step in the evidence; lower actor_rollout_ref.actor.optim.lr or set "
    "actor_rollout_ref.actor.grad_clip=1.0, and check the reward function for divisions by zero",
    explanation="""Any metric that becomes NaN or infinite means the numbers stopped meaning anything from that step:
    a diverged loss, an overflow, or a reward function that returned NaN. MLflow's SQL store keeps NaN as a flag and
    writes an infinity as the largest float, so both are recognised. Fails at the first such step.""",
)
def nan_or_inf(run: RunView, th: Thresholds) -> Result | None:
    if not run.curves:
        return None
    bad: list[tuple[int, str, Curve, int]] = []
    for key, c in run.curves.items():
        i = _first(~np.isfinite(c.values) | (np.abs(np.nan_to_num(c.values, nan=0.0)) >= INF))
        if i is not None:
            bad.append((int(c.steps[i]), key, c, i))
    if not bad:
        return ok(f"all {len(run.curves)} metrics finite")
    bad.sort()
    step = bad[0][0]
    ev = [c.evidence(key, i - 2, i + 1) for _, key, c, i in bad[:3]]
    names = ", ".join(k for _, k, _, _ in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    return fail(f"{len(bad)} metric(s) non-finite, first at step {step}: {names}", step, *ev)


@health_check(
    "RLX902",
    "entropy collapse",
    thresholds={"start_points": 5, "collapse_ratio": 0.1, "low_reward": 0.5, "near_best": 0.9},
    metrics=("actor/entropy", SCORE),
    hint="keep exploration alive: decouple the clip (actor_rollout_ref.actor.clip_ratio_high=0.28, DAPO's "
    "clip-higher), lower actor_rollout_ref.actor.optim.lr, or raise actor_rollout_ref.rollout.temperature",
    explanation="""The policy's token entropy (`actor/entropy`) falling below collapse_ratio of its start (the median
    of the first start_points steps) means it samples almost deterministically. That is convergence when the reward
    is near the best any sample reached (near_best of it, over the last start_points steps): reported ok. With the
    final reward below low_reward of the best, exploration died before the task was learned: fail; in between: warn. Fires at the first step below the
    ratio.""",
)
def entropy_collapse(run: RunView, th: Thresholds) -> Result | None:
    c = run.curve("actor/entropy")
    if c is None or len(c) < th["start_points"] + 1:
        return None
    start = float(np.nanmedian(c.values[: int(th["start_points"])]))
    if not start > 1e-6:
        return None
    i = _first(c.values < th["collapse_ratio"] * start)
    if i is None:
        low = float(np.nanmin(c.values))
        return ok(f"entropy {start:.3g} at the start, lowest {low:.3g} ({low / start:.0%} of the start)")
    step = int(c.steps[i])
    ev = c.evidence("actor/entropy", 0, 2)
    ev2 = c.evidence("actor/entropy", i - 1, i + 2, note=f"start {start:.3g}")
    # judged by where the reward ends: a collapse the run never recovers from, with the task unlearned, is the harm
    best, score = _best_score(run), _score_at(run, run.last_step, int(th["start_points"]))
    msg = f"entropy fell to {c.values[i]:.3g}, under {th['collapse_ratio']:.0%} of its start {start:.3g}"
    if best is None or score is None or best <= 0:
        return warn(msg + " (no reward logged to tell convergence from collapse)", step, ev, ev2)
    sc = run.curve(SCORE)
    assert sc is not None  # `score` came from this curve
    rev = sc.evidence(SCORE, len(sc) - 3, len(sc), note=f"final reward; best sample reward {best:.3g}")
    if score >= th["near_best"] * best:
        return ok(msg + f", with the final reward {score:.3g} near its best {best:.3g}: convergence")
    if score < th["low_reward"] * best:
        return fail(msg + f" and the final reward is {score:.3g}, far below the best {best:.3g}", step, ev2, rev)
    return warn(msg + f" with the final reward at {score:.3g} of a best {best:.3g}", step, ev2, rev)


@health_check(
    "RLX903",
    "reward flat while the loss moves",
    thresholds={"window": 20, "flat_range": 1e-3, "loss_std": 1e-3},
    metrics=(SCORE, "actor/pg_loss", "critic/vf_loss"),
    hint="check the reward function on a few real responses (`rlx train --smoke` with your reward_fn), and "
    "reward.reward_manager / data.reward_fn_key: a reward that ignores the response cannot be learned",
    explanation="""Over window consecutive steps the reward (`critic/score/mean`) stays within flat_range while a
    loss (`actor/pg_loss` or `critic/vf_loss`) moves (standard deviation above loss_std): the model is being updated
    but the reward does not respond, the signature of a constant or broken reward function. A reward pinned at the
    best any sample reached is a solved task, not flat. Fails at the last step of the first such window.""",
)
def reward_flat(run: RunView, th: Thresholds) -> Result | None:
    r = run.curve(SCORE)
    logged = [(k, run.curve(k)) for k in ("actor/pg_loss", "critic/vf_loss")]
    losses = [(k, c) for k, c in logged if c is not None]
    w = int(th["window"])
    if r is None or not losses or len(r) < w:
        return None
    best = _best_score(run)
    v = r.values
    for j in range(len(v) - w + 1):
        seg = v[j : j + w]
        if not np.isfinite(seg).all() or seg.max() - seg.min() >= th["flat_range"]:
            continue
        if best is not None and seg.mean() >= best - th["flat_range"]:
            continue  # solved: every sample at the best reward
        lo, hi = r.steps[j], r.steps[j + w - 1]
        for key, c in losses:
            sel = (c.steps >= lo) & (c.steps <= hi)
            if sel.sum() >= 3 and float(np.nanstd(c.values[sel])) > th["loss_std"]:
                li = np.flatnonzero(sel)
                step = int(hi)
                return fail(
                    f"reward stayed at {seg.mean():.4g} (range {seg.max() - seg.min():.2g}) over steps "
                    f"{int(lo)}-{step} while {key} moved (std {np.nanstd(c.values[sel]):.3g})",
                    step,
                    r.evidence(SCORE, j, j + w, note="flat"),
                    c.evidence(key, int(li[0]), int(li[-1]) + 1, note="moving"),
                )
    return ok(f"reward moved within every {w}-step window (or reached the best reward)")


@health_check(
    "RLX904",
    "ppo_kl or grad_norm blow-up",
    thresholds={
        "ppo_kl_warn": 0.1,
        "ppo_kl_fail": 1.0,
        "grad_window": 20,
        "grad_warn_ratio": 20.0,
        "grad_fail_ratio": 200.0,
    },
    metrics=("actor/ppo_kl", "actor/grad_norm"),
    hint="lower actor_rollout_ref.actor.optim.lr, set actor_rollout_ref.actor.grad_clip=1.0, or take fewer or "
    "smaller updates per rollout (actor_rollout_ref.actor.ppo_epochs, ppo_mini_batch_size)",
    explanation="""`actor/ppo_kl` is the mean of log pi_old - log pi_theta over the update; healthy runs keep
    |ppo_kl| around 1e-2. Above ppo_kl_warn the policy moves far from the rollout policy within one
    step (warn), above ppo_kl_fail the update has left the trust region (fail). `actor/grad_norm` spiking to
    grad_warn_ratio times the median of the previous grad_window steps warns, grad_fail_ratio times fails. Fires at
    the first such step.""",
)
def blow_up(run: RunView, th: Thresholds) -> Result | None:
    kl, gn = run.curve("actor/ppo_kl"), run.curve("actor/grad_norm")
    if kl is None and gn is None:
        return None
    found: list[tuple[int, int, str, str, Curve, int]] = []  # (severity, step, ...)
    if kl is not None:
        a = np.abs(_finite(kl.values))
        for sev, limit in ((2, th["ppo_kl_fail"]), (1, th["ppo_kl_warn"])):
            i = _first(a > limit)
            if i is not None:
                found.append(
                    (sev, int(kl.steps[i]), "actor/ppo_kl", f"|actor/ppo_kl| = {a[i]:.3g} above {limit:g}", kl, i)
                )
                break
    if gn is not None:
        w = int(th["grad_window"])
        v = _finite(gn.values)
        for sev, ratio in ((2, th["grad_fail_ratio"]), (1, th["grad_warn_ratio"])):
            for i in range(5, len(v)):
                base = float(np.nanmedian(v[max(0, i - w) : i]))
                if base > 0 and v[i] > ratio * base:
                    found.append(
                        (
                            sev,
                            int(gn.steps[i]),
                            "actor/grad_norm",
                            f"actor/grad_norm = {v[i]:.3g}, {v[i] / base:.0f}x the median {base:.3g} of the "
                            f"previous {min(w, i)} steps",
                            gn,
                            i,
                        )
                    )
                    break
            if found and found[-1][2] == "actor/grad_norm":
                break
    if not found:
        parts = []
        if kl is not None:
            parts.append(f"max |ppo_kl| {np.nanmax(np.abs(kl.values)):.3g}")
        if gn is not None:
            parts.append(f"max grad_norm {np.nanmax(gn.values):.3g}")
        return ok(", ".join(parts))
    worst = max(f[0] for f in found)
    first = min((f for f in found if f[0] == worst), key=lambda f: f[1])
    _, step, key, msg, c, i = first
    ev = [c.evidence(key, i - 3, i + 1)]
    return (fail if worst == 2 else warn)(msg + f" at step {step}", step, *ev)


@health_check(
    "RLX905",
    "response length pinned at the maximum",
    can_fail=False,
    thresholds={"window": 5, "clip_ratio": 0.5, "length_ratio": 0.99},
    metrics=("response_length/clip_ratio", "response_length/mean"),
    hint="raise data.max_response_length (and the rollout's max tokens), or add DAPO's overlong shaping "
    "(reward.reward_manager.name=dapo with +reward.reward_kwargs.overlong_buffer_cfg.enable=True)",
    explanation="""`response_length/clip_ratio` is the share of responses that hit data.max_response_length (verl's
    compute_data_metrics). A mean above clip_ratio over window steps means most responses are cut off: their reward
    judges a truncated answer and the length budget, not the policy, sets the output. Without clip_ratio logged, a
    `response_length/mean` at length_ratio of data.max_response_length counts. Warns at the last step of the first
    such window. (The CPU smoke tasks size max_response_length to the answer, so their answers fill it.)""",
)
def length_pinned(run: RunView, th: Thresholds) -> Result | None:
    w = int(th["window"])
    c = run.curve("response_length/clip_ratio")
    key, limit = "response_length/clip_ratio", th["clip_ratio"]
    if c is None:
        c, key = run.curve("response_length/mean"), "response_length/mean"
        max_len = run.param_float("data.max_response_length")
        if c is None or not max_len:
            return None
        limit = th["length_ratio"] * max_len
    i = _sustained(c.values, limit, w)
    if i is None:
        return ok(f"{key} stayed below {limit:.3g} (max {np.nanmax(c.values):.3g})")
    step = int(c.steps[i])
    return warn(
        f"{key} averaged {_window_means(c.values, w)[i - w + 1]:.3g} over steps {int(c.steps[i - w + 1])}-"
        f"{step}: responses are truncated at the maximum length",
        step,
        c.evidence(key, i - w + 1, i + 1),
    )


@health_check(
    "RLX906",
    "advantages all zero",
    thresholds={"points": 3, "zero": 1e-8},
    metrics=("critic/advantages/max", "critic/advantages/min", SCORE),
    hint="every group got equal rewards: make the task harder or easier for the model (data), raise "
    "actor_rollout_ref.rollout.n, raise actor_rollout_ref.rollout.temperature, or enable DAPO's dynamic "
    "sampling (algorithm.filter_groups.enable=True)",
    explanation="""When `critic/advantages/max` and `/min` are both within zero of 0 for points consecutive steps,
    every response in every group got the same reward, so a group-relative estimator gives no learning signal: the
    step costs a rollout and teaches nothing. When the reward at those steps is the best any sample reached, the task
    is solved and this is reported ok. Fails at the last of those steps.""",
)
def advantages_zero(run: RunView, th: Thresholds) -> Result | None:
    hi, lo = run.curve("critic/advantages/max"), run.curve("critic/advantages/min")
    if hi is None or lo is None:
        return None
    steps = np.intersect1d(hi.steps, lo.steps)
    if len(steps) == 0:
        return None
    hv = hi.values[np.isin(hi.steps, steps)]
    lv = lo.values[np.isin(lo.steps, steps)]
    zero = (np.abs(hv) <= th["zero"]) & (np.abs(lv) <= th["zero"])
    n = int(th["points"])
    best = _best_score(run)
    run_len = 0
    for i, z in enumerate(zero):
        run_len = run_len + 1 if z else 0
        if run_len >= n:
            step = int(steps[i])
            score = _score_at(run, step, n)
            if best is not None and score is not None and score >= best - 1e-6:
                return ok(
                    f"advantages were zero from step {int(steps[i - n + 1])} with every sample at the best "
                    f"reward {best:.3g}: the task is solved"
                )
            j = int(np.searchsorted(hi.steps, step))
            return fail(
                f"advantages were exactly zero for {n} steps ({int(steps[i - n + 1])}-{step}): every group "
                "had equal rewards",
                step,
                hi.evidence("critic/advantages/max", j - n + 1, j + 1),
                lo.evidence(
                    "critic/advantages/min",
                    int(np.searchsorted(lo.steps, step)) - n + 1,
                    int(np.searchsorted(lo.steps, step)) + 1,
                ),
            )
    return ok(f"advantages non-zero (max |A| up to {np.nanmax(np.abs(hv)):.3g})")


def _kl_to_ref_on(run: RunView) -> bool:
    return run.param_bool("actor_rollout_ref.actor.use_kl_loss") or run.param_bool("algorithm.use_kl_in_reward")


@health_check(
    "RLX907",
    "KL to the reference growing without bound",
    thresholds={"window": 10, "min_level": 0.05, "growth": 2.0, "fail_level": 1.0},
    metrics=("actor/kl_loss", "actor/reward_kl_penalty"),
    when=_kl_to_ref_on,
    when_text="the KL to the reference is on (actor.use_kl_loss or algorithm.use_kl_in_reward)",
    hint="raise actor_rollout_ref.actor.kl_loss_coef (in-loss KL) or algorithm.kl_ctrl.kl_coef / "
    "algorithm.kl_ctrl.type=adaptive (in-reward KL), or lower actor_rollout_ref.actor.optim.lr",
    explanation="""The KL to the reference model (`actor/kl_loss`, or `actor/reward_kl_penalty` for the in-reward
    penalty) rising slowly is expected; growing without bound is not. Compared window by
    window: a window mean above min_level that is at least growth times the previous window's mean, which itself
    rose over the window before it, warns (the KL keeps multiplying, the penalty does not hold the policy; the
    start-up ramp from 0 has no rising window before it); the same growth above fail_level fails. Needs three
    windows of points. Fires at the last step of the first such window.""",
)
def kl_unbounded(run: RunView, th: Thresholds) -> Result | None:
    logged = [(k, run.curve(k)) for k in ("actor/kl_loss", "actor/reward_kl_penalty")]
    found = [(k, c) for k, c in logged if c is not None]
    w = int(th["window"])
    found = [(k, c) for k, c in found if len(c) >= 3 * w]
    if not found:
        return None
    worst: tuple[int, int, str, Curve, int, float, float] | None = None
    for key, c in found:
        m = _window_means(np.abs(c.values), w)
        for j in range(2 * w, len(m)):
            # three windows: the KL multiplies now and was already rising before (a start-up ramp from 0 is not it)
            cur, prev, prev2 = m[j], m[j - w], m[j - 2 * w]
            if cur > th["min_level"] and prev > prev2 > 0 and cur >= th["growth"] * prev:
                sev = 2 if cur > th["fail_level"] else 1
                i = j + w - 1
                cand = (sev, int(c.steps[i]), key, c, i, float(cur), float(prev))
                if worst is None or (sev, -cand[1]) > (worst[0], -worst[1]):
                    worst = cand
                break
    if worst is None:
        k, c = found[0]
        return ok(f"{k} last {c.values[-1]:.3g}, not multiplying window over window")
    sev, step, key, c, i, cur, prev = worst
    msg = (
        f"{key} window mean {cur:.3g} at step {step} is {cur / prev:.1f}x the previous {w} steps' {prev:.3g}: the "
        "KL to the reference keeps growing"
    )
    return (fail if sev == 2 else warn)(msg, step, c.evidence(key, i - 2 * w + 1, i + 1))


# ---- per-algorithm checks (what each paper watches) ---------------------------------------------------------------------


def _filtering(run: RunView) -> bool:
    return run.param_bool("algorithm.filter_groups.enable")


@health_check(
    "RLX920",
    "DAPO: share of samples filtered out",
    algos=("dapo",),
    when=_filtering,
    when_text="algorithm.filter_groups.enable=True",
    can_fail=False,
    thresholds={"window": 10, "share": 0.5},
    metrics=("training/filter_groups/evicted_samples",),
    hint="the data is too easy or too hard for the model: filter the dataset by pass rate, or raise "
    "actor_rollout_ref.rollout.n so fewer groups are all-correct or all-wrong",
    explanation="""Dynamic sampling drops groups whose responses all got the same reward. Evicting more than share of
    the samples (mean over window steps) means most of the generation budget is thrown away (DAPO:
    keep it under 50 %). The share is evicted / (evicted + data.train_batch_size x rollout.n) for verl's replay
    buffer, which generates until the batch is full, and evicted / the batch for the CPU smoke engine, which filters a
    fixed batch. Late in a run that solved its task this is expected. Warns at the last step of the first such
    window.""",
)
def dapo_filter_share(run: RunView, th: Thresholds) -> Result | None:
    c = run.curve("training/filter_groups/evicted_samples")
    prompts = run.param_float("data.train_batch_size")
    n = run.param_float("actor_rollout_ref.rollout.n", 1.0)
    if c is None or not prompts:
        return None
    batch = prompts * (n or 1.0)
    share = c.values / batch if run.smoke else c.values / (c.values + batch)
    w = int(th["window"])
    i = _sustained(share, th["share"], w)
    shown = Curve(c.steps, share)
    if i is None:
        return ok(f"filtered share at most {np.nanmax(share):.0%} (window mean under {th['share']:.0%})")
    step = int(c.steps[i])
    return warn(
        f"dynamic sampling filtered {_window_means(share, w)[i - w + 1]:.0%} of the samples over steps "
        f"{int(c.steps[i - w + 1])}-{step}",
        step,
        shown.evidence("filtered share", i - w + 1, i + 1, note=f"of {batch:.0f} samples a step"),
    )


def _critic_on(run: RunView) -> bool:
    """A value critic is trained. GAD's critic is its discriminator, which predicts no returns: not one."""
    if run.algo == "gad":
        return False
    return run.param_bool("critic.enable") or run.param("algorithm.adv_estimator") == "gae"


def _degenerate_to_nan(run: RunView, c: Curve) -> np.ndarray:
    """Explained variance with NaN where it is undefined: steps whose returns have (almost) no spread."""
    hi, lo = run.curve("critic/returns/max"), run.curve("critic/returns/min")
    v = _finite(c.values)
    if hi is None or lo is None:
        return v
    spread = dict(zip(hi.steps.tolist(), hi.values.tolist(), strict=True))
    for s, x in zip(lo.steps.tolist(), lo.values.tolist(), strict=True):
        if s in spread:
            spread[s] -= x
    return np.array([np.nan if spread.get(s, 1.0) < 1e-6 else x for s, x in zip(c.steps.tolist(), v, strict=True)])


@health_check(
    "RLX921",
    "critic: explained variance rising in warm-up and positive after",
    algos=("vapo", "ppo"),
    when=_critic_on,
    when_text="a value critic is trained (critic.enable or adv_estimator=gae; not GAD's discriminator)",
    thresholds={"warmup_target": 0.5, "window": 10, "floor": -0.1},
    metrics=("critic/vf_explained_var",),
    hint="pre-train the value model longer (trainer.critic_warmup), raise critic.optim.lr, or check "
    "algorithm.gamma / +algorithm.rlx.lambda_critic (VAPO's critic targets need lambda_critic=1)",
    explanation="""`critic/vf_explained_var` = 1 - Var(returns - values) / Var(returns). During the value warm-up
    (trainer.critic_warmup steps, actor frozen) it should climb, e.g. above warmup_target before the actor starts
    ending the warm-up no higher than it started, or under the target, warns. After the
    warm-up it should stay positive: a median below floor over window steps means the critic predicts worse than a
    constant and its advantages are noise: fail. Steps whose returns have no spread (`critic/returns/max` = `/min`,
    e.g. a solved task) are left out: there the ratio is undefined.""",
)
def critic_explained_var(run: RunView, th: Thresholds) -> Result | None:
    c = run.curve("critic/vf_explained_var")
    if c is None:
        return None
    warmup = int(run.param_float("trainer.critic_warmup", 0) or 0)
    w = int(th["window"])
    after = c.steps > warmup
    va, sa = _degenerate_to_nan(run, c)[after], c.steps[after]
    med = np.array(
        [np.nanmedian(va[j : j + w]) if np.isfinite(va[j : j + w]).any() else np.nan for j in range(len(va) - w + 1)]
    )
    i = _first(med < th["floor"]) if len(va) >= w else None
    if i is not None:
        k = int(np.flatnonzero(after)[0]) + i
        step = int(sa[i + w - 1])
        return fail(
            f"explained variance had a median of {med[i]:.3g} over steps {int(sa[i])}-{step}: the "
            "critic predicts worse than a constant",
            step,
            c.evidence("critic/vf_explained_var", k, k + w),
        )
    if warmup >= 2 and (c.steps <= warmup).sum() >= 2:
        wv, ws = c.values[c.steps <= warmup], c.steps[c.steps <= warmup]
        if not wv[-1] > wv[0]:
            return warn(
                f"explained variance did not rise during the {warmup}-step warm-up ({wv[0]:.3g} -> {wv[-1]:.3g})",
                int(ws[-1]),
                c.evidence("critic/vf_explained_var", 0, len(wv)),
            )
        if wv[-1] < th["warmup_target"]:
            return warn(
                f"explained variance reached only {wv[-1]:.3g} by the end of the {warmup}-step warm-up "
                f"(target {th['warmup_target']:g})",
                int(ws[-1]),
                c.evidence("critic/vf_explained_var", 0, len(wv)),
            )
    return ok(
        f"explained variance {c.values[-1]:.3g} at the end"
        + (f", {c.values[min(warmup, len(c) - 1)]:.3g} after warm-up" if warmup else "")
    )


@health_check(
    "RLX922",
    "clip fraction for the ratio's level",
    algos=TOKEN_CLIP_ALGOS + SEQUENCE_CLIP_ALGOS,
    thresholds={"window": 10, "token_warn": 0.1, "token_fail": 0.3, "sequence_warn": 0.5, "sequence_fail": 0.9},
    metrics=("actor/pg_clipfrac",),
    hint="the updates move the policy too far per step: lower actor_rollout_ref.actor.optim.lr or "
    "actor_rollout_ref.actor.ppo_epochs, or widen actor_rollout_ref.actor.clip_ratio_low/high",
    explanation="""`actor/pg_clipfrac` is the share of clipped tokens (token-level PPO: grpo, drgrpo, dapo, ppo,
    rloo, reinforce_pp, remax, vapo, aspo, aepo) or of clipped sequences (gspo, gspo-decoupled). For token-level
    PPO a healthy run clips ~1e-3 to 1e-2 of the tokens; a window mean above token_warn warns and above token_fail fails. GSPO's
    sequence ratio clips about two orders of magnitude more (0.1-0.3 is normal, GSPO paper): it warns
    only above sequence_warn and fails above sequence_fail, where almost no sequence keeps a gradient. Not applied to
    sapo (its clip fractions are hard-coded 0), cispo, gmpo and gepo (their own checks).""",
)
def clip_fraction(run: RunView, th: Thresholds) -> Result | None:
    c = run.curve("actor/pg_clipfrac")
    w = int(th["window"])
    if c is None or len(c) < w:
        return None
    seq = run.algo in SEQUENCE_CLIP_ALGOS
    lw, lf = (th["sequence_warn"], th["sequence_fail"]) if seq else (th["token_warn"], th["token_fail"])
    level = "sequence-level (GSPO)" if seq else "token-level PPO"
    m = _window_means(c.values, w)
    for limit, verdict in ((lf, fail), (lw, warn)):
        j = _first(m > limit)
        if j is not None:
            step = int(c.steps[j + w - 1])
            return verdict(
                f"pg_clipfrac averaged {m[j]:.3g} over steps {int(c.steps[j])}-{step}, above {limit:g} for {level}",
                step,
                c.evidence("actor/pg_clipfrac", j, j + w),
            )
    return ok(f"pg_clipfrac window mean at most {np.nanmax(m):.3g} ({level}: warn above {lw:g})")


@health_check(
    "RLX923",
    "GEPO: group-expectation weights",
    algos=("gepo",),
    thresholds={"max_weight": 10.0, "min_mean": 0.1, "var_warn": 1.0},
    metrics=(
        "actor/gepo_weight_mean",
        "actor/gepo_weight_max",
        "actor/gepo_weight_var",
        "actor/gepo_denominator_fallback",
    ),
    hint="with weights this far from 1 the rollouts are too stale for the group denominator: reduce the "
    "staleness (fewer async steps) or actor_rollout_ref.actor.optim.lr; a denominator fallback means rlx's group hook is "
    "missing: run through rlx's verl entrypoint",
    explanation="""GEPO's weight w_i = p_i / E_q[q] is not 1 even on-policy but stays O(1).
    A weight above max_weight, or a mean weight under min_mean, means the group denominator no longer bounds the
    importance weight: fail. A weighted variance (`actor/gepo_weight_var`) above var_warn warns. A step where the
    denominator fell back to the micro-batch (`actor/gepo_denominator_fallback` = 1) warns: the expectation was not
    taken over the group.""",
)
def gepo_weights(run: RunView, th: Thresholds) -> Result | None:
    mx, mean = run.curve("actor/gepo_weight_max"), run.curve("actor/gepo_weight_mean")
    var, fb = run.curve("actor/gepo_weight_var"), run.curve("actor/gepo_denominator_fallback")
    if mx is None and mean is None and var is None:
        return None
    fails = []
    if mx is not None and (i := _first(mx.values > th["max_weight"])) is not None:
        fails.append(
            (
                int(mx.steps[i]),
                f"weight max {mx.values[i]:.3g} above {th['max_weight']:g}",
                mx.evidence("actor/gepo_weight_max", i - 2, i + 1),
            )
        )
    if mean is not None and (i := _first(mean.values < th["min_mean"])) is not None:
        fails.append(
            (
                int(mean.steps[i]),
                f"weight mean {mean.values[i]:.3g} under {th['min_mean']:g}",
                mean.evidence("actor/gepo_weight_mean", i - 2, i + 1),
            )
        )
    if fails:
        step, msg, ev = min(fails, key=lambda f: f[0])
        return fail(msg + f" at step {step}", step, ev)
    if var is not None and (i := _first(var.values > th["var_warn"])) is not None:
        return warn(
            f"weight variance {var.values[i]:.3g} above {th['var_warn']:g} at step {int(var.steps[i])}",
            int(var.steps[i]),
            var.evidence("actor/gepo_weight_var", i - 2, i + 1),
        )
    if fb is not None and (i := _first(fb.values > 0.5)) is not None:
        return warn(
            f"the group denominator fell back to the micro-batch at step {int(fb.steps[i])}",
            int(fb.steps[i]),
            fb.evidence("actor/gepo_denominator_fallback", i, i + 1),
        )
    parts = []
    if mean is not None:
        parts.append(f"weight mean {np.nanmin(mean.values):.3g}-{np.nanmax(mean.values):.3g}")
    if mx is not None:
        parts.append(f"max {np.nanmax(mx.values):.3g}")
    return ok(", ".join(parts) or "weights in range")


@health_check(
    "RLX924",
    "ASPO: eligible share and bias clipping",
    algos=("aspo",),
    can_fail=False,
    thresholds={"window": 10, "bias_clip": 0.9, "start_points": 10},
    metrics=("aspo/eligible_ratio", "aspo/bias_clip_ratio"),
    hint="no correct sample calls code, so the shaping is a no-op: check the tool/code detection "
    "(+algorithm.rlx.aspo.*) and the reward's used_code / first_code_pos fields; a bias always at its bound "
    "means |delta| is too large: lower +algorithm.rlx.aspo.delta or k",
    explanation="""ASPO shapes only eligible samples (correct and using code, `aspo/eligible_ratio`). An eligible
    share of exactly 0 for window steps after the first start_points means the bias never applies: the run is plain
    GRPO (warn). A share of eligible samples whose bias hit +-k|A| (`aspo/bias_clip_ratio`) above bias_clip over
    window steps means the shaping saturates its bound (warn).""",
)
def aspo_eligible(run: RunView, th: Thresholds) -> Result | None:
    el, bc = run.curve("aspo/eligible_ratio"), run.curve("aspo/bias_clip_ratio")
    w, s0 = int(th["window"]), int(th["start_points"])
    if el is None:
        return None
    v = el.values[s0:]
    if len(v) >= w:
        j = _first(_window_means((v > 0).astype(float), w) == 0)
        if j is not None:
            i = s0 + j + w - 1
            return warn(
                f"no sample was eligible for shaping over steps {int(el.steps[s0 + j])}-{int(el.steps[i])}",
                int(el.steps[i]),
                el.evidence("aspo/eligible_ratio", s0 + j, i + 1),
            )
    if bc is not None and (end := _sustained(bc.values, th["bias_clip"], w)) is not None:
        return warn(
            f"the bias hit its bound for {_window_means(bc.values, w)[end - w + 1]:.0%} of eligible samples",
            int(bc.steps[end]),
            bc.evidence("aspo/bias_clip_ratio", end - w + 1, end + 1),
        )
    return ok(f"eligible share up to {np.nanmax(el.values):.3g}")


@health_check(
    "RLX925",
    "AEPO: entropy spikes",
    algos=("aepo",),
    can_fail=False,
    thresholds={"window": 10, "spike_ratio": 2.0},
    metrics=("actor/entropy",),
    hint="lower the entropy weighting (AEPO's alpha, 0.2 by default) or actor_rollout_ref.actor.entropy_coeff; "
    "check +algorithm.rlx.aepo.sg_scope",
    explanation="""AEPO should keep entropy higher than GRPO without spikes. An
    `actor/entropy` point above spike_ratio times the median of the previous window steps warns.""",
)
def aepo_entropy_spike(run: RunView, th: Thresholds) -> Result | None:
    c = run.curve("actor/entropy")
    w = int(th["window"])
    if c is None or len(c) <= 3:
        return None
    for i in range(3, len(c)):
        base = float(np.nanmedian(c.values[max(0, i - w) : i]))
        if base > 0 and c.values[i] > th["spike_ratio"] * base:
            return warn(
                f"entropy jumped to {c.values[i]:.3g}, {c.values[i] / base:.1f}x the median {base:.3g} of the "
                "previous steps",
                int(c.steps[i]),
                c.evidence("actor/entropy", i - 3, i + 1),
            )
    return ok("no entropy spike")


@health_check(
    "RLX926",
    "CISPO / GMPO: clipped share",
    algos=("cispo", "gmpo"),
    can_fail=False,
    thresholds={"window": 10, "share": 0.5},
    metrics=("actor/pg_clipfrac", "actor/pg_clipfrac_lower"),
    hint="CISPO: raise actor_rollout_ref.actor.clip_ratio_high (the weight cap); GMPO: widen "
    "actor_rollout_ref.actor.clip_ratio_low/high (0.4 in log space) or lower the learning rate",
    explanation="""CISPO's pg_clipfrac is the share of importance weights truncated at the cap, GMPO's pg_clipfrac
    and pg_clipfrac_lower the shares clamped in log space. A window mean above
    share means most tokens are truncated: the method is no longer the one published (warn).""",
)
def truncated_share(run: RunView, th: Thresholds) -> Result | None:
    w = int(th["window"])
    seen = False
    for key in ("actor/pg_clipfrac", "actor/pg_clipfrac_lower"):
        c = run.curve(key)
        if c is None or len(c) < w:
            continue
        seen = True
        if (i := _sustained(c.values, th["share"], w)) is not None:
            return warn(
                f"{key} averaged {_window_means(c.values, w)[i - w + 1]:.3g} over steps "
                f"{int(c.steps[i - w + 1])}-{int(c.steps[i])}",
                int(c.steps[i]),
                c.evidence(key, i - w + 1, i + 1),
            )
    return ok(f"clipped share under {th['share']:g}") if seen else None
