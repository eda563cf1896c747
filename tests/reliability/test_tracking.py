"""Rows 18-20 and 24-26 of reliability.md section 6: the MLflow store under faults, and verl's view of the run."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import rel

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


@pytest.fixture
def jobs(ray_head):
    return rel.jobs_client(ray_head.address)


def _init_store(env) -> str:
    """Create the sqlite store's tables (what rlx's first use does under its lock) and return the db path."""
    rel.mlflow_client(env).search_experiments()
    return env["MLFLOW_TRACKING_URI"][len("sqlite:///"):]


def _default_mlflow_http(env: dict[str, str]) -> dict[str, str]:
    """The environment without the suite's MLflow HTTP settings: rlx's own defaults are what is measured."""
    return {k: v for k, v in env.items() if not k.startswith("MLFLOW_HTTP_REQUEST_")}


# ---- row 18 --------------------------------------------------------------------------------------------------------


def test_row18_locked_store_fails_clearly_and_submits_nothing(ray_head, jobs, rlx_env):
    db = _init_store(rlx_env)
    lock = sqlite3.connect(db, isolation_level=None, timeout=1)
    lock.execute("BEGIN EXCLUSIVE")
    before = len(jobs.list_jobs())
    try:
        r = rel.submit(rlx_env, ray_head.address, what="submit with the tracking store locked")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    rel.assert_clean_error(r, 3, mentions=("locked",))
    assert r.seconds < 60, f"took {r.seconds:.1f}s (MLflow busy_timeout 20 s + start-up)"
    assert len(jobs.list_jobs()) == before, "a job was submitted without its run"
    home = Path(rlx_env["RLX_HOME"])
    for rec in home.glob("runs/*/record.json"):
        assert json.loads(rec.read_text())["state"] not in ("SUBMITTING", "SUBMITTED")


# ---- row 19 --------------------------------------------------------------------------------------------------------


def test_row19_eight_concurrent_submits_on_a_fresh_store(ray_head, jobs, rlx_env, tmp_path):
    env = {**rlx_env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}", **rel.TESTJOB}
    args = [rel.RLX, "train", "--algo", "grpo", "--smoke", "--task", "copy", "--steps", "1", "--detach",
            "--format", "json", "--address", ray_head.address]
    t0 = time.monotonic()
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    outs = [p.communicate(timeout=300) for p in procs]
    rel.measured("8 concurrent submits on a fresh store", time.monotonic() - t0)
    ids = []
    try:
        for (out, err), p in zip(outs, procs, strict=True):
            assert "duplicate column" not in err and "already exists" not in err, err[-2000:]
            assert p.returncode == 0 and "Traceback" not in err, err[-2000:]
            ids.append(json.loads(out)["run_id"])
        assert len(set(ids)) == 8
        assert len(rel.all_runs(env)) == 8
    finally:
        rel.stop_all(jobs, ids)


# ---- row 20 --------------------------------------------------------------------------------------------------------

TRACKING_BOUND = 15.0


@pytest.mark.parametrize("fault", ["refused", "blackhole"])
def test_row20_tracking_server_down(fault, ray_head, jobs, rlx_env, blackhole, refused_url):
    url = blackhole.url if fault == "blackhole" else refused_url
    env = _default_mlflow_http(rlx_env)
    before = len(jobs.list_jobs())
    hang = blackhole if fault == "blackhole" else None
    r = rel.submit(env, ray_head.address, "--tracking-uri", url, what=f"submit, tracking {fault}", hang=hang)
    rel.assert_clean_error(r, 3, mentions=(url.split("//")[1],))
    assert len(jobs.list_jobs()) == before, "submitted although tracking is down"
    if hang is not None:
        blackhole.first_accept = None
    c = rel.rlx("compare", "runs", "--tracking-uri", url, env=env, what=f"compare, tracking {fault}", hang=hang)
    rel.assert_clean_error(c, 3)
    if hang is not None:
        assert r.seconds < TRACKING_BOUND, f"submit hung for {r.seconds:.1f}s"
        assert c.seconds < TRACKING_BOUND, f"compare hung for {c.seconds:.1f}s"


# ---- row 24 --------------------------------------------------------------------------------------------------------


def test_row24_run_lands_in_verls_experiment_and_rlx_keys_do_not_collide(ray_head, jobs, rlx_env):
    r = rel.submit(rlx_env, ray_head.address, "--experiment", "rel24-project", "--name", "rel24", task="copy",
                   detach=False, timeout=180)
    assert r.code == 0, r.text[-3000:]
    rid = rel.run_id_of(r)
    client = rel.mlflow_client(rlx_env)
    run = client.get_run(rid)
    assert client.get_experiment(run.info.experiment_id).name == "rel24-project"
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params.get("trainer/project_name") == "rel24-project"  # the verl-like driver logged its config here
    rlx_keys = [k for k in params if k.startswith("rlx/")]
    assert rlx_keys and not [k for k in params if k.startswith("rlx.")]
    assert not {k for k in params if not k.startswith("rlx/")} & {k[4:] for k in rlx_keys}


def test_row24_the_two_mlflow_failures_rlx_avoids_are_real(rlx_env, monkeypatch):
    """Reproduce both MlflowExceptions: a driver attaching to a run of another experiment, and a param changed."""
    import mlflow
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_URI", rlx_env["MLFLOW_TRACKING_URI"])
    client = rel.mlflow_client(rlx_env)
    exp_a = client.create_experiment("rlx-chosen")
    run = client.create_run(exp_a)
    client.log_param(run.info.run_id, "rlx/algo", "grpo")
    mlflow.set_tracking_uri(rlx_env["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("verl-project-name")
    with pytest.raises(MlflowException, match="experiment ID does not match"):
        mlflow.start_run(run_id=run.info.run_id, experiment_id=mlflow.get_experiment_by_name(
            "verl-project-name").experiment_id)
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        client.log_param(run.info.run_id, "rlx/algo", "gspo")
    client.log_param(run.info.run_id, "rlx/algo", "grpo")  # the same value again is fine


# ---- row 25 --------------------------------------------------------------------------------------------------------


class _Forward:
    """A TCP forwarder 127.0.0.2:P -> the head's dashboard: the cluster looks remote to rlx, and still answers."""

    def __init__(self, target_port: int):
        import socket

        self.target = target_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.2", 0))
        self.sock.listen(32)
        self.url = f"http://127.0.0.2:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import socket

        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def test_row25_remote_cluster_with_a_local_sqlite_store(ray_head, jobs, rlx_env):
    import sys

    fwd = _Forward(int(ray_head.address.rsplit(":", 1)[1]))
    env = {**rlx_env, "RLX_JOB_PYTHON": sys.executable}
    try:
        r = rel.submit(env, fwd.url, task="copy", what="remote cluster + local sqlite")
    finally:
        fwd.close()
    assert "Traceback" not in r.text
    assert "sqlite" in r.err and ("reach" in r.err.lower() or "cluster" in r.err.lower()), r.err[-2000:]
    if r.code != 0:  # refusing is the other acceptable policy
        rel.assert_clean_error(r, (1, 3))
        return
    rid = rel.run_id_of(r)
    try:
        env_vars = (rel.job_of(jobs, rid).runtime_env or {}).get("env_vars", {})
        assert env_vars.get("MLFLOW_RUN_ID") == rid
        assert env_vars.get("MLFLOW_TRACKING_URI") == rlx_env["MLFLOW_TRACKING_URI"]
    finally:
        rel.stop_all(jobs, [rid])


# ---- row 26 --------------------------------------------------------------------------------------------------------

_RUN_TABLES = ("params", "tags", "metrics", "latest_metrics")


def _clone_runs(db: str, run_id: str, n: int, names) -> None:
    """Copy one real MLflow run `n` times inside MLflow's own schema (fast: one transaction)."""
    con = sqlite3.connect(db)
    try:
        run_cols = [c[1] for c in con.execute("PRAGMA table_info(runs)")]
        cols = {t: [c[1] for c in con.execute(f"PRAGMA table_info({t})")] for t in _RUN_TABLES}
        with con:
            for i in range(n):
                new = uuid.uuid4().hex
                name = names(i)
                sel = ", ".join("?" if c == "run_uuid" else ("?" if c == "name" else c) for c in run_cols)
                args = [new if c == "run_uuid" else name for c in run_cols if c in ("run_uuid", "name")]
                con.execute(f"INSERT INTO runs ({', '.join(run_cols)}) SELECT {sel} FROM runs WHERE run_uuid = ?",
                            [*args, run_id])
                for t, tc in cols.items():
                    sel = ", ".join("?" if c == "run_uuid" else c for c in tc)
                    extra = " AND key != 'mlflow.runName'" if t == "tags" else ""
                    con.execute(f"INSERT INTO {t} ({', '.join(tc)}) SELECT {sel} FROM {t} WHERE run_uuid = ?{extra}",
                                [new, run_id])
                con.execute("INSERT INTO tags (key, value, run_uuid) VALUES ('mlflow.runName', ?, ?)", [name, new])
    finally:
        con.close()


def test_row26_compare_over_3000_runs_with_hostile_names_and_filters(rlx_env):
    from mlflow.entities import Metric, Param

    client = rel.mlflow_client(rlx_env)
    exp = client.create_experiment("rel26")
    seed = client.create_run(exp, run_name="seed", tags={"rlx.algo": "grpo", "rlx.job_status": "SUCCEEDED"})
    rid = seed.info.run_id
    client.log_batch(rid, params=[Param("algorithm/adv_estimator", "grpo"), Param("data/train_batch_size", "16")],
                     metrics=[Metric("critic/score/mean", s / 10, 0, s) for s in range(10)], synchronous=True)
    client.set_terminated(rid, "FINISHED")
    _clone_runs(rlx_env["MLFLOW_TRACKING_URI"][len("sqlite:///"):], rid, 3000,
                lambda i: "o'brien \"quoted\"" if i == 7 else f"run-{i:04d}")
    r = rel.rlx("compare", "runs", "-e", "rel26", "--format", "json", env=rlx_env, timeout=240,
                what="compare runs over 3,001 runs")
    assert r.code == 0, r.text[-3000:]
    assert len(json.loads(r.out)["runs"]) == 3001

    q = rel.rlx("compare", "runs", "-e", "rel26", "o'brien \"quoted\"", "--format", "json", env=rlx_env, timeout=120)
    assert q.code == 0, q.text[-3000:]
    assert [x["name"] for x in json.loads(q.out)["runs"]] == ["o'brien \"quoted\""]

    for bad in ("params.`algorithm/adv_estimator` = 'grpo' OR params.`data/train_batch_size` = '16'",
                "params.`algorithm/adv_estimator` IN ('grpo', 'gspo')",
                "params.`algorithm/adv_estimator` = 'grpo'; DROP TABLE runs"):
        b = rel.rlx("compare", "runs", "-e", "rel26", "--filter", bad, env=rlx_env, timeout=120)
        rel.assert_clean_error(b, 1)
        assert "filter" in b.err.lower()
    assert len(client.search_runs([exp], max_results=5)) == 5  # the store is intact
