"""Synthetic MLflow runs logged the way verl and rlx log them: for tests, the benchmark and demos.

Params are the `/`-flattened config produced by verl's own flattening function (`verl.utils.tracking`), metrics
carry verl's names, rlx runs add rlx's tags and its `rlx/provenance.json` artifact. Writes go through the public
`MlflowClient.log_batch` (chunked to MLflow's limits: 100 params, 1,000 metrics per call).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

RLX_TAGS = ("rlx.algo", "rlx.preset", "rlx.version", "verl.version", "rlx.job_status")
CURVE_KEYS = (
    "critic/score/mean",
    "response_length/mean",
    "actor/entropy",
    "actor/pg_clipfrac",
    "actor/ppo_kl",
    "perf/throughput",
    "actor/pg_loss",
    "actor/grad_norm",
    "critic/advantages/mean",
    "timing_s/step",
)


def verl_params(container: Mapping[str, Any]) -> dict[str, Any]:
    """A plain config dict flattened exactly as verl's MLflow logger does (lists as `key/list_len`, `key/0`, ...)."""
    from verl.utils.tracking import _compute_mlflow_params_from_objects

    return _compute_mlflow_params_from_objects(dict(container))


def resolved_params(algo: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """verl's flattened params for `rlx.resolve.resolve(algo)` (what a verl run of that preset logs)."""
    from rlx.resolve import resolve

    return verl_params(resolve(algo, overrides=list(overrides)).container())


def curves(steps: int, seed: int = 0, keys: Sequence[str] = CURVE_KEYS, gain: float = 1.0) -> dict[str, list[float]]:
    """Plausible RL training curves: the reward rises towards `gain`, entropy falls, the rest wander."""
    rng = random.Random(seed)
    out: dict[str, list[float]] = {}
    for key in keys:
        series = []
        for s in range(steps):
            t = s / max(1, steps - 1)
            noise = rng.gauss(0, 0.02)
            if key == "critic/score/mean":
                v = gain * (1 - math.exp(-3 * t)) + noise
            elif key == "actor/entropy":
                v = 1.5 * math.exp(-t) + noise
            elif key == "response_length/mean":
                v = 200 + 100 * t + 10 * noise
            else:
                v = abs(0.1 + noise)
            series.append(v)
        out[key] = series
    return out


def log_run(
    client,
    experiment_id: str,
    name: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Sequence[float]] | None = None,
    first_step: int = 1,
    tags: Mapping[str, str] | None = None,
    provenance: Sequence[Mapping[str, Any]] | None = None,
    status: str | None = "FINISHED",
    start_ms: int | None = None,
) -> str:
    """Create one run as verl (and optionally rlx) would have logged it; returns its id.

    `status=None` leaves the run RUNNING (a killed driver); "FAILED"/"KILLED" end it that way.
    """
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id, run_name=name, start_time=start_ms, tags=dict(tags or {}))
    rid = run.info.run_id
    plist = [Param(k, str(v)) for k, v in (params or {}).items()]
    for i in range(0, len(plist), 100):
        client.log_batch(rid, params=plist[i : i + 100])
    now = int(time.time() * 1000)
    points = [
        Metric(k, float(v), now + s, first_step + s) for k, vs in (metrics or {}).items() for s, v in enumerate(vs)
    ]
    for i in range(0, len(points), 1000):
        client.log_batch(rid, metrics=points[i : i + 1000])
    if provenance is not None:
        client.log_text(rid, json.dumps(list(provenance), indent=1), "rlx/provenance.json")
    if status is not None:
        client.set_terminated(rid, status)
    return rid


def rlx_tags(algo: str, status: str = "SUCCEEDED", preset: str | None = None) -> dict[str, str]:
    from rlx import __version__

    return {
        "rlx.algo": algo,
        "rlx.preset": preset or algo,
        "rlx.version": __version__,
        "verl.version": "0.9.1",
        "rlx.job_status": status,
    }


def provenance_of(algo: str) -> list[dict[str, Any]]:
    """rlx's provenance records for a preset: one per key that differs from verl's defaults."""
    from rlx.resolve import resolve

    return [c.to_dict() for c in resolve(algo).changed()]
