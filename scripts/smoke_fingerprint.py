"""Fingerprint the smoke engine's numerics, to prove a refactor of it changes nothing.

    .venv/bin/python scripts/smoke_fingerprint.py before.json     # on the old code
    .venv/bin/python scripts/smoke_fingerprint.py after.json      # on the new code
    .venv/bin/python scripts/smoke_fingerprint.py --diff before.json after.json

Runs a fixed set of seeded smoke runs that between them reach every phase and branch of the engine (critic, reference,
KL in the reward, group filtering, greedy baselines, the discriminator, the plugin losses and estimators, code
markers) and writes every step's metrics except wall-clock ones (`timing_s/*`, `perf/throughput`). Two files are
equal only when every float is bit-identical. This is a tool for refactors, not a test: it compares the code with
itself, never with the maths (the tests do that).
"""

from __future__ import annotations

import argparse
import json
import sys

KL = ["algorithm.use_kl_in_reward=true", "actor_rollout_ref.actor.use_kl_loss=true"]
CASES = [  # (algorithm, task, steps, overrides)
    ("grpo", "copy", 4, []),
    ("ppo", "copy", 4, []),  # critic, GAE
    ("remax", "copy", 3, []),  # greedy baselines
    ("gepo", "copy", 3, []),  # group denominator
    ("aepo", "copy", 3, []),  # entropy statistics
    ("vapo", "code", 3, []),  # critic, positive-example NLL
    ("gad", "copy", 3, []),  # discriminator
    ("dapo", "copy", 4, []),  # group filtering
    ("aspo", "code", 3, []),  # code markers
    ("gspo", "copy", 3, KL),  # reference, KL in the reward and the loss
]


def fingerprint() -> dict[str, list[dict[str, float]]]:
    from rlx.resolve import resolve
    from rlx.smoke.engine import run

    out = {}
    for algo, task, steps, overrides in CASES:
        result = run(resolve(algo, overrides=overrides).container(), task=task, steps=steps, seed=3, algorithm=algo)
        out[f"{algo}/{task}/{'+'.join(overrides)}"] = [
            {k: v for k, v in m.items() if not k.startswith("timing_s/") and k != "perf/throughput"}
            for m in result.history
        ]
        print(f"{algo:6} {task:5} {steps} steps", file=sys.stderr, flush=True)
    return out


def diff(a: dict, b: dict) -> int:
    """Print every difference; return how many metric values differ (a missing case or step counts as one)."""
    bad = 0
    for case in sorted(set(a) | set(b)):
        if case not in a or case not in b or len(a[case]) != len(b[case]):
            print(f"{case}: present or long in one file only")
            bad += 1
            continue
        for step, (x, y) in enumerate(zip(a[case], b[case], strict=True), 1):
            for key in sorted(set(x) | set(y)):
                if x.get(key) != y.get(key):
                    print(f"{case} step {step} {key}: {x.get(key)!r} != {y.get(key)!r}")
                    bad += 1
    values = sum(len(m) for h in a.values() for m in h)
    print(f"{len(a)} cases, {sum(len(h) for h in a.values())} steps, {values} metric values: {bad} differ")
    return bad


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="OUT.json to write, or two files with --diff")
    p.add_argument("--diff", action="store_true", help="compare two fingerprints")
    args = p.parse_args()
    if args.diff:
        if len(args.files) != 2:
            p.error("--diff takes two files")
        a, b = (json.load(open(f)) for f in args.files)
        sys.exit(1 if diff(a, b) else 0)
    with open(args.files[0], "w") as f:
        json.dump(fingerprint(), f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
