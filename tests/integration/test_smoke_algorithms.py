"""Every ready algorithm's smoke run, submitted as a real Ray job that logs into a real sqlite MLflow run.

One module and one shared private Ray head for all algorithms, to stay within CI time. Runs are seeded. Each run
must finish, log at least 20 steps of verl's metric names into the run the "launcher" (this test) created; the
algorithms that the issue names (grpo, gspo, dapo, ppo, aspo) must also learn the default copy task: the mean
`critic/score/mean` of the last 5 steps is at least 0.85, from about 0.1 at the start. `rlx runs doctor` must find
no failing health check in any of them.

Slow by design (marked `smoke`): ~15 jobs, each a separate Python process importing verl.
"""

from __future__ import annotations

import sys

import pytest
from _rlxtest import wait_for

from rlx.algorithms import ALGORITHMS
from rlx.resolve import resolve
from rlx.smoke import sizes

pytestmark = [pytest.mark.integration, pytest.mark.smoke]

LEARNERS = {"grpo", "gspo", "dapo", "ppo", "aspo"}
LEARN_STEPS = 200
PLUMBING_STEPS = 25
READY = sorted(a.name for a in ALGORITHMS if a.ready)
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('smoke-mlflow') / 'mlflow.db'}"
    client = MlflowClient(uri)
    return uri, client, client.create_experiment("rlx-smoke")


@pytest.fixture(scope="module")
def jobs(ray_head):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(ray_head.address)


@pytest.mark.parametrize("algo", READY)
def test_ready_algorithm_smoke_job_trains_and_logs_to_mlflow(algo, jobs, store, tmp_path):
    uri, client, exp_id = store
    steps = LEARN_STEPS if algo in LEARNERS else PLUMBING_STEPS
    cfg = tmp_path / "resolved.yaml"
    cfg.write_text(resolve(algo).to_yaml())
    run_id = client.create_run(exp_id, run_name=f"{algo}-smoke", tags={"rlx.algo": algo}).info.run_id
    sid = jobs.submit_job(
        entrypoint=f"{sys.executable} -m rlx.smoke --config {cfg} --steps {steps} --seed 0 --algo {algo}",
        runtime_env={"env_vars": {"MLFLOW_TRACKING_URI": uri, "MLFLOW_RUN_ID": run_id, "PYTHONUNBUFFERED": "1"}},
        metadata={"rlx.algo": algo},
    )
    try:
        status = wait_for(lambda: (s := str(jobs.get_job_status(sid)).split(".")[-1]) in TERMINAL and s, 900,
                          f"the {algo} smoke job")
    finally:
        if str(jobs.get_job_status(sid)).split(".")[-1] not in TERMINAL:
            jobs.stop_job(sid)
    logs = jobs.get_job_logs(sid)
    assert status == "SUCCEEDED", logs[-3000:]
    assert f"step {steps}/{steps} score" in logs

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["algorithm/adv_estimator"] == resolve(algo).get("algorithm.adv_estimator")
    score = client.get_metric_history(run_id, "critic/score/mean")
    assert len(score) == steps >= 20
    for key in ("actor/entropy", "critic/advantages/mean", "response_length/mean", "timing_s/step"):
        assert len(client.get_metric_history(run_id, key)) == steps, key
    # the actor is not updated during the critic warm-up (VAPO), as in verl; it is every step after it
    pg_steps = sorted(m.step for m in client.get_metric_history(run_id, "actor/pg_loss"))
    if resolve(algo).get("algorithm.filter_groups.enable"):
        # DAPO's dynamic sampling drops zero-variance groups: once the policy is right on every prompt of a step
        # (score ~0.98), nothing is left to update on and that step logs no pg_loss
        assert set(pg_steps) <= set(range(1, steps + 1)) and len(pg_steps) >= 0.9 * steps, pg_steps
    else:
        assert pg_steps == list(range(steps - len(pg_steps) + 1, steps + 1))
        assert len(pg_steps) >= steps - sizes.MAX_CRITIC_WARMUP
    if algo in LEARNERS:
        by_step = [m.value for m in sorted(score, key=lambda m: m.step)]
        assert by_step[0] < 0.3, by_step[:5]
        final = sum(by_step[-5:]) / 5
        # 0.85: seeded curves are chaotic in float rounding; ASPO reached 0.895 after its base became verl's own
        # grpo (issue 12), grpo/dapo 0.98
        assert final >= 0.85, f"{algo}: final score {final:.3f}; curve every 20 steps: {by_step[::20]}"
    # `rlx runs doctor` judges every real smoke run healthy: no check fails (warnings are allowed), and the
    # algorithm is inferred from the run's verl params, as for a plain verl run (this run has rlx's tag too)
    from rlx.doctor import diagnose

    (doc,) = diagnose([run_id], tracking_uri=uri)
    assert doc.algo == algo and doc.steps == steps
    assert doc.healthy, [(v.code, v.message) for v in doc.verdicts if v.status.value == "fail"]


def test_readme_main_command_then_runs_ls_shows_the_run_with_its_metrics(ray_head, rlx_cli, tmp_path, monkeypatch,
                                                                         mlflow_uri):
    """`rlx train --algo gspo --smoke` end to end through the real launcher, the real engine, Ray and MLflow."""
    import json

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLX_HOME", str(tmp_path / ".rlx"))
    monkeypatch.delenv("RLX_SMOKE_ENTRY", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code, out, err = rlx_cli("train", "--algo", "gspo", "--smoke", "--steps", "20", "--address", ray_head.address,
                             "--tracking-uri", mlflow_uri)
    assert code == 0, err[-3000:]
    code, out, err = rlx_cli("runs", "ls", "--format", "json")
    assert code == 0, err
    (row,) = [r for r in json.loads(out) if r["algo"] == "gspo"]
    assert row["smoke"] and row["mlflow_status"] == "FINISHED" and row["state"] == "SUCCEEDED"
    assert row["step"] == 20 and 0.0 <= row["reward"] <= 1.0
