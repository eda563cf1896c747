"""Benchmark: cold `rlx validate config --algo gspo` against verl's own validation path, on the same config.

Both sides run as fresh subprocesses (cold start, as a user or CI would run them), interleaved, N times each:
- rlx:  `rlx validate config --algo gspo`
- verl: compose verl's ppo_trainer config with Hydra and the gspo preset's overrides, `import verl`, then
        `verl.utils.config.validate_config(...)`, which is what `python -m verl.trainer.main_ppo` does before training.
Prints the medians and their ratio (target: rlx <= 0.4x verl, and under 1.5 s).

    python bench/validate.py [-n 7]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

VERL_PATH = r"""
import json, sys, importlib.util, os
from hydra import compose, initialize_config_dir
overrides = json.loads(sys.argv[1])
cfg_dir = os.path.join(os.path.dirname(importlib.util.find_spec("verl").origin), "trainer", "config")
with initialize_config_dir(config_dir=cfg_dir, version_base=None):
    cfg = compose(config_name="ppo_trainer", overrides=overrides)
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import validate_config
validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
"""


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one cold subprocess. CPU time is what a busy shared machine distorts least."""
    c0, t0 = _cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]}... failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=7, help="runs per side (median reported)")
    ap.add_argument("--algo", default="gspo")
    args = ap.parse_args()

    from rlx.resolve import resolve

    overrides = resolve(args.algo).override_list()
    rlx = [str(Path(sys.executable).parent / "rlx"), "validate", "config", "--algo", args.algo]
    verl = [sys.executable, "-c", VERL_PATH, json.dumps(overrides)]
    _run(rlx), _run(verl)  # warm the OS file cache and rlx's defaults cache once; every timed run is a new process
    times: dict[str, list[float]] = {"rlx": [], "verl": []}
    cpu: dict[str, list[float]] = {"rlx": [], "verl": []}
    for _ in range(args.n):
        for side, cmd in (("rlx", rlx), ("verl", verl)):
            wall, used = _run(cmd)
            times[side].append(wall)
            cpu[side].append(used)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    import os

    print(f"config: preset {args.algo} ({len(overrides)} overrides on verl's ppo_trainer); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for k in ("rlx", "verl"):
        print(f"{k:>4}: median {med[k]:.3f} s wall, {med_cpu[k]:.3f} s CPU over {args.n} cold runs  "
              f"(wall: {', '.join(f'{t:.2f}' for t in times[k])})")
    print(f"CPU ratio rlx/verl = {med_cpu['rlx'] / med_cpu['verl']:.2f}")
    ratio = med["rlx"] / med["verl"]
    print(f"wall ratio rlx/verl = {ratio:.2f}  (target <= 0.40; rlx median target < 1.5 s: "
          f"{'met' if ratio <= 0.4 and med['rlx'] < 1.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
