"""`rlx compare runs` on real smoke runs: a GSPO run against a GRPO run, trained by `python -m rlx.smoke` on CPU.

The config diff must list exactly the keys in which the two runs' logged configs differ (read back through
MLflow's public API), and those must include what GSPO changes: the loss mode and the clip ratios.

Slow by nature (two real CPU trainings in fresh interpreters, ~1 min each on an idle 2-core box, 3 steps each): marked
`smoke` so quick runs can deselect it with `-m "not smoke"`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.smoke]

STEPS = 3


def _smoke(tmp_path, uri: str, algo: str) -> None:
    from rlx.fsutil import atomic_write_text
    from rlx.resolve import resolve

    cfg = tmp_path / f"{algo}.yaml"
    atomic_write_text(cfg, resolve(algo, overrides=["trainer.project_name=smoke",
                                                    f"trainer.experiment_name={algo}-smoke"]).to_yaml())
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.pop("MLFLOW_RUN_ID", None)
    r = subprocess.run([sys.executable, "-m", "rlx.smoke", "--config", str(cfg), "--steps", str(STEPS), "--seed", "0",
                        "--algo", algo], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]


def test_gspo_vs_grpo_smoke_runs(tmp_path, mlflow_uri):
    pytest.importorskip("rlx.smoke.engine")
    from mlflow.tracking import MlflowClient

    from rlx.compare import compare_runs

    _smoke(tmp_path, mlflow_uri, "gspo")
    _smoke(tmp_path, mlflow_uri, "grpo")
    cmp = compare_runs(["gspo-smoke", "grpo-smoke"], tracking_uri=mlflow_uri)
    assert [r.info.name for r in cmp.rows] == ["gspo-smoke", "grpo-smoke"]
    for row in cmp.rows:
        assert row.steps == STEPS and row.summaries["critic/score/mean"] is not None
    assert [r.algorithm for r in cmp.rows] == ["gspo", "grpo"]

    client = MlflowClient(mlflow_uri)
    a, b = (client.get_run(r.run_id).data.params for r in cmp.rows)
    expected = {(k if k.startswith("rlx/") else k.replace("/", ".")) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    expected = {k for k in expected if not (k.startswith("rlx/set/") and k[len("rlx/set/"):] in expected)}
    assert set(cmp.diff.keys) == expected
    for key in ("actor_rollout_ref.actor.policy_loss.loss_mode", "actor_rollout_ref.actor.clip_ratio_low",
                "actor_rollout_ref.actor.clip_ratio_high"):
        assert key in expected
    assert "algorithm.adv_estimator" not in expected  # both are grpo-estimator algorithms
