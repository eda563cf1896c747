"""`python -m rlx.smoke` as the Ray job runs it: a real subprocess logging into a real sqlite MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from rlx.resolve import resolve

pytestmark = [pytest.mark.integration, pytest.mark.smoke]


def _config_file(tmp_path, algo: str, *overrides: str):
    path = tmp_path / f"{algo}.yaml"
    path.write_text(resolve(algo, overrides=list(overrides)).to_yaml())
    return path


def _smoke(config, env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "rlx.smoke", "--config", str(config), *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=timeout)


def test_attaches_to_the_launchers_run_and_logs_params_and_metrics_like_verl(tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.create_experiment("rlx")
    run_id = client.create_run(exp, run_name="made-by-launcher", tags={"rlx.algo": "grpo"}).info.run_id
    client.log_param(run_id, "rlx/algo", "grpo")
    cfg = _config_file(tmp_path, "grpo")
    proc = _smoke(cfg, {"MLFLOW_TRACKING_URI": mlflow_uri, "MLFLOW_RUN_ID": run_id}, "--steps", "20", "--seed", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("step ")]
    assert len(lines) == 20 and lines[-1].startswith("step 20/20 score ")
    assert "actor_rollout_ref.rollout.n" in proc.stdout  # the shrunk-size table is printed at the start

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    # verl's own flattening (utils/tracking.py): `/` separators, lists as k/0 + k/list_len
    assert params["algorithm/adv_estimator"] == "grpo"
    assert params["actor_rollout_ref/rollout/n"] == "16"  # the resolved value, not the smoke size
    assert params["trainer/logger/list_len"] == "2"
    assert params["rlx/smoke/actor_rollout_ref.rollout.n"] == "8"
    assert params["rlx/algo"] == "grpo"  # the launcher's params survive
    for key in ("critic/score/mean", "critic/advantages/mean", "actor/pg_loss", "actor/pg_clipfrac", "actor/ppo_kl",
                "actor/entropy", "actor/grad_norm", "actor/kl_loss", "response_length/mean", "timing_s/step"):
        hist = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in hist) == list(range(1, 21)), key


def test_creates_a_run_when_none_is_given_and_names_it_after_the_trainer_section(tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    cfg = _config_file(tmp_path, "gspo", "trainer.project_name=smokeproj", "trainer.experiment_name=gspo-seed0")
    env = {"MLFLOW_TRACKING_URI": mlflow_uri}
    os.environ.pop("MLFLOW_RUN_ID", None)
    proc = _smoke(cfg, env, "--steps", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("smokeproj")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "gspo-seed0" and run.info.status == "FINISHED"
    assert run.data.params["actor_rollout_ref/actor/policy_loss/loss_mode"] == "gspo"


def test_bad_config_exits_1_names_the_key_and_marks_the_run_failed(tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    data = yaml.safe_load(resolve("grpo").to_yaml())
    data["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] = "vanila"
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(data))
    client = MlflowClient(mlflow_uri)
    run_id = client.create_run(client.create_experiment("rlx")).info.run_id
    proc = _smoke(cfg, {"MLFLOW_TRACKING_URI": mlflow_uri, "MLFLOW_RUN_ID": run_id}, "--steps", "2")
    assert proc.returncode == 1
    assert "error: verl has no policy loss named 'vanila'" in proc.stderr
    assert "--> actor_rollout_ref.actor.policy_loss.loss_mode" in proc.stderr
    assert "vanilla" in proc.stderr  # the hint suggests the right name
    assert "Traceback" not in proc.stderr
    assert client.get_run(run_id).info.status == "FAILED"


def test_a_failing_custom_reward_function_exits_4(tmp_path, mlflow_uri):
    bad = tmp_path / "reward.py"
    bad.write_text("def compute_score(data_source, solution_str, ground_truth, extra_info=None):\n"
                   "    raise KeyError('ground truth format')\n")
    cfg = _config_file(tmp_path, "grpo", f"reward.custom_reward_function.path={bad}")
    proc = _smoke(cfg, {"MLFLOW_TRACKING_URI": mlflow_uri}, "--steps", "2")
    assert proc.returncode == 4
    assert "the reward function raised KeyError" in proc.stderr
