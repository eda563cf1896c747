"""What a resolved config asks of rlx's trainers beyond verl's registries, read from the specs.

Both trainers call `trainer_options`: `rlx.verl_entry` inside verl's trainer and the smoke engine on CPU. Neither
names an algorithm; a spec declares the option that switches each extra on (`Algorithm.nll_option`,
`Algorithm.teacher_option`), so a third-party spec gets the same treatment as rlx's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rlx.algorithms.registry import Algorithm

Getter = Callable[[str, Any], Any]  # (dotted config path, default) -> value


@dataclass(frozen=True)
class TrainerOptions:
    """The trainer extras a config selects, with the config path that selected each (for errors)."""

    nll_coef: float = 0.0  # weight of the positive-example NLL term on the actor loss (0: off)
    nll_path: str | None = None  # e.g. "algorithm.rlx.<name>.nll_coef"
    teacher_key: str | None = None  # the dataset column of teacher responses: the critic is a discriminator
    teacher_path: str | None = None


def option_path(algo: Algorithm, option: str) -> str:
    return f"algorithm.rlx.{algo.name}.{option}"


def selects(algo: Algorithm, get: Getter) -> bool:
    """The config selects one of the verl functions the spec registers (its estimator or its policy loss)."""
    chosen = {
        str(get("algorithm.adv_estimator", "")),
        str(get("actor_rollout_ref.actor.policy_loss.loss_mode", "vanilla")),
    }
    return bool(chosen & set(algo.plugin_names.values()))


def trainer_options(get: Getter, specs: Iterable[Algorithm] | None = None) -> TrainerOptions:
    """The positive-example NLL weight and the discriminator's teacher column that the config selects.

    - NLL: from a spec with `nll_option` whose registered estimator or loss the config selects; the option's value
      from `algorithm.rlx.<name>`, else the spec's default.
    - Discriminator: from a spec with `teacher_option` set (non-empty) in `algorithm.rlx.<name>`; such an algorithm
      reuses verl's own estimator and loss, so the option is what asks for it.
    """
    if specs is None:
        from rlx.algorithms import ALGORITHMS

        specs = ALGORITHMS
    out = TrainerOptions()
    for algo in specs:
        if algo.nll_option and not out.nll_path and selects(algo, get):
            path = option_path(algo, algo.nll_option)
            value = get(path, None)
            coef = float(algo.options.get(algo.nll_option, 0.0) if value is None else value)
            out = TrainerOptions(coef, path, out.teacher_key, out.teacher_path)
        if algo.teacher_option and not out.teacher_path:
            path = option_path(algo, algo.teacher_option)
            key = get(path, None)
            if key is not None and str(key).strip():
                out = TrainerOptions(out.nll_coef, out.nll_path, str(key).strip(), path)
    return out
