"""Benchmark `rlx runs doctor` on one run of 200 steps x 40 metrics, against reading the same histories by hand.

    .venv/bin/python bench/doctor.py
    .venv/bin/python bench/doctor.py --steps 1000 --repeat 5

The store is a fresh sqlite MLflow store in a temp dir holding one run logged the way verl logs it: the resolved
grpo config as params (verl's own flattening, ~950 keys) and 40 of verl's metric names (`critic/*`, `actor/*`,
`response_length/*`, `timing_s/*`, ...), written with `MlflowClient.log_batch`.

Measured in one process, after imports (best of --repeat):
- `rlx.doctor.diagnose([run_id])`: open the store, select the run, read its params and every metric history, apply
  every health check that fits the run;
- the checks alone, on the histories already in memory;
- the baseline: `MlflowClient.get_run` + `get_metric_history` for each of the 40 metrics (the public API a user's
  own script would call to read the same data, before judging anything).
Target: diagnose <= 1 s; the ratio to the baseline is printed.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import tempfile
import time
from pathlib import Path

KEYS = (
    "critic/score/mean", "critic/score/max", "critic/score/min", "critic/rewards/mean", "critic/rewards/max",
    "critic/rewards/min", "critic/advantages/mean", "critic/advantages/max", "critic/advantages/min",
    "critic/returns/mean", "critic/returns/max", "critic/returns/min", "response_length/mean", "response_length/max",
    "response_length/min", "response_length/clip_ratio", "prompt_length/mean", "prompt_length/max",
    "prompt_length/min", "prompt_length/clip_ratio", "actor/entropy", "actor/pg_loss", "actor/pg_clipfrac",
    "actor/pg_clipfrac_lower", "actor/ppo_kl", "actor/grad_norm", "actor/kl_loss", "actor/kl_coef", "actor/lr",
    "perf/throughput", "perf/total_num_tokens", "perf/time_per_step", "timing_s/gen", "timing_s/ref",
    "timing_s/old_log_prob", "timing_s/adv", "timing_s/update_actor", "timing_s/step", "training/global_step",
    "training/epoch",
)  # fmt: skip


def build(db: Path, steps: int) -> tuple[str, str]:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from rlx.compare import synth

    uri = f"sqlite:///{db}"
    client = MlflowClient(uri)
    exp = client.create_experiment("bench-doctor")
    run = client.create_run(exp, run_name="doctor-bench", tags=synth.rlx_tags("grpo"))
    rid = run.info.run_id
    params = [Param(k, str(v)) for k, v in synth.resolved_params("grpo").items()]
    for i in range(0, len(params), 100):
        client.log_batch(rid, params=params[i : i + 100])
    rng = random.Random(0)
    now = int(time.time() * 1000)
    points = []
    for s in range(1, steps + 1):
        t = s / steps
        for k in KEYS:
            if k == "critic/score/mean":
                v = 0.1 + 0.7 * (1 - math.exp(-3 * t)) + rng.gauss(0, 0.02)
            elif k == "actor/entropy":
                v = 2.0 - 0.8 * t + rng.gauss(0, 0.01)
            elif k.endswith("/max"):
                v = 1.0 + rng.gauss(0, 0.05)
            elif k.endswith("/min"):
                v = -1.0 + rng.gauss(0, 0.05)
            elif k == "actor/kl_loss":
                v = 0.001 + 0.03 * t
            else:
                v = abs(0.05 + rng.gauss(0, 0.01))
            points.append(Metric(k, v, now + s, s))
    for i in range(0, len(points), 1000):
        client.log_batch(rid, metrics=points[i : i + 1000])
    client.set_terminated(rid, "FINISHED")
    return uri, rid


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from mlflow.tracking import MlflowClient

    from rlx.doctor import diagnose, diagnose_view, load_views
    from rlx.doctor.registry import all_checks

    with tempfile.TemporaryDirectory(prefix="rlx-bench-doctor-") as tmp:
        t0 = time.perf_counter()
        uri, rid = build(Path(tmp) / "mlflow.db", args.steps)
        print(f"store: 1 run x {args.steps} steps x {len(KEYS)} metrics, built in {time.perf_counter() - t0:.1f} s")
        diagnose([rid], tracking_uri=uri)  # warm: first SQLAlchemy compile, algorithm registry, checks import

        def baseline() -> None:
            client = MlflowClient(uri)
            client.get_run(rid)
            for k in KEYS:
                client.get_metric_history(rid, k)

        baseline()
        t_base = best(baseline, args.repeat)
        t_doc = best(lambda: diagnose([rid], tracking_uri=uri), args.repeat)
        (view,) = load_views([rid], tracking_uri=uri)
        checks = all_checks()
        t_checks = best(lambda: diagnose_view(view, checks), args.repeat)
        (d,) = diagnose([rid], tracking_uri=uri)
    load = os.getloadavg()
    print(f"verdicts: {[(v.code, v.status.value) for v in d.verdicts]}")
    print(f"baseline get_run + {len(KEYS)} x get_metric_history  {t_base * 1000:8.1f} ms")
    print(f"rlx.doctor.diagnose (read + judge)           {t_doc * 1000:8.1f} ms   ratio {t_doc / t_base:.2f}x baseline")
    print(f"checks alone (histories in memory)           {t_checks * 1000:8.1f} ms")
    print(
        f"target diagnose <= 1000 ms: {'met' if t_doc <= 1.0 else 'MISSED'}   load average {load[0]:.2f} {load[1]:.2f}"
    )


if __name__ == "__main__":
    main()
