"""Benchmark `rlx compare runs` on a large sqlite MLflow store, against plain `mlflow.search_runs`.

    .venv/bin/python bench/compare.py                       # 1,000 runs x 200 steps x 10 metrics, verl's ~944 params
    .venv/bin/python bench/compare.py --runs 200 --params 50
    .venv/bin/python bench/compare.py --db /tmp/cmp.db      # reuse (or keep) the store

The store: a few seed runs are logged through the public API (`MlflowClient.log_batch`, chunked to MLflow's limits),
exactly as verl logs them (its flattened config as params, its metric names); the remaining runs are copies of the
seeds made with SQL inside the database (new ids and names, perturbed metric values, a few params changed per run),
because logging 2,000,000 points through log_batch takes ~10 minutes on this machine and is not what is measured.
`--all-log-batch` builds every run through log_batch instead.

Measured in one process, after imports (each best of --repeat):
- `compare_runs` on all runs and on the 10 newest (selection, params diff, metric histories, summaries, best values)
  plus rendering the text table;
- `mlflow.search_runs` on all runs and on 10 runs (the baseline: it returns latest metric values only, no histories);
- for 10 runs, the public-API equivalent: `search_runs` + `get_metric_history` for every run and metric.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rlx.compare import synth

EXPERIMENT = "bench"


def _params(kind: str) -> dict[str, str]:
    if kind == "verl":
        return {k: str(v) for k, v in synth.resolved_params("grpo").items()}
    n = int(kind)
    return {f"section{i % 7}/sub/key{i}": str(i) for i in range(n)}


def build(db: Path, runs: int, steps: int, metrics: int, params: str, seeds: int, all_log_batch: bool) -> float:
    """Create the store; returns the build time in seconds."""
    from mlflow.tracking import MlflowClient

    t0 = time.perf_counter()
    uri = f"sqlite:///{db}"
    client = MlflowClient(uri)
    exp = client.create_experiment(EXPERIMENT)
    keys = list(synth.CURVE_KEYS[:metrics]) + [f"extra/metric_{i}" for i in range(max(0, metrics - 10))]
    base = _params(params)
    n_logged = runs if all_log_batch else min(seeds, runs)
    start = int(time.time() * 1000) - runs * 60_000
    for i in range(n_logged):
        p = dict(base)
        p["actor_rollout_ref/actor/clip_ratio_high"] = str([0.2, 0.28, 0.0004][i % 3])
        tags = synth.rlx_tags(["grpo", "dapo", "gspo"][i % 3]) if i % 2 == 0 else {}
        synth.log_run(client, exp, f"seed-{i}", params=p, metrics=synth.curves(steps, seed=i, keys=keys,
                      gain=0.5 + 0.4 * random.Random(i).random()), tags=tags, start_ms=start + i * 60_000)
        print(f"\rlogged {i + 1}/{n_logged} runs through log_batch", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if runs > n_logged:
        _clone(db, runs - n_logged, start + n_logged * 60_000)
    return time.perf_counter() - t0


def _clone(db: Path, count: int, start_ms: int) -> None:
    """Copy the seed runs inside the database, with new ids, names, start times, values and a changed seed param."""
    con = sqlite3.connect(db)
    seeds = [r[0] for r in con.execute("SELECT run_uuid FROM runs ORDER BY start_time")]
    for i in range(count):
        src, new = seeds[i % len(seeds)], uuid.uuid4().hex
        jitter = random.Random(i).uniform(-0.05, 0.05)
        con.execute("INSERT INTO runs SELECT ?, ?, source_type, source_name, entry_point_name, user_id, status, ?, "
                    "? + 600000, source_version, lifecycle_stage, replace(artifact_uri, run_uuid, ?), experiment_id, "
                    "deleted_time FROM runs WHERE run_uuid = ?",
                    (new, f"run-{i}", start_ms + i * 60_000, start_ms + i * 60_000, new, src))
        con.execute("INSERT INTO tags (key, value, run_uuid) SELECT key, CASE WHEN key = 'mlflow.runName' THEN ? "
                    "ELSE value END, ? FROM tags WHERE run_uuid = ?", (f"run-{i}", new, src))
        con.execute("INSERT INTO params (key, value, run_uuid) SELECT key, value, ? FROM params WHERE run_uuid = ?",
                    (new, src))
        con.execute("INSERT OR REPLACE INTO params (key, value, run_uuid) VALUES ('trainer/seed', ?, ?)", (str(i), new))
        for table, cols in (("metrics", "key, value, timestamp, run_uuid, step, is_nan"),
                            ("latest_metrics", "key, value, timestamp, step, is_nan, run_uuid")):
            sel = cols.replace("value", "value + ?", 1).replace("run_uuid", "?")
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {sel} FROM {table} WHERE run_uuid = ?", (jitter, new, src))
        if (i + 1) % 100 == 0:
            con.commit()
            print(f"\rcopied {i + 1}/{count} runs in SQL", end="", file=sys.stderr, flush=True)
    con.commit()
    con.close()
    print(file=sys.stderr)


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--metrics", type=int, default=10)
    ap.add_argument("--params", default="verl", help="'verl' (the ~944 params verl logs) or a number")
    ap.add_argument("--seeds", type=int, default=12, help="runs logged through log_batch before copying")
    ap.add_argument("--all-log-batch", action="store_true", help="log every run through log_batch (slow)")
    ap.add_argument("--db", type=Path, help="store file to reuse or keep (default: a temp dir, removed)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)

    import mlflow
    from mlflow.tracking import MlflowClient
    from rich.console import Console

    from rlx.compare import compare_runs, open_source, parse_metric_option
    from rlx.compare.report import render_text

    tmp = tempfile.TemporaryDirectory(prefix="rlx-bench-compare-")
    db = args.db or Path(tmp.name) / "mlflow.db"
    if not db.exists():
        built = build(db, args.runs, args.steps, args.metrics, args.params, args.seeds, args.all_log_batch)
        print(f"built {db} in {built:.1f} s ({db.stat().st_size / 2**20:.0f} MiB)")
    uri = f"sqlite:///{db}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    n_runs = len(open_source(uri).search([exp]))
    extra = [parse_metric_option(k) for k in synth.CURVE_KEYS[6:args.metrics]]

    def cmp_all():
        c = compare_runs(experiments=[EXPERIMENT], metrics=extra, tracking_uri=uri)
        render_text(c, Console(file=io.StringIO(), width=240))
        return c

    def cmp_10():
        c = compare_runs(experiments=[EXPERIMENT], metrics=extra, last=10, tracking_uri=uri)
        render_text(c, Console(file=io.StringIO(), width=240))
        return c

    def public_10():  # what a comparison costs through the public API: runs, then each history
        runs = mlflow.search_runs([exp], max_results=10, output_format="list")
        return [client.get_metric_history(r.info.run_id, k) for r in runs for k in synth.CURVE_KEYS[:args.metrics]]

    cmp_10()  # warm caches (imports, the sqlite page cache) for both sides alike
    mlflow.search_runs([exp], max_results=10)
    rows = []
    t_all, c_all = best_of(cmp_all, args.repeat)
    t_10, c_10 = best_of(cmp_10, args.repeat)
    t_sr10, _ = best_of(lambda: mlflow.search_runs([exp], max_results=10), args.repeat)
    t_sr_all, _ = best_of(lambda: mlflow.search_runs([exp]), 1)
    t_pub10, _ = best_of(public_10, args.repeat)
    points = sum(s.points for r in c_all.rows for s in r.summaries.values() if s)
    rows = [
        (f"rlx compare, all {len(c_all.rows)} runs", t_all, f"{points:,} points, {len(c_all.diff.entries)} diff keys"),
        ("mlflow.search_runs, all runs (latest values only)", t_sr_all, f"{n_runs} runs"),
        ("rlx compare, 10 runs", t_10, f"{len(c_10.rows)} runs"),
        ("mlflow.search_runs, 10 runs (latest values only)", t_sr10, ""),
        ("search_runs + get_metric_history, 10 runs", t_pub10, f"{10 * args.metrics} history calls"),
    ]
    print(f"\nstore: {n_runs} runs x {args.steps} steps x {args.metrics} metrics, params={args.params}; "
          f"best of {args.repeat} (search_runs all: 1)")
    for name, t, note in rows:
        print(f"  {name:<52} {t:8.3f} s   {note}")
    print(f"  ratio compare(all) / search_runs(all):   {t_all / t_sr_all:6.2f}x")
    print(f"  ratio compare(10)  / search_runs(10):    {t_10 / t_sr10:6.2f}x")
    print(f"  ratio compare(10)  / public API (10):    {t_10 / t_pub10:6.2f}x")
    print(f"  target: all {n_runs} runs in < 10 s: {'met' if t_all < 10 else 'NOT met'} ({t_all:.2f} s)")
    print(f"  phases of one full compare: {', '.join(f'{k} {v:.2f}s' for k, v in c_all.timings.items())}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
