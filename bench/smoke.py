"""Smoke-engine speed per algorithm, as a ratio to GRPO's steps per second measured in the same process.

    .venv/bin/python bench/smoke.py [--steps 40] [--task copy] [--algos grpo gspo ...]

Each ready algorithm's preset runs `--steps` seeded smoke steps in-process (no Ray, no MLflow); the first run
(grpo) is repeated at the end and the two grpo figures averaged, so a machine whose load drifts during the bench
shows up as a large grpo spread. Absolute times depend on the machine: read the ratios.
"""

from __future__ import annotations

import argparse
import time


def measure(algo: str, steps: int, task: str) -> tuple[float, float]:
    """(steps per second over the training loop, final score) of one seeded smoke run."""
    from rlx.resolve import resolve
    from rlx.smoke.engine import run

    cfg = resolve(algo).container()
    t0: list[float] = []
    result = run(cfg, task=task, steps=steps, seed=0, on_start=lambda _info: t0.append(time.perf_counter()))
    return steps / (time.perf_counter() - t0[0]), result.final()


def main() -> None:
    from rlx.algorithms import ALGORITHMS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--task", default="copy")
    p.add_argument("--algos", nargs="*", default=None)
    args = p.parse_args()
    algos = args.algos or [a.name for a in ALGORITHMS if a.ready]
    import verl  # noqa: F401 - import cost outside the measurement

    base1, _ = measure("grpo", args.steps, args.task)
    rows = [(a, *measure(a, args.steps, args.task)) for a in algos if a != "grpo"]
    base2, base_score = measure("grpo", args.steps, args.task)
    base = (base1 + base2) / 2
    print(f"grpo baseline: {base:.1f} steps/s (two runs: {base1:.1f}, {base2:.1f}), {args.steps} steps, task "
          f"{args.task}")
    print(f"{'algorithm':<14} {'steps/s vs grpo':>16} {'score after ' + str(args.steps):>16}")
    print(f"{'grpo':<14} {1.0:>16.2f} {base_score:>16.2f}")
    for algo, sps, score in rows:
        print(f"{algo:<14} {sps / base:>16.2f} {score:>16.2f}")


if __name__ == "__main__":
    main()
