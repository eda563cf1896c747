"""What a user comparing algorithms on the smoke engine sees (in-process runs; seeded, so deterministic).

- ASPO on the `code` task calls code earlier than GRPO on the same seed (its advantage bias rewards early calls).
- On the harder `reverse` task the algorithms' curves differ visibly.
"""

from __future__ import annotations

import pytest

from rlx.algorithms import ALGORITHMS
from rlx.resolve import resolve
from rlx.smoke.engine import run

pytestmark = [pytest.mark.smoke]

CODE_STEPS = 120
REVERSE_STEPS = 60


def _late_mean(series, last=40):
    vals = [v for v in series[-last:] if v == v]
    return sum(vals) / len(vals)


@pytest.mark.skipif(not ALGORITHMS.get("aspo").ready, reason="aspo is not ready in the algorithm registry")
def test_aspo_moves_the_first_code_call_earlier_than_grpo_on_the_same_seed():
    grpo = run(resolve("grpo").container(), task="code", steps=CODE_STEPS, seed=0)
    aspo = run(resolve("aspo").container(), task="code", steps=CODE_STEPS, seed=0)
    g = _late_mean(grpo.series("code/first_pos/mean"))
    a = _late_mean(aspo.series("code/first_pos/mean"))
    assert a < g - 0.2, f"mean first-code position over the last 40 steps: aspo {a:.2f}, grpo {g:.2f}"
    assert "aspo/eligible_ratio" in aspo.history[-1]  # the estimator's own diagnostics are logged


def test_reverse_task_curves_differ_between_algorithms():
    curves = {a: run(resolve(a).container(), task="reverse", steps=REVERSE_STEPS, seed=0).series("critic/score/mean")
              for a in ("grpo", "gspo")}
    gap = max(abs(x - y) for x, y in zip(curves["grpo"], curves["gspo"], strict=True))
    assert gap > 0.05, f"grpo and gspo curves on reverse are too close (max gap {gap:.3f})"
