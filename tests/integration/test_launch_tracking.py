"""verl's real MLflow logger attaches to the run rlx created (same experiment, no param collision).

The child imports verl (3 s idle, up to 30 s on a loaded box): the point is verl's own `Tracking`, not a copy of it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

VERL_CHILD = """
from verl.utils.tracking import Tracking
t = Tracking(project_name="proj", experiment_name="exp", default_backend=["console", "mlflow"],
             config={"algorithm": {"adv_estimator": "grpo"}, "trainer": {"logger": ["console", "mlflow"]}})
for step in (1, 2):
    t.log({"actor/pg_loss": 1.0 / step, "val-core/copy/reward/mean@1": 0.5}, step=step)
del t
"""


def test_verl_tracking_logs_into_the_run_rlx_created(mlflow_uri, tmp_path):
    from rlx.track import store as tracking

    client = tracking.connect(mlflow_uri)
    exp_id = tracking.experiment_id(client, "proj", mlflow_uri)  # = trainer.project_name
    run_id = tracking.create_run(client, exp_id, run_name="exp", tags={"rlx.algo": "grpo"})
    tracking.log_launch(client, run_id, params=tracking.params_for({"algo": "grpo", "seed": 0}, []),
                        artifacts={}, tags={})
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "MLFLOW_RUN_ID": run_id}
    proc = subprocess.run([sys.executable, "-c", VERL_CHILD], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Proceeding without MLflow" not in proc.stderr + proc.stdout
    run = client.get_run(run_id)
    assert run.info.experiment_id == exp_id
    assert [m.step for m in client.get_metric_history(run_id, "actor/pg_loss")] == [1, 2]
    assert run.data.params["algorithm/adv_estimator"] == "grpo"  # verl's params ...
    assert run.data.params["rlx/algo"] == "grpo"  # ... next to rlx's, in one run
    assert len(client.search_runs([exp_id])) == 1
