"""`python -m rlx.smoke --config resolved.yaml [--task T] [--steps N] [--seed S]`: a smoke run as a Ray job entrypoint.

It reads a resolved verl config (`rlx train --dry-run --output`), attaches to the MLflow run named by `MLFLOW_RUN_ID`
(at `MLFLOW_TRACKING_URI`) or creates one, logs the config as params the way verl does, trains, logs verl's metric
names every step and prints one progress line per step:

    step 12/200 score 0.83 adv 0.00 pg_clipfrac 0.002 ppo_kl 0.0001 entropy 0.41 | 42.1 steps/s

Exit codes: 0 done, 1 invalid config or input, 2 usage, 3 MLflow unreachable, 4 the run failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

PROGRESS_KEYS = (
    ("critic/advantages/mean", "adv", 2),
    ("actor/pg_clipfrac", "pg_clipfrac", 3),
    ("actor/ppo_kl", "ppo_kl", 4),
    ("actor/entropy", "entropy", 2),
    ("critic/vf_loss", "vf_loss", 3),
    ("code/first_pos/mean", "first_code_pos", 2),
)


def progress_line(step: int, total: int, metrics: dict[str, float], steps_per_s: float | None = None) -> str:
    """One line per step: `step 12/200 score 0.83 adv 0.00 ...`."""
    parts = [f"step {step}/{total}", f"score {metrics.get('critic/score/mean', float('nan')):.2f}"]
    parts += [f"{label} {metrics[key]:.{digits}f}" for key, label, digits in PROGRESS_KEYS if key in metrics]
    if steps_per_s:
        parts.append(f"| {steps_per_s:.1f} steps/s")
    return " ".join(parts)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rlx.smoke", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="resolved verl config YAML (rlx train --dry-run --output FILE)")
    p.add_argument("--task", default="copy", help="copy (default), reverse or code")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--algo", default=None, help="algorithm name, for labels only")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    return p


def main(argv: list[str] | None = None) -> int:
    from rlx.errors import RlxError, UnreachableError

    args = _parser().parse_args(argv)
    logger = None
    try:
        from rlx.smoke.engine import run
        from rlx.yamlio import load_file

        config = load_file(args.config, what="resolved verl config").data
        if not args.no_mlflow:
            from rlx.track.logger import MlflowLogger, config_params

            trainer = config.get("trainer") or {}
            try:
                logger = MlflowLogger(
                    experiment=str(trainer.get("project_name") or "rlx"), run_name=trainer.get("experiment_name")
                )
                logger.log_params(config_params(config))
            except RlxError:
                raise
            except Exception as e:  # noqa: BLE001 - any MLflow/store failure
                raise UnreachableError(
                    f"cannot log to MLflow: {str(e).splitlines()[0]}",
                    hint="check MLFLOW_TRACKING_URI and MLFLOW_RUN_ID",
                ) from None
        total = {"n": args.steps}
        t0 = time.monotonic()

        def on_start(info: dict[str, Any]) -> None:
            sizes = info["sizes"]
            total["n"] = sizes.steps
            print(
                f"rlx smoke: {info['algorithm'] or 'config'} (adv_estimator={info['adv_estimator']}, "
                f"loss_mode={info['loss_mode']}, loss_agg_mode={info['loss_agg_mode']}, clip="
                f"{info['clip_ratio_low']}/{info['clip_ratio_high']}) task={info['task']} seed={info['seed']} "
                f"reward={info['reward_fn']}",
                flush=True,
            )
            print("shrunk sizes (every other key comes from the resolved config):\n" + info["shrunk"], flush=True)
            if logger is not None:
                logger.log_params(sizes.params() | {"rlx/smoke/task": info["task"], "rlx/smoke/seed": info["seed"]})

        def on_step(step: int, metrics: dict[str, float]) -> None:
            if logger is not None:
                logger.log_metrics(metrics, step)
            print(progress_line(step, total["n"], metrics, step / max(time.monotonic() - t0, 1e-9)), flush=True)

        result = run(
            config,
            task=args.task,
            steps=args.steps,
            seed=args.seed,
            on_step=on_step,
            on_start=on_start,
            algorithm=args.algo,
        )
        s = result.summary()
        print(
            f"done: {s['steps']} steps in {s['wall_s']} s, score {s['score_first']:.2f} -> {s['score_final']:.2f} "
            f"(mean of the last 5 steps)" + (f", mlflow run {logger.run_id}" if logger else ""),
            flush=True,
        )
        if logger is not None:
            logger.finish("FINISHED")
        return 0
    except KeyboardInterrupt:
        _finish(logger, "KILLED")
        print("interrupted", file=sys.stderr)
        return 130
    except RlxError as e:
        _finish(logger, "FAILED")
        print(e.render(), file=sys.stderr)
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - the job's boundary: report, mark the run failed, exit 4
        import traceback

        _finish(logger, "FAILED")
        traceback.print_exc()
        print(f"error: smoke run failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 4


def _finish(logger, status: str) -> None:
    if logger is None:
        return
    try:
        logger.finish(status)
    except Exception:  # noqa: BLE001 - already failing; the original error matters more
        pass


if __name__ == "__main__":
    sys.exit(main())
