"""`rlx runs doctor`: is a run healthy, judged by what its algorithm should look like.

Reads runs through `rlx.track.reads` (rlx runs, plain verl runs and smoke runs alike), infers the algorithm with
`rlx.compare.core.algorithm_of` (rlx's tag, else verl's `adv_estimator` / `loss_mode` params), and applies every
health check of `rlx.doctor.registry` that fits the run. The result is plain data; `rlx.doctor.report` renders it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlx.doctor.registry import CHECKS, Curve, HealthCheck, RunView, Status, all_checks

__all__ = ["CHECKS", "Diagnosis", "Verdict", "all_checks", "diagnose", "diagnose_view", "load_views"]


@dataclass(frozen=True)
class Verdict:
    code: str
    title: str
    status: Status
    message: str
    explanation: str
    hint: str
    step: int | None = None
    evidence: tuple = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "title": self.title,
            "status": self.status.value,
            "step": self.step,
            "message": self.message,
            "evidence": [e.to_dict() for e in self.evidence],
            "explanation": self.explanation,
            "hint": self.hint if self.status in (Status.warn, Status.fail) else "",
        }


@dataclass
class Diagnosis:
    run_id: str
    name: str
    algo: str | None
    algo_source: str
    steps: int
    metrics: int
    verdicts: list[Verdict] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(v.status is status for v in self.verdicts)

    @property
    def healthy(self) -> bool:
        return self.count(Status.fail) == 0

    def first_failure(self) -> Verdict | None:
        """The failing verdict that fired earliest (the one a status line shows)."""
        fails = [v for v in self.verdicts if v.status is Status.fail]
        return min(fails, key=lambda v: (v.step if v.step is not None else 1 << 62, v.code)) if fails else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "algorithm": self.algo,
            "algorithm_from": self.algo_source,
            "steps": self.steps,
            "metrics": self.metrics,
            "healthy": self.healthy,
            "counts": {s.value: self.count(s) for s in Status},
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


def diagnose_view(run: RunView, checks: Sequence[HealthCheck] | None = None) -> Diagnosis:
    """Apply every check that fits the run (by its algorithm and params)."""
    out = Diagnosis(run.run_id, run.name, run.algo, run.algo_source, run.last_step, len(run.curves))
    for check in checks if checks is not None else all_checks():
        if not check.applies(run):
            continue
        res = check.fn(run, check.thresholds)
        if res is None:
            out.verdicts.append(
                Verdict(
                    check.code,
                    check.title,
                    Status.skip,
                    "not logged: " + ", ".join(m for m in check.metrics if m != "*"),
                    check.explanation,
                    check.hint,
                )
            )
            continue
        out.verdicts.append(
            Verdict(
                check.code,
                check.title,
                res.status,
                res.message,
                check.explanation,
                res.hint or check.hint,
                res.step,
                res.evidence,
            )
        )
    return out


def load_views(
    selectors: Sequence[str] = (),
    *,
    tracking_uri: str | None = None,
    experiments: Sequence[str] = (),
    last: int | None = None,
    source=None,
) -> list[RunView]:
    """The runs' params, tags and every metric history, read in bulk from MLflow."""
    import numpy as np

    from rlx.compare.core import algorithm_of, select_runs
    from rlx.track.reads import mlflow_errors, open_source

    source = source or open_source(tracking_uri)
    with mlflow_errors(source.uri):
        ids = select_runs(source, selectors, experiments=experiments, last=last)
        infos = source.infos(ids)
        params = source.params(ids)
        keys = source.metric_keys(ids)
        hist = source.histories(ids, sorted(set().union(*keys.values())) if keys else [])
    views = []
    for rid in ids:
        info, p = infos[rid], params.get(rid, {})
        algo, how = algorithm_of(info.tags, p)
        curves: dict[str, Curve] = {}
        for key in sorted(keys.get(rid, ())):
            steps, values = hist.curve(rid, key)
            curves[key] = Curve(np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64))
        smoke = info.tags.get("rlx.smoke") == "true" or any(k.startswith("rlx/smoke/") for k in p)
        views.append(RunView(rid, info.name, algo, how, p, dict(info.tags), curves, smoke))
    return views


def diagnose(
    selectors: Sequence[str] = (),
    *,
    tracking_uri: str | None = None,
    experiments: Sequence[str] = (),
    last: int | None = None,
    source=None,
) -> list[Diagnosis]:
    """The Python API behind `rlx runs doctor`: one Diagnosis per selected run."""
    checks = all_checks()
    return [
        diagnose_view(v, checks)
        for v in load_views(selectors, tracking_uri=tracking_uri, experiments=experiments, last=last, source=source)
    ]
