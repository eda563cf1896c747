"""The health-check registry: each check's code, title, applicable algorithms, thresholds and explanation live next to
the function that judges a run (the way `rlx/validate/rules.py` declares validation rules).

    @health_check("RLX902", "entropy collapse", thresholds={"warn_ratio": 0.2, "fail_ratio": 0.05},
                  metrics=("actor/entropy",), hint="...", explanation="...")
    def entropy_collapse(run: RunView, th: Thresholds) -> Result | None:
        ...

A check returns `None` when the run did not log what it reads (reported as `skip`), else a `Result`: ok, warn or
fail, with the evidence (metric, steps, values) and the first step at which it fired. Thresholds are data: the
declaration holds them, the explanation and `rlx rules` show them, the check reads them from `th`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Thresholds = Mapping[str, float]


class Status(str, Enum):
    ok = "ok"
    warn = "warn"
    fail = "fail"
    skip = "skip"  # the run did not log what the check reads


@dataclass(frozen=True)
class Evidence:
    """Points of one metric that back a verdict."""

    metric: str
    steps: tuple[int, ...]
    values: tuple[float, ...]
    note: str = ""  # what the values are, e.g. "mean of steps 41-50"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "steps": list(self.steps),
            "values": [_json_float(v) for v in self.values],
            "note": self.note,
        }

    def text(self) -> str:
        pts = ", ".join(f"{s}: {_fmt(v)}" for s, v in zip(self.steps, self.values, strict=True))
        return f"{self.metric} [{pts}]" + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class Result:
    """What a check function returns; the runner adds the check's code, title, explanation and hint."""

    status: Status
    message: str
    evidence: tuple[Evidence, ...] = ()
    step: int | None = None  # the first step at which the check fired (None when ok)
    hint: str | None = None  # overrides the declared hint (a check whose knob depends on the run)


def ok(message: str, *evidence: Evidence) -> Result:
    return Result(Status.ok, message, tuple(evidence))


def warn(message: str, step: int, *evidence: Evidence, hint: str | None = None) -> Result:
    return Result(Status.warn, message, tuple(evidence), step, hint)


def fail(message: str, step: int, *evidence: Evidence, hint: str | None = None) -> Result:
    return Result(Status.fail, message, tuple(evidence), step, hint)


@dataclass
class Curve:
    """One metric's points in step order (numpy arrays)."""

    steps: Any
    values: Any

    def __len__(self) -> int:
        return len(self.steps)

    def evidence(self, metric: str, lo: int, hi: int, note: str = "", most: int = 6) -> Evidence:
        """Evidence from points lo..hi-1 (at most `most` of them: the first ones and the last ones)."""
        idx = list(range(max(lo, 0), min(hi, len(self))))
        if len(idx) > most:
            idx = idx[: most // 2] + idx[-(most - most // 2) :]
        return Evidence(metric, tuple(int(self.steps[i]) for i in idx), tuple(float(self.values[i]) for i in idx), note)


@dataclass
class RunView:
    """What the checks read about one run: its algorithm, params and metric curves."""

    run_id: str
    name: str
    algo: str | None
    algo_source: str  # "tag" (rlx set it) or "params" (inferred from verl's keys) or ""
    params: dict[str, str]
    tags: dict[str, str]
    curves: dict[str, Curve] = field(default_factory=dict)
    smoke: bool = False

    def curve(self, key: str) -> Curve | None:
        c = self.curves.get(key)
        return c if c is not None and len(c) else None

    def param(self, key: str) -> str | None:
        """A config value by its dotted verl path; a smoke run's shrunk value (`rlx/smoke/<key>`) wins."""
        if f"rlx/smoke/{key}" in self.params:
            return self.params[f"rlx/smoke/{key}"]
        return self.params.get(key.replace(".", "/"))

    def param_float(self, key: str, default: float | None = None) -> float | None:
        v = self.param(key)
        try:
            return float(v) if v not in (None, "", "None", "null") else default
        except ValueError:
            return default

    def param_bool(self, key: str) -> bool:
        return str(self.param(key)).lower() == "true"

    @property
    def last_step(self) -> int:
        return max((int(c.steps[-1]) for c in self.curves.values() if len(c)), default=0)


@dataclass(frozen=True)
class HealthCheck:
    code: str
    title: str
    fn: Callable[[RunView, Thresholds], Result | None]
    thresholds: Mapping[str, float]
    metrics: tuple[str, ...]
    hint: str
    explanation: str
    algos: frozenset[str] | None = None  # None: every algorithm (and runs whose algorithm is unknown)
    when: Callable[[RunView], bool] | None = None  # an extra applicability test on the run's params
    when_text: str = ""
    can_fail: bool = True  # False: the worst verdict is warn

    def applies(self, run: RunView) -> bool:
        if self.algos is not None and run.algo not in self.algos and not (self.when and self.when(run)):
            return False
        if self.algos is None and self.when is not None:
            return self.when(run)
        return True

    def applies_text(self) -> str:
        parts = [", ".join(sorted(self.algos))] if self.algos is not None else ["all algorithms"]
        if self.when_text:
            parts.append(("or " if self.algos is not None else "when ") + self.when_text)
        return " ".join(parts)

    def thresholds_text(self) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.thresholds.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title": self.title,
            "applies_to": self.applies_text(),
            "algorithms": sorted(self.algos) if self.algos is not None else None,
            "thresholds": dict(self.thresholds),
            "metrics": list(self.metrics),
            "hint": self.hint,
            "explanation": self.explanation,
            "worst": "fail" if self.can_fail else "warn",
        }


CHECKS: dict[str, HealthCheck] = {}


def health_check(
    code: str,
    title: str,
    *,
    thresholds: Mapping[str, float],
    metrics: Sequence[str],
    hint: str,
    explanation: str,
    algos: Sequence[str] | None = None,
    when: Callable[[RunView], bool] | None = None,
    when_text: str = "",
    can_fail: bool = True,
):
    """Declare a health check on the function that performs it."""

    def deco(fn: Callable[[RunView, Thresholds], Result | None]):
        if code in CHECKS:
            raise ValueError(f"health check {code} is declared twice")
        CHECKS[code] = HealthCheck(
            code,
            title,
            fn,
            dict(thresholds),
            tuple(metrics),
            " ".join(hint.split()),
            " ".join(explanation.split()),
            frozenset(algos) if algos is not None else None,
            when,
            when_text,
            can_fail,
        )
        return fn

    return deco


def all_checks() -> list[HealthCheck]:
    """Every health check, in code order; their algorithm names are checked against the algorithm registry."""
    from rlx.algorithms import ALGORITHMS
    from rlx.doctor import checks  # noqa: F401 - importing it declares the checks

    known = set(ALGORITHMS.names())
    for c in CHECKS.values():
        unknown = (c.algos or frozenset()) - known
        if unknown:
            raise ValueError(f"health check {c.code} names unknown algorithms: {sorted(unknown)}")
    return [CHECKS[k] for k in sorted(CHECKS)]


def _fmt(v: float) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _json_float(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)
