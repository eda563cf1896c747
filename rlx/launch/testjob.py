"""A diagnostic Ray job entrypoint: a few fake training steps logged into MLflow under verl's metric names.

It takes the smoke engine's arguments (`--config FILE --task T --steps N --seed S`) and exists so the launch path
(Ray Jobs, MLflow run attachment, log streaming, stop, failure) can be tested and diagnosed without torch or verl:
`RLX_SMOKE_ENTRY=rlx.launch.testjob rlx train --algo grpo --smoke`. Tasks: `fail` exits 3 after one step, `sleep`
keeps stepping until stopped, anything else logs `--steps` (default 3) steps and exits 0.

Like verl's MLflow logger, it attaches to the run named by `MLFLOW_RUN_ID` (in `MLFLOW_TRACKING_URI`) and logs the
config as params flattened with `/` (lists as `list_len`, `0`, `1`, ...).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


def verl_style_params(config: Any, prefix: str = "") -> dict[str, str]:
    """The config flattened as verl's `_compute_mlflow_params_from_objects` does: `/`-joined keys, lists as dicts."""
    out: dict[str, str] = {}
    if isinstance(config, list):
        config = {"list_len": len(config), **{str(i): v for i, v in enumerate(config)}}
    if isinstance(config, dict):
        if not config and prefix:
            out[prefix] = "{}"
        for k, v in config.items():
            out.update(verl_style_params(v, f"{prefix}/{k}" if prefix else str(k)))
    else:
        out[prefix] = str(config)[:6000]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rlx.launch.testjob", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--task", default="copy")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import mlflow
    import yaml

    with open(args.config) as f:
        config = yaml.safe_load(f)
    mlflow.start_run()  # attaches to MLFLOW_RUN_ID, as verl's Tracking does
    params = list(verl_style_params(config).items())
    for i in range(0, len(params), 100):
        mlflow.log_params(dict(params[i : i + 100]))
    steps = 10**6 if args.task == "sleep" else args.steps
    for step in range(1, steps + 1):
        reward = step / (step + 1)
        mlflow.log_metrics(
            {
                "critic/score/mean": reward,
                "actor/pg_loss": 1.0 / step,
                "actor/entropy": 2.0 - reward,
                "response_length/mean": 8.0,
                "training/global_step": step,
            },
            step=step,
        )
        print(f"step:{step} - critic/score/mean:{reward:.3f} - actor/pg_loss:{1.0 / step:.3f}", flush=True)
        if args.task == "fail":
            print("testjob: failing on purpose (task=fail)", file=sys.stderr, flush=True)
            return 3
        time.sleep(0.5 if args.task == "sleep" else 0.05)
    mlflow.end_run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
