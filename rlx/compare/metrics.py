"""Which metrics `rlx compare runs` shows, which direction is better for each, and how a curve is summarised.

A metric curve (value against training step) is summarised three ways:

- **final**: the value at the last logged step (the latest write wins when a step was logged twice, as after a
  resume);
- **best**: the maximum, the minimum or the value closest to 0 over the run, depending on the metric's direction
  (none for neutral metrics);
- **auc**: the trapezoidal area under the curve divided by the step span, i.e. the curve's mean height. Dividing by
  the span keeps runs of different lengths comparable: a run stopped at step 50 is not "worse" for having less area.
  A curve of one point has that point's value.

Nothing here imports mlflow; pandas and numpy are imported by the functions that need them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from rlx.track.histories import Histories


class Direction(str, Enum):
    UP = "up"  # higher is better
    DOWN = "down"  # lower is better
    ZERO = "zero"  # closest to 0 is better: the absolute value decides, the sign does not
    NEUTRAL = "neutral"  # no universal "better": shown, never highlighted

    @property
    def arrow(self) -> str:
        return {"up": "↑", "down": "↓", "zero": "→0", "neutral": "·"}[self.value]

    @property
    def words(self) -> str:
        """How a help text says it: "up", "down", "closest to 0", "neutral"."""
        return "closest to 0" if self is Direction.ZERO else self.value


REWARD = "critic/score/mean"
"""The curve behind the sparkline: verl's mean sequence score (the reward before KL shaping)."""

# The key metrics, in column order, with the direction that is better and why. verl's names (metric_utils.py,
# dp_actor.py); `@` in validation keys is sanitised to `_at_` by verl's MLflow adapter.
#
# Direction choices:
# - reward and validation accuracy: higher is better; that is the point of training.
# - response_length/mean: NEUTRAL. Longer answers are neither better nor worse in general (Dr.GRPO's point is that
#   GRPO's loss biases length; DAPO penalises overlong answers). Shown so length drift is visible, never "won".
# - actor/entropy: NEUTRAL. Collapse to ~0 is bad (no exploration; DAPO's clip-higher exists to prevent it) but a
#   high entropy is also noise; the healthy value depends on the task and the algorithm.
# - actor/pg_clipfrac: NEUTRAL. The fraction of clipped tokens depends on the algorithm by design (GSPO clips whole
#   sequences and reports clip fractions two orders of magnitude above GRPO's, paper section 5.1), so "lower" would
#   crown GRPO over GSPO for the wrong reason.
# - actor/ppo_kl: CLOSEST TO 0. The KL between the rollout policy and the updated policy is the trust-region signal; a
#   large value is the classic symptom of an unstable update, for every algorithm. verl logs the k1 estimate
#   mean(log pi_old - log pi), which is negative as often as positive, so the absolute value decides: with "lower",
#   a run at -0.3 would beat a run at 0.001.
# - actor/kl_loss: NEUTRAL. The KL to the reference policy (logged when actor.use_kl_loss is on; verl's losses.py).
#   It is the price paid for the reward, not a goal: a run that learns nothing has a KL of 0. Shown so drift away
#   from the reference is visible, never "won". Like actor/reward_kl_penalty (the KL-in-reward form, ray_trainer.py)
#   it is a column only when some selected run logged it (OPTIONAL_METRICS).
# - critic/vf_explained_var (critic methods): higher is better. verl's 1 - Var(returns - values) / Var(returns)
#   (metric_utils.py); 1 is a critic that predicts the returns exactly, 0 one no better than their mean.
# - critic/vf_loss (critic methods): NEUTRAL. Its scale is the returns' scale, which differs between reward functions
#   and moves as the policy learns; explained variance is the comparable form of the same fit.
#   Both are columns only when some selected run logged them (OPTIONAL_METRICS): GRPO-family runs have no critic.
# - perf/throughput: higher is better (tokens per second per GPU).
KEY_METRICS: tuple[tuple[str, Direction, str], ...] = (
    (REWARD, Direction.UP, "score"),
    ("response_length/mean", Direction.NEUTRAL, "resp_len"),
    ("actor/entropy", Direction.NEUTRAL, "entropy"),
    ("actor/pg_clipfrac", Direction.NEUTRAL, "clipfrac"),
    ("actor/ppo_kl", Direction.ZERO, "ppo_kl"),
    ("actor/kl_loss", Direction.NEUTRAL, "kl_ref"),
    ("actor/reward_kl_penalty", Direction.NEUTRAL, "kl_rew"),
    ("critic/vf_loss", Direction.NEUTRAL, "vf_loss"),
    ("critic/vf_explained_var", Direction.UP, "vf_ev"),
    ("perf/throughput", Direction.UP, "tput"),
)

OPTIONAL_METRICS = frozenset({"actor/kl_loss", "actor/reward_kl_penalty", "critic/vf_loss", "critic/vf_explained_var"})
"""Key metrics that only some algorithms log (the KL to the reference, the critic's fit): a column when a selected run
logged one, and no "not logged" note when none did."""


def directions_text() -> str:
    """The key metrics' directions in one sentence, for help texts, built from KEY_METRICS so that it cannot drift."""
    groups: dict[Direction, list[str]] = {}
    for _, d, label in KEY_METRICS:
        groups.setdefault(d, []).append(label)
    groups.setdefault(Direction.UP, []).insert(1, "val")  # the val-core headlines, right after the reward
    return "; ".join(f"{', '.join(labels)} {d.words}" for d, labels in groups.items())


VAL_CORE_PREFIX = "val-core/"
# The headline validation metric verl logs per data source and variable: `val-core/<ds>/<var>/mean_at_<N>`.
# The variants (`best_at_N/mean`, `maj_at_N/std`, ...) are available through `--metric`.
_VAL_CORE_HEADLINE = re.compile(r"^val-core/[^/]+/[^/]+/mean_at_\d+$")

# Directions for metrics not in the table above, guessed from the name (first match wins). `--metric KEY:up` or
# `KEY:down` overrides the guess.
_GUESSES: tuple[tuple[re.Pattern, Direction], ...] = (
    (re.compile(r"(^|/)(std|.*_std)$"), Direction.NEUTRAL),
    (re.compile(r"^val-(core|aux)/.*/(mean|best|maj)_at_\d+(/mean)?$"), Direction.UP),
    (re.compile(r"(score|reward|acc|accuracy|throughput|explained_var|mfu)"), Direction.UP),
    (re.compile(r"(loss|timing_s|time_per|kl|aborted|clip_ratio)"), Direction.DOWN),
)


@dataclass(frozen=True)
class MetricSpec:
    """One metric column: its MLflow key, the better direction and a short label for narrow tables."""

    key: str
    direction: Direction
    label: str
    requested: bool = False  # asked for with --metric (kept even if no run logged it)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "direction": self.direction.value, "label": self.label}


def direction_of(key: str) -> Direction:
    """The better direction for `key`: the documented table first, then a guess from the name."""
    for k, d, _ in KEY_METRICS:
        if k == key:
            return d
    for pattern, d in _GUESSES:
        if pattern.search(key):
            return d
    return Direction.NEUTRAL


def parse_metric_option(text: str) -> MetricSpec:
    """`--metric KEY` or `--metric KEY:up|down|neutral` (the suffix overrides the guessed direction)."""
    key, sep, suffix = text.rpartition(":")
    if sep and suffix.lower() in {d.value for d in Direction}:
        return MetricSpec(key.strip(), Direction(suffix.lower()), _label(key.strip()), requested=True)
    return MetricSpec(text.strip(), direction_of(text.strip()), _label(text.strip()), requested=True)


def _label(key: str) -> str:
    for k, _, label in KEY_METRICS:
        if k == key:
            return label
    if key.startswith(VAL_CORE_PREFIX):
        return "val:" + key[len(VAL_CORE_PREFIX) :].replace("/mean_at_", "@")
    return key


def select_metrics(
    extra: Sequence[MetricSpec], logged: Iterable[str], only: bool = False
) -> tuple[list[MetricSpec], list[str]]:
    """The columns to show: the key metrics any run logged, the val-core headlines, then `--metric` extras.

    Returns (columns, notes). A key metric that no selected run logged is left out with a note; a metric asked for
    with `--metric` always stays (its cells read "missing") so a typo is visible, with a did-you-mean note. With
    `only` (`--only-metric`) the columns are `extra` alone, in the order given.
    """
    logged = set(logged)
    cols: list[MetricSpec] = []
    notes: list[str] = []
    defaults = () if only else KEY_METRICS
    absent = [
        k
        for k, _, _ in defaults
        if k not in logged and k not in OPTIONAL_METRICS and not any(m.key == k for m in extra)
    ]
    for key, direction, label in defaults:
        if key in logged:
            cols.append(MetricSpec(key, direction, label))
        if key == REWARD:  # validation accuracy right after the training reward
            cols.extend(MetricSpec(k, Direction.UP, _label(k)) for k in sorted(logged) if _VAL_CORE_HEADLINE.match(k))
    if absent:
        notes.append("not logged by any selected run: " + ", ".join(absent))
    for spec in extra:
        existing = next((i for i, c in enumerate(cols) if c.key == spec.key), None)
        if existing is not None:
            cols[existing] = spec
            continue
        cols.append(spec)
        if spec.key not in logged:
            from rlx.errors import suggestion

            hint = suggestion(spec.key, logged)
            notes.append(f"--metric {spec.key}: no selected run logged it" + (f" ({hint})" if hint else ""))
    return cols, notes


@dataclass(frozen=True)
class Summary:
    """final / best / auc of one metric curve, with its length."""

    final: float
    best: float | None  # None for neutral metrics; for ZERO the (signed) value of least magnitude
    auc: float
    points: int
    first_step: int
    last_step: int

    def get(self, stat: str) -> float | None:
        return getattr(self, stat)

    def to_dict(self) -> dict[str, Any]:
        return {
            "final": self.final,
            "best": self.best,
            "auc": self.auc,
            "points": self.points,
            "last_step": self.last_step,
        }


STATS = ("final", "best", "auc")


def summarise(h: Histories, directions: dict[str, Direction]) -> dict[tuple[str, str], Summary]:
    """Summaries for every (run_id, key) curve, computed column-wise with numpy (1,000s of runs).

    NaN points are ignored for best and auc; a NaN final stays NaN (the run ended on a NaN, which the table should
    show).
    """
    import numpy as np

    if h.empty:
        return {}
    step, value, starts = h.step, h.value, h.starts
    n = len(starts)
    counts = h.ends - starts
    last_index = h.ends - 1
    codes = np.cumsum(h.boundary) - 1
    finite = np.isfinite(value)
    vmax = np.maximum.reduceat(np.where(finite, value, -np.inf), starts)
    vmin = np.minimum.reduceat(np.where(finite, value, np.inf), starts)
    step_f = np.where(finite, step, np.nan)
    with np.errstate(invalid="ignore"):
        span = np.fmax.reduceat(step_f, starts) - np.fmin.reduceat(step_f, starts)
    # Trapezoids between consecutive finite points of the same curve.
    fi = np.flatnonzero(finite)
    same = codes[fi][1:] == codes[fi][:-1]
    area = np.where(same, (step[fi][1:] - step[fi][:-1]) * (value[fi][1:] + value[fi][:-1]) / 2.0, 0.0)
    auc_sum = np.bincount(codes[fi][1:], weights=area, minlength=n)
    has_finite = np.bincount(codes[fi], minlength=n) > 0

    out: dict[tuple[str, str], Summary] = {}
    for i, (rid, k, s0, _) in enumerate(h.curves()):
        d = directions.get(k, Direction.NEUTRAL)
        if not has_finite[i]:
            auc = best = math.nan
        else:
            auc = float(auc_sum[i] / span[i]) if span[i] > 0 else float(vmax[i])
            if d is Direction.UP:
                best = float(vmax[i])
            elif d is Direction.ZERO:  # the point of least magnitude, sign kept
                seg = value[s0 : h.ends[i]]
                seg = seg[np.isfinite(seg)]
                best = float(seg[np.argmin(np.abs(seg))])
            else:
                best = float(vmin[i])
        out[(rid, k)] = Summary(
            final=float(value[last_index[i]]),
            best=None if d is Direction.NEUTRAL else best,
            auc=auc,
            points=int(counts[i]),
            first_step=int(step[s0]),
            last_step=int(step[last_index[i]]),
        )
    return out


def best_runs(values: dict[str, float | None], direction: Direction, tol: float = 1e-12) -> set[str]:
    """The run ids holding the best finite value (ties all win); empty for neutral metrics or a single run."""
    if direction is Direction.NEUTRAL:
        return set()
    finite = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
    if len(finite) < 2:
        return set()
    if direction is Direction.ZERO:  # compare magnitudes: -0.3 is further from 0 than 0.001
        finite = {k: abs(v) for k, v in finite.items()}
    target = max(finite.values()) if direction is Direction.UP else min(finite.values())
    return {k for k, v in finite.items() if abs(v - target) <= tol * max(1.0, abs(target))}


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], lo: float, hi: float, width: int = 16) -> str:
    """A unicode sparkline of `values` resampled to `width` buckets, on the shared scale [lo, hi].

    All runs share one scale so that the lines compare at a glance (a per-run scale would make a flat curve at 0.1 and
    one at 0.9 look the same). Buckets with no finite value are blank.
    """
    if not values:
        return ""
    n = len(values)
    width = min(width, n)
    out = []
    for b in range(width):
        chunk = [v for v in values[b * n // width : (b + 1) * n // width] if v is not None and math.isfinite(v)]
        if not chunk:
            out.append(" ")
            continue
        v = sum(chunk) / len(chunk)
        frac = 0.5 if hi <= lo else (v - lo) / (hi - lo)
        out.append(SPARK[min(len(SPARK) - 1, max(0, int(frac * (len(SPARK) - 1) + 0.5)))])
    return "".join(out)


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard-style exponential moving average with debiasing; `weight` in [0, 1), 0 leaves values as they are.

    NaN points are passed through and do not disturb the average.
    """
    if weight <= 0:
        return list(values)
    out, last, norm = [], 0.0, 0.0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(math.nan)
            continue
        last = last * weight + (1 - weight) * v
        norm = norm * weight + (1 - weight)
        out.append(last / norm)
    return out
