"""`rlx runs`: reconciliation from Ray's point of view. Nothing is left RUNNING when Ray forgot the job or the cluster
that ran it is gone (reliability.md: MLflow itself leaves a killed driver's run RUNNING)."""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLX_HOME", str(tmp_path / ".rlx"))
    return tmp_path


def _prepared(uri: str, address: str, state, *, embedded: bool = False, owner_pid: int | None = None):
    """An MLflow run and a record as a launch leaves them at `state` (nothing submitted to Ray)."""
    from rlx.launch import records
    from rlx.launch.jobs import submission_id_for
    from rlx.launch.records import RunRecord
    from rlx.track import store as tracking

    client = tracking.connect(uri)
    exp_id = tracking.experiment_id(client, "rlx", uri)
    run_id = tracking.create_run(client, exp_id, run_name="r", tags={"rlx.algo": "grpo"})
    rec = RunRecord(run_id=run_id, submission_id=submission_id_for(run_id), experiment="rlx", experiment_id=exp_id,
                    tracking_uri=uri, address=address, embedded_head=embedded, algo="grpo")
    if owner_pid is not None:
        rec.owner_pid = owner_pid
    records.save(rec, state, create=True)
    return client, run_id


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_job_ray_forgot_becomes_lost_and_its_run_failed(env, ray_head, mlflow_uri, rlx_cli):
    from rlx.launch.records import State

    client, run_id = _prepared(mlflow_uri, ray_head.address, State.SUBMITTED)
    assert client.get_run(run_id).info.status == "RUNNING"
    code, out, err = rlx_cli("runs", "ls", "--format", "json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["state"] == "LOST"
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["rlx.job_status"] == "LOST"


def test_interrupted_before_ray_saw_it_becomes_aborted(env, ray_head, mlflow_uri, rlx_cli):
    from rlx.launch.records import State

    client, run_id = _prepared(mlflow_uri, ray_head.address, State.SUBMITTING)
    code, out, err = rlx_cli("runs", "show", run_id[:8], "--format", "json")
    assert code == 0, err
    assert json.loads(out)["state"] == "ABORTED"
    assert client.get_run(run_id).info.status == "KILLED"


def test_run_of_an_embedded_head_whose_rlx_exited_is_lost_without_asking_anyone(env, mlflow_uri, rlx_cli):
    from rlx.launch.records import State

    client, run_id = _prepared(mlflow_uri, "http://127.0.0.1:9", State.SUBMITTED, embedded=True,
                               owner_pid=_dead_pid())
    code, out, err = rlx_cli("runs", "ls")
    assert code == 0, err
    assert "LOST" in out
    assert client.get_run(run_id).info.status == "FAILED"


def test_unreachable_cluster_leaves_the_record_alone_and_says_so(env, mlflow_uri, rlx_cli):
    from _rlxtest import free_port

    from rlx.launch.records import State

    client, run_id = _prepared(mlflow_uri, f"http://127.0.0.1:{free_port()}", State.SUBMITTED)
    code, out, err = rlx_cli("runs", "ls", "--format", "json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["state"] == "SUBMITTED" and row["ray_status"] == "UNREACHABLE"
    code, out, err = rlx_cli("runs", "stop", run_id)
    assert code == 3 and "cannot reach Ray" in err


def test_unknown_run_is_a_usage_error(env, rlx_cli):
    code, out, err = rlx_cli("runs", "show", "nope")
    assert code == 2 and "no run 'nope'" in err and "rlx runs ls" in err


def test_ctrl_c_against_a_cluster_detaches_and_the_job_keeps_running(env, ray_head, mlflow_uri, rlx_cli):
    import os
    import signal
    import sys
    from pathlib import Path

    from _rlxtest import wait_for
    from mlflow.tracking import MlflowClient
    from ray.job_submission import JobSubmissionClient

    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "rlx"), "train", "--algo", "grpo", "--smoke", "--task", "sleep",
         "--address", ray_head.address, "--tracking-uri", mlflow_uri],
        cwd=env, env={**os.environ, "RLX_SMOKE_ENTRY": "rlx.launch.testjob"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        runs_dir = env / ".rlx" / "runs"
        run_id = wait_for(lambda: next(p.name for p in runs_dir.iterdir()), 120, "the run record")
        client = MlflowClient(mlflow_uri)
        wait_for(lambda: client.get_run(run_id).data.metrics.get("training/global_step"), 120, "the first step")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert f"rlx runs logs {run_id} -f" in err and f"rlx runs stop {run_id}" in err
    assert JobSubmissionClient(ray_head.address).get_job_status(f"rlx-{run_id}").value == "RUNNING"
    assert json.loads((runs_dir / run_id / "record.json").read_text())["state"] == "SUBMITTED"
    code, out, err = rlx_cli("runs", "stop", run_id, "--format", "json")
    assert code == 0 and json.loads(out)["state"] == "STOPPED", err
    assert client.get_run(run_id).info.status == "KILLED"


def test_ls_also_lists_store_runs_launched_elsewhere(env, ray_head, mlflow_uri, rlx_cli):
    import shutil

    from rlx.launch import records
    from rlx.launch.records import State

    client, run_id = _prepared(mlflow_uri, ray_head.address, State.SUBMITTED)
    client.set_tag(run_id, "rlx.submission_id", f"rlx-{run_id}")
    client.set_tag(run_id, "rlx.cluster_address", ray_head.address)
    shutil.rmtree(records.run_dir(run_id))  # as if launched from another directory
    code, out, err = rlx_cli("runs", "ls", "--tracking-uri", mlflow_uri, "--format", "json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["run_id"] == run_id and row["message"] == "no local run record"
    assert row["ray_status"] == "NOT_FOUND" and row["mlflow_status"] == "RUNNING"  # shown, not changed
