"""`rlx train` on a real Ray head with a real sqlite MLflow store (issue 5's "must show" list).

Jobs run `rlx.launch.testjob` (RLX_SMOKE_ENTRY): a few fake steps logged under verl's names into the run rlx created,
so each job takes seconds. All tests share the session's `ray_head`; each job has its own submission id.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _rlxtest import free_port, wait_for

pytestmark = pytest.mark.integration

CANARY_CFG = "sk-canaryCONFIG0123456789abcdef"
CANARY_WANDB = "0123456789abcdef0123456789abcdef0123cafe"  # 40-hex, W&B's shape
CANARY_HF = "hf_canaryENVIRONMENTabcdefghijklmn"
CANARY_PLAIN = "plain-env-secret-value-42"  # no known shape: found by its env var's name


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _jobs(address: str):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address)


def _train(rlx_cli, ray_head, uri, *extra):
    return rlx_cli("train", "--algo", "grpo", "--smoke", "--steps", "3", "--address", ray_head.address,
                   "--tracking-uri", uri, "--format", "json", *extra)


@pytest.fixture
def env(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLX_HOME", str(tmp_path / ".rlx"))
    monkeypatch.setenv("RLX_SMOKE_ENTRY", "rlx.launch.testjob")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return tmp_path


# ---- one successful run in a dirty git tree, with secrets in the config and the environment -----------------------


@pytest.fixture(scope="module")
def launched(ray_head, tmp_path_factory):
    """Launch once; the tests below check different aspects of the same run."""
    from rlx.cli import main

    repo = tmp_path_factory.mktemp("repo")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "reward.py").write_text("def compute_score(*a):\n    return 0.0\n")
    subprocess.run([*git, "add", "reward.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    (repo / "reward.py").write_text("def compute_score(*a):\n    return 1.0  # uncommitted change\n")
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    uri = f"sqlite:///{repo / 'store' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(repo)
        mp.setenv("RLX_HOME", str(repo / ".rlx"))
        mp.setenv("RLX_SMOKE_ENTRY", "rlx.launch.testjob")
        mp.setenv("WANDB_API_KEY", CANARY_WANDB)
        mp.setenv("HF_TOKEN", CANARY_HF)
        mp.setenv("MY_SERVICE_PASSWORD", CANARY_PLAIN)
        mp.delenv("RAY_ADDRESS", raising=False)
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["train", "--algo", "grpo", "--smoke", "--steps", "3", "--address", ray_head.address,
                         "--tracking-uri", uri, "--format", "json", f"+trainer.wandb_api_key={CANARY_CFG}",
                         f"+trainer.note='see {CANARY_PLAIN}'"])
    return {"code": code, "out": out.getvalue(), "err": err.getvalue(), "repo": repo, "uri": uri, "commit": commit,
            "summary": json.loads(out.getvalue()) if code == 0 else None, "address": ray_head.address}


def test_successful_job_logs_metrics_and_verl_params_into_the_run_rlx_created(launched):
    assert launched["code"] == 0, launched["err"]
    s = launched["summary"]
    assert s["state"] == "SUCCEEDED" and s["submission_id"] == f"rlx-{s['run_id']}"
    client = _client(launched["uri"])
    run = client.get_run(s["run_id"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "rlx"  # trainer.project_name of the grpo preset
    assert [m.step for m in client.get_metric_history(s["run_id"], "critic/score/mean")] == [1, 2, 3]
    params = run.data.params
    assert params["rlx/algo"] == "grpo"
    assert params["algorithm/adv_estimator"] == "grpo"  # logged by the job, verl-style
    assert params["trainer/logger/list_len"]
    tags = run.data.tags
    assert tags["rlx.algo"] == "grpo" and tags["rlx.preset"] == "grpo" and tags["verl.version"] == "0.9.1"
    assert tags["rlx.submission_id"] == s["submission_id"] and tags["rlx.cluster_address"] == launched["address"]
    assert tags["rlx.job_status"] == "SUCCEEDED"
    arts = {a.path for a in client.list_artifacts(s["run_id"], "rlx")}
    assert {"rlx/resolved.yaml", "rlx/provenance.json", "rlx/command.txt", "rlx/pip-freeze.txt"} <= arts
    provenance = json.loads(Path(client.download_artifacts(s["run_id"], "rlx/provenance.json",
                                                           str(launched["repo"]))).read_text())
    adv = next(p for p in provenance if p["key"] == "algorithm.adv_estimator")
    assert adv["value"] == "grpo" and adv["source"].startswith("preset") and adv["default"] == "gae"
    info = _jobs(launched["address"]).get_job_info(s["submission_id"])
    assert info.status.value == "SUCCEEDED" and info.metadata["rlx.run_id"] == s["run_id"]


def test_dirty_tree_is_recorded_with_its_diff(launched):
    s = launched["summary"]
    client = _client(launched["uri"])
    tags = client.get_run(s["run_id"]).data.tags
    assert tags["rlx.git.commit"] == launched["commit"] and tags["rlx.git.dirty"] == "true"
    diff = Path(client.download_artifacts(s["run_id"], "rlx/git.diff", str(launched["repo"]))).read_text()
    assert "+    return 1.0  # uncommitted change" in diff


def test_secrets_are_absent_from_the_store_the_job_and_the_output(launched):
    s = launched["summary"]
    canaries = [CANARY_CFG, CANARY_WANDB, CANARY_HF, CANARY_PLAIN]
    store = launched["repo"] / "store"
    files = [p for p in store.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files) and any(p.name == "resolved.yaml" for p in files)
    for path in files:
        data = path.read_bytes()
        for c in canaries:
            assert c.encode() not in data, f"{c} leaked into {path}"
    info = _jobs(launched["address"]).get_job_info(s["submission_id"])
    job_text = json.dumps({"entrypoint": info.entrypoint, "metadata": info.metadata, "runtime_env": info.runtime_env})
    run_dir = launched["repo"] / ".rlx" / "runs" / s["run_id"]
    local = "".join(p.read_text() for p in run_dir.rglob("*") if p.is_file())
    for c in canaries:
        assert c not in job_text and c not in launched["out"] and c not in launched["err"] and c not in local
    assert "warning: trainer.wandb_api_key holds a literal secret" in launched["err"]


def test_the_rlx_param_namespace_cannot_collide_with_verls_flattened_config(launched):
    from rlx.launch.testjob import verl_style_params
    from rlx.resolve import verl_defaults

    assert "rlx" not in verl_defaults()  # verl's params are its config flattened: none can start with `rlx/`
    verl_keys = set(verl_style_params(dict(__import__("omegaconf").OmegaConf.to_container(verl_defaults()))))
    assert not any(k.startswith("rlx/") for k in verl_keys)
    params = _client(launched["uri"]).get_run(launched["summary"]["run_id"]).data.params
    mine = [k for k in params if k.startswith("rlx/")]
    assert mine and all(k not in verl_keys for k in mine)


# ---- failures and lifecycle ---------------------------------------------------------------------------------------


def test_failing_job_ends_failed_with_the_log_tail_and_exit_4(env, ray_head, mlflow_uri, rlx_cli):
    code, out, err = _train(rlx_cli, ray_head, mlflow_uri, "--task", "fail")
    assert code == 4, err
    s = json.loads(out)
    assert s["state"] == "FAILED"
    client = _client(mlflow_uri)
    run = client.get_run(s["run_id"])
    assert run.info.status == "FAILED" and run.data.tags["rlx.job_status"] == "FAILED"
    tail = Path(client.download_artifacts(s["run_id"], "rlx/job-log-tail.txt", str(env))).read_text()
    assert "failing on purpose" in tail
    # One readable line: the exit code, then the job's last log lines whole (testjob's `fail` task exits 3).
    assert s["message"].startswith("failed: exit code 3 — last lines: ")
    assert s["message"].endswith(" | testjob: failing on purpose (task=fail)")
    assert "\n" not in s["message"] and len(s["message"]) < 300
    assert run.data.tags["rlx.job_message"] == s["message"]


def test_runs_stop_ends_the_run_killed(env, ray_head, mlflow_uri, rlx_cli):
    code, out, err = _train(rlx_cli, ray_head, mlflow_uri, "--task", "sleep", "--detach")
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    client = _client(mlflow_uri)
    wait_for(lambda: client.get_run(run_id).data.metrics.get("training/global_step"), 120, "the job's first step")
    code, out, err = rlx_cli("runs", "ls", "--format", "json")
    assert code == 0 and [r["ray_status"] for r in json.loads(out) if r["run_id"] == run_id] == ["RUNNING"]
    code, out, err = rlx_cli("runs", "stop", run_id[:10], "--format", "json")
    assert code == 0, err
    assert json.loads(out)["state"] == "STOPPED"
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["rlx.job_status"] == "STOPPED"
    code, out, _ = rlx_cli("runs", "logs", run_id, "--format", "json")
    assert code == 0 and "step:1" in json.loads(out)["logs"]


def test_retrying_the_same_submission_creates_one_job(ray_head):
    from rlx.launch.jobs import Jobs

    jobs = Jobs(ray_head.address)
    sid = f"rlx-retry{free_port()}"
    kw = dict(entrypoint=f"{sys.executable} -c 'pass'", submission_id=sid, metadata={"rlx.run_id": sid},
              runtime_env={})
    assert jobs.submit(run_id=sid, **kw) == sid
    assert jobs.submit(run_id=sid, **kw) == sid  # e.g. a retry after a lost response: adopted, not relaunched
    assert [j.submission_id for j in jobs.list()].count(sid) == 1
    wait_for(lambda: jobs.status(sid) == "SUCCEEDED", 120, "the job to finish")


def test_unreachable_ray_exits_3_and_leaves_no_run_running(env, mlflow_uri, rlx_cli):
    code, out, err = rlx_cli("train", "--algo", "grpo", "--smoke", "--address", f"http://127.0.0.1:{free_port()}",
                             "--tracking-uri", mlflow_uri)
    assert code == 3
    assert "cannot reach Ray" in err and "hint:" in err and "--address" in err
    runs = _client(mlflow_uri).search_runs([e.experiment_id for e in _client(mlflow_uri).search_experiments()])
    assert [r for r in runs if r.info.status == "RUNNING"] == []
    assert not (env / ".rlx" / "runs").exists() or not any((env / ".rlx" / "runs").iterdir())


def test_unreachable_mlflow_exits_3_before_submitting(env, ray_head, rlx_cli):
    before = len(_jobs(ray_head.address).list_jobs())
    code, out, err = rlx_cli("train", "--algo", "grpo", "--smoke", "--address", ray_head.address,
                             "--tracking-uri", f"http://127.0.0.1:{free_port()}")
    assert code == 3
    assert "MLflow" in err and "hint:" in err
    assert len(_jobs(ray_head.address).list_jobs()) == before


def test_eight_gpus_on_a_cpu_cluster_exits_3_and_submits_nothing(env, ray_head, mlflow_uri, rlx_cli):
    before = len(_jobs(ray_head.address).list_jobs())
    code, out, err = rlx_cli("train", "--algo", "grpo", "trainer.n_gpus_per_node=8", "--address", ray_head.address,
                             "--tracking-uri", mlflow_uri)
    assert code == 3, err
    assert "0 GPU(s)" in err and "asks for 8" in err and "--smoke" in err
    assert len(_jobs(ray_head.address).list_jobs()) == before
    assert _client(mlflow_uri).search_runs([e.experiment_id for e in _client(mlflow_uri).search_experiments()]) == []


def test_no_gpu_and_no_cluster_stops_after_validation_without_a_head(env, rlx_cli, monkeypatch, tmp_path_factory):
    bare = tmp_path_factory.mktemp("bare")  # no store here: rlx would create ./mlflow.db if it touched tracking
    monkeypatch.chdir(bare)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, out, err = rlx_cli("train", "--algo", "grpo")
    assert code == 3
    assert "no cluster was given" in err and "--smoke" in err and "--address" in err
    assert not (bare / "mlflow.db").exists()  # stopped before touching tracking or starting Ray


@pytest.mark.smoke
def test_local_smoke_run_is_tracked_like_a_job(env, mlflow_uri, rlx_cli):
    # --local: the real CPU engine in this process, no Ray; rlx owns the MLflow run and logs each step.
    pytest.importorskip("rlx.smoke.engine")
    code, out, err = rlx_cli("train", "--algo", "grpo", "--smoke", "--local", "--steps", "1", "--tracking-uri",
                             mlflow_uri, "--format", "json")
    assert code == 0, err
    s = json.loads(out)
    run = _client(mlflow_uri).get_run(s["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["rlx.job_status"] == "SUCCEEDED"
    assert [m.step for m in _client(mlflow_uri).get_metric_history(s["run_id"], "critic/score/mean")] == [1]
    assert run.data.params["algorithm/adv_estimator"] == "grpo" and run.data.params["rlx/smoke"] == "true"
