"""The CPU smoke engine: a real RL training loop of a resolved verl config on a tiny model, in a minute on a laptop.

Each step runs the algorithm's real code, in verl's order (`trainer/ppo/ray_trainer.py`):

1. `n` samples per prompt, generated with the resolved temperature, top_p and top_k;
2. rewards through verl's `compute_score(data_source, solution_str, ground_truth, extra_info)` signature (the task's
   scorer, or the config's `reward.custom_reward_function` / legacy `custom_reward_function`);
3. old log-probs and entropy, reference log-probs (when KL is in the loss or the reward), critic values;
4. optional KL-in-reward (verl's `kl_penalty` and KL controller) and DAPO group filtering (`algorithm.filter_groups`);
5. advantages from verl's estimator registry (rlx plugins included) with the resolved `algorithm` section: `gae` and
   `grpo` are called the way verl's `compute_advantage` calls them, every other estimator through the generic path
   plus whatever extra inputs its signature asks for (`values`, `reward_baselines`, ASPO's code markers, ...);
6. critic updates (verl's `compute_value_loss`), then `ppo_epochs` x mini-batches x micro-batches of actor updates
   with the policy loss from verl's registry, configured by an ActorConfig built with verl's own
   `omega_conf_to_dataclass`; `global_batch_info` is set before each micro-batch as `workers/utils/losses.py::ppo_loss`
   does, and the entropy bonus and KL loss are added as it adds them. Extra loss inputs (`entropy=` for AEPO,
   `log_denom=` for GEPO) are passed when the loss function's signature names them; a positive-example NLL term is
   added when `algorithm.rlx.*.nll_coef` is set (VAPO).

The pieces: `rlx.smoke.setup` builds everything once (a `Setup`); `rlx.smoke.phases` runs one step as six phases
over a `Batch`; `rlx.smoke.updates` holds the critic, discriminator and actor updates; `rlx.smoke.tensors` the tensor
helpers. `run` below is the loop.

Sizes are shrunk (see `rlx.smoke.sizes`); every algorithm knob is kept. One deliberate shortcut, from the calibration:
an optimiser step is skipped for a mini-batch whose advantages are all zero (no policy-gradient signal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlx.errors import JobFailedError
from rlx.smoke import sizes as sizes_mod
from rlx.smoke.phases import advantages, log_probs, sample, score, shape_rewards, update
from rlx.smoke.setup import setup

LAST_K = 5


@dataclass
class SmokeResult:
    """What a smoke run did: per-step metrics and a summary."""

    algorithm: str | None
    adv_estimator: str
    loss_mode: str
    task: str
    seed: int
    sizes: sizes_mod.SmokeSizes
    history: list[dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.history)

    def series(self, key: str) -> list[float]:
        """One metric over the steps (NaN where a step did not log it)."""
        return [h.get(key, float("nan")) for h in self.history]

    def final(self, key: str = "critic/score/mean", last: int = LAST_K) -> float:
        """Mean of `key` over the last `last` steps."""
        vals = [v for v in self.series(key)[-last:] if v == v]
        return sum(vals) / len(vals) if vals else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "adv_estimator": self.adv_estimator,
            "loss_mode": self.loss_mode,
            "task": self.task,
            "seed": self.seed,
            "steps": self.steps,
            "wall_s": round(self.wall_s, 2),
            "score_first": self.history[0].get("critic/score/mean") if self.history else None,
            "score_final": self.final(),
        }


def run(
    config: Any,
    *,
    task: str = "copy",
    steps: int | None = None,
    seed: int = 0,
    on_step: Callable[[int, dict[str, float]], Any] | None = None,
    on_start: Callable[[dict[str, Any]], Any] | None = None,
    algorithm: str | None = None,
) -> SmokeResult:
    """Train the resolved verl `config` on a tiny model and synthetic task, on CPU; return the per-step metrics.

    Args:
        config: the resolved verl config (OmegaConf DictConfig, or the plain dict of `Resolved.container()`).
        task: `copy` (default), `reverse` or `code` (see `rlx.smoke.tasks`).
        steps: training steps (default 200: the copy task reaches a score of 0.9 after about 130-170 steps).
        seed: seeds torch, sampling and data order; the same seed gives the same curve.
        on_step: called after every step with (step, metrics); metric names are verl's.
        on_start: called once before training with a dict describing the run (`sizes`, `shrunk`, `algorithm`...).
        algorithm: the rlx algorithm name, for labels only (the config alone decides what runs).

    Raises:
        ConfigError: the config names an estimator or loss verl does not have, or verl refuses the actor config.
        JobFailedError: the reward function fails or training produces NaNs.
    """
    t_start = time.monotonic()
    if steps is not None and int(steps) < 1:
        from rlx.errors import UsageError

        raise UsageError(f"--steps must be at least 1, got {steps}", where="--steps", hint="e.g. --steps 40")
    s = setup(config, task=task, steps=steps, seed=seed)
    if on_start is not None:
        on_start(s.info(algorithm))
    result = SmokeResult(algorithm, s.adv_name, s.loss_mode, s.task.name, seed, s.sz)
    for step in range(1, s.sz.steps + 1):
        t0 = time.monotonic()
        b = sample(s, step)
        for phase in (score, log_probs, shape_rewards, advantages, update):
            phase(s, b)
        metrics, timing = b.metrics, b.timing
        metrics["actor/lr"] = s.sz.actor_lr
        timing["step"] = time.monotonic() - t0
        metrics.update({f"timing_s/{k}": v for k, v in timing.items()})
        metrics["perf/throughput"] = float(b.mask.sum()) / max(timing["step"], 1e-9)
        metrics["perf/total_num_tokens"] = float(b.mask.sum())
        metrics["training/global_step"] = float(step)
        metrics["training/epoch"] = float(b.epoch)
        bad = [k for k in ("actor/pg_loss", "actor/grad_norm") if k in metrics and metrics[k] != metrics[k]]
        if bad:
            raise JobFailedError(
                f"training diverged at step {step}: {', '.join(bad)} is NaN",
                hint="lower the learning rate or check the loss settings",
            )
        result.history.append(metrics)
        if on_step is not None:
            on_step(step, metrics)
    result.wall_s = time.monotonic() - t_start
    return result
