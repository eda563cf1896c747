"""The two `--smoke` engines side by side: `rlx` (rlx's own loop) and `verl` (verl's own trainer on CPU).

    .venv/bin/python bench/engines.py [--algo grpo] [--steps 5]

Each engine runs `rlx train --algo ALGO --smoke --engine E --steps N` as a real subprocess with its own embedded Ray
head and a fresh sqlite store, as a user runs it. While it runs, the process tree (rlx, the Ray head, every worker) is
sampled every 0.5 s. Reported per engine: wall time, time from launch to the first logged step, seconds per later
step (MLflow's step timestamps), peak RSS and PSS summed over the tree and the peak number of processes; then the verl
engine's figures as ratios to the rlx engine's, measured in this same process (the baseline).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def sample_tree(pid: int, stop: threading.Event, out: dict) -> None:
    import psutil

    while not stop.is_set():
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
            rss = pss = 0
            for p in procs:
                try:
                    full = p.memory_full_info()  # PSS: shared pages (torch's libraries) counted once
                    rss += full.rss
                    pss += full.pss
                except psutil.Error:
                    pass
            out["rss"] = max(out.get("rss", 0), rss)
            out["pss"] = max(out.get("pss", 0), pss)
            out["procs"] = max(out.get("procs", 0), len(procs))
        except psutil.Error:
            pass
        stop.wait(0.5)


def measure(engine: str, algo: str, steps: int) -> dict:
    from mlflow.tracking import MlflowClient

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{engine}-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    exe = Path(sys.executable).parent / "rlx"
    cmd = [
        str(exe),
        "train",
        "--algo",
        algo,
        "--smoke",
        "--engine",
        engine,
        "--steps",
        str(steps),
        "--tracking-uri",
        uri,
        "--name",
        f"bench-{engine}",
    ]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stop, tree = threading.Event(), {}
    sampler = threading.Thread(target=sample_tree, args=(proc.pid, stop, tree), daemon=True)
    sampler.start()
    _, err = proc.communicate(timeout=1200)
    wall = time.time() - t0
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{engine}: exit {proc.returncode}\n{err[-3000:]}")
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("rlx").experiment_id])[0]
    hist = sorted(client.get_metric_history(run.info.run_id, "critic/score/mean"), key=lambda m: m.step)
    stamps = [m.timestamp / 1000 for m in hist]
    per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else float("nan")
    return {
        "wall": wall,
        "first_step": stamps[0] - t0,
        "per_step": per_step,
        "rss_gib": tree.get("rss", 0) / 2**30,
        "pss_gib": tree.get("pss", 0) / 2**30,
        "procs": tree.get("procs", 0),
        "steps": len(hist),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="grpo")
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    rows = {e: measure(e, args.algo, args.steps) for e in ("rlx", "verl")}
    print(f"{args.algo}, {args.steps} steps, load average {os.getloadavg()[0]:.1f}")
    print(
        f"{'engine':<8} {'wall s':>8} {'first step s':>13} {'s/step':>8} {'peak RSS GiB':>13} {'peak PSS GiB':>13} "
        f"{'processes':>10}"
    )
    for e, r in rows.items():
        print(
            f"{e:<8} {r['wall']:>8.1f} {r['first_step']:>13.1f} {r['per_step']:>8.2f} {r['rss_gib']:>13.2f} "
            f"{r['pss_gib']:>13.2f} "
            f"{r['procs']:>10}"
        )
    b, v = rows["rlx"], rows["verl"]
    print(
        f"{'verl/rlx':<8} {v['wall'] / b['wall']:>8.2f} {v['first_step'] / b['first_step']:>13.2f} "
        f"{v['per_step'] / b['per_step']:>8.2f} {v['rss_gib'] / b['rss_gib']:>13.2f} "
        f"{v['pss_gib'] / b['pss_gib']:>13.2f} "
        f"{v['procs'] / max(b['procs'], 1):>10.2f}"
    )


if __name__ == "__main__":
    main()
