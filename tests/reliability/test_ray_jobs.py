"""Rows 7-11, 15, 16 and 27 of reliability.md section 6: Ray Jobs submission, through `rlx train` and `rlx runs`.

One private Ray head on loopback (`ray_head`, auth disabled explicitly) serves every test here; each test stops the
jobs it started. Jobs run the launcher's diagnostic entrypoint (`RLX_SMOKE_ENTRY=rlx.launch.testjob`): verl's metric
names and MLflow behaviour without torch.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import rel

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

SAFE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@pytest.fixture
def jobs(ray_head):
    return rel.jobs_client(ray_head.address)


@pytest.fixture
def started(jobs):
    """Run ids a test launched; their jobs are stopped at teardown."""
    ids: list[str] = []
    yield ids
    rel.stop_all(jobs, ids)


# ---- row 7 ---------------------------------------------------------------------------------------------------------

BAD_NAMES = {"dotdot": "../../etc/x", "slash": "a/b", "long": "r" * 300}
ODD_NAMES = {"spaces": "my run 1", "unicode": "läuft-über-ünï"}


@pytest.mark.parametrize("case", BAD_NAMES)
def test_row07_unsafe_run_names_are_rejected_client_side(case, ray_head, jobs, rlx_env):
    before = len(jobs.list_jobs())
    r = rel.submit(rlx_env, ray_head.address, "--name", BAD_NAMES[case])
    rel.assert_clean_error(r, (1, 2), mentions=("name",))
    assert len(jobs.list_jobs()) == before, "something was created on the cluster"
    assert not rel.all_runs(rlx_env), "an MLflow run was created for a rejected name"


@pytest.mark.parametrize("case", ODD_NAMES)
def test_row07_odd_run_names_never_reach_the_submission_id(case, ray_head, jobs, rlx_env, started):
    """Spaces and Unicode are fine in an MLflow run name; the Ray submission id rlx derives stays `[a-z0-9_-]`."""
    r = rel.submit(rlx_env, ray_head.address, "--name", ODD_NAMES[case], task="copy")
    if r.code != 0:  # rejecting is also acceptable, as long as it is clean and nothing was created
        rel.assert_clean_error(r, (1, 2), mentions=("name",))
        return
    rid = rel.run_id_of(r)
    started.append(rid)
    job = rel.job_of(jobs, rid)
    assert job is not None and SAFE_ID.match(job.submission_id), job
    assert rel.mlflow_client(rlx_env).get_run(rid).info.run_name == ODD_NAMES[case]


# ---- row 8 ---------------------------------------------------------------------------------------------------------

RUNTIME_ENV_INPUTS = {
    "unknown_runtime_env_key": "cluster:\n  runtime_env: {not_a_field: 1}\n",
    "non_string_env_var": "cluster:\n  env_vars: {NUM_THREADS: 4}\n",
    "missing_working_dir": "cluster:\n  working_dir: /no/such/dir/anywhere\n",
}


@pytest.mark.parametrize("case", RUNTIME_ENV_INPUTS)
def test_row08_runtime_env_input_is_rejected_client_side(case, tmp_path, ray_head, jobs, rlx_env):
    f = tmp_path / "exp.yaml"
    f.write_text("algo: grpo\n" + RUNTIME_ENV_INPUTS[case])
    before = len(jobs.list_jobs())
    r = rel.submit(rlx_env, ray_head.address, "-c", str(f))
    rel.assert_clean_error(r, (1, 2), mentions=("cluster.",))
    assert len(jobs.list_jobs()) == before


def test_row08_submitted_runtime_env_is_allow_listed_strings(ray_head, jobs, rlx_env, started, tmp_path):
    """What rlx sends: known runtime_env keys only, string env vars only, no big working_dir (ours is a few KiB)."""
    big = tmp_path / "cwd"
    big.mkdir()
    (big / "weights.bin").write_bytes(os.urandom(1024) * 100 * 1024)  # 100 MiB in the cwd must not be shipped
    env = dict(rlx_env)
    r = rel.rlx("train", "--algo", "grpo", "--smoke", "--task", "copy", "--detach", "--format", "json",
                "--address", ray_head.address, env={**env, **rel.TESTJOB}, cwd=big, timeout=120)
    assert r.code == 0, r.text[-3000:]
    rid = rel.run_id_of(r)
    started.append(rid)
    info = rel.job_of(jobs, rid)
    runtime_env = info.runtime_env or {}
    assert set(runtime_env) <= {"env_vars", "working_dir", "_ray_commit"}, runtime_env
    assert all(isinstance(v, str) for v in (runtime_env.get("env_vars") or {}).values())
    assert "weights.bin" not in str(runtime_env)


# ---- rows 9 and 10 -------------------------------------------------------------------------------------------------


def test_row09_same_submission_twice_gives_one_job(ray_head, jobs):
    """A retried submission (same id, same rlx run) adopts the existing job; another run's id is refused."""
    from rlx.errors import RlxError
    from rlx.launch.jobs import Jobs

    sid = f"rlx-rel9-{os.getpid()}"
    client = Jobs(ray_head.address)
    kw = dict(entrypoint="python -c 'import time; time.sleep(60)'", submission_id=sid, run_id="run9",
              metadata={"rlx.run_id": "run9"}, runtime_env={})
    try:
        assert client.submit(**kw) == sid
        assert client.submit(**kw) == sid  # Ray's "already exists" 500, adopted
        assert [j.submission_id for j in jobs.list_jobs()].count(sid) == 1
        with pytest.raises(RlxError, match="did not submit|already"):
            client.submit(**{**kw, "run_id": "someone-else", "metadata": {"rlx.run_id": "someone-else"}})
    finally:
        jobs.stop_job(sid)
        rel.wait_for(lambda: jobs.get_job_status(sid).is_terminal(), 60, "the row-9 job to stop")


def test_row10_parallel_submissions_with_one_id_give_one_job(ray_head, jobs):
    sid = f"rlx-rel10-{os.getpid()}"
    script = textwrap.dedent(
        f"""
        from rlx.launch.jobs import Jobs
        from rlx.errors import RlxError
        try:
            print("OK", Jobs({ray_head.address!r}).submit(entrypoint="python -c 'import time; time.sleep(60)'",
                  submission_id={sid!r}, run_id="run10", metadata={{"rlx.run_id": "run10"}}, runtime_env={{}}))
        except RlxError as e:
            print("REFUSED", e.message)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
        for (out, err), p in zip(outs, procs, strict=True):
            assert p.returncode == 0 and "Traceback" not in err, err[-2000:]
            assert out.startswith(("OK", "REFUSED")), out
        assert any(o.startswith("OK") for o, _ in outs)
        assert [j.submission_id for j in jobs.list_jobs()].count(sid) == 1
    finally:
        jobs.stop_job(sid)
        rel.wait_for(lambda: jobs.get_job_status(sid).is_terminal(), 60, "the row-10 job to stop")


# ---- row 11 --------------------------------------------------------------------------------------------------------

SIGINT_POINTS = ["tracking_store", "record_written", "submitted", "following"]


@pytest.mark.parametrize("point", SIGINT_POINTS)
def test_row11_sigint_during_submit_leaves_a_reconcilable_state(point, ray_head, jobs, rlx_env, started, tmp_path):
    """Ctrl-C at each stage of `rlx train`: exit 130 (or 0 once detached), then `rlx runs ls` reconciles every
    record: no record stuck in PREPARED/SUBMITTING, no MLflow run RUNNING without a live job."""
    home = tmp_path / "rlx-home"
    args = [rel.RLX, "train", "--algo", "grpo", "--smoke", "--task", "sleep", "--address", ray_head.address]
    if point != "following":
        args.append("--detach")
    p = subprocess.Popen(args, env={**rlx_env, **rel.TESTJOB}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)

    def record_state():
        recs = list(home.glob("runs/*/record.json"))
        return recs and __import__("json").loads(recs[0].read_text()).get("state")

    try:
        if point == "tracking_store":  # rlx opened the MLflow store: the run is about to be created
            db = Path(rlx_env["MLFLOW_TRACKING_URI"][len("sqlite:///"):])
            rel.wait_for(lambda: db.exists() or db.with_name(db.name + ".lock").exists(), 90, "the tracking store")
        elif point == "record_written":
            rel.wait_for(lambda: record_state() in ("PREPARED", "SUBMITTING", "SUBMITTED"), 60, "the run record")
        elif point in ("submitted", "following"):
            rel.wait_for(lambda: record_state() == "SUBMITTED", 60, "the submission")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
    assert "Traceback" not in err, err[-3000:]
    assert p.returncode in (0, 130), (p.returncode, err[-2000:])
    for f in home.glob("runs/*/record.json"):
        started.append(f.parent.name)
    r, listing = rel.runs_json(rlx_env, "ls")
    assert r.code == 0, r.text[-2000:]
    for rec in home.glob("runs/*/record.json"):
        state = __import__("json").loads(rec.read_text())["state"]
        assert state not in ("PREPARED", "SUBMITTING"), f"record left {state} after reconciliation"
    rel.assert_no_running_ghosts(rlx_env, jobs)


# ---- row 15 --------------------------------------------------------------------------------------------------------

FAILURES = {
    "exit_nonzero": ({}, "fail", "failing on purpose"),
    "command_not_found": ({"RLX_JOB_PYTHON": "/nonexistent/bin/python-rlx"}, "copy", "not found"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_row15_failed_job_is_reported_with_error_type_and_log_tail(case, ray_head, jobs, rlx_env, started):
    extra_env, task, log_line = FAILURES[case]
    r = rel.submit({**rlx_env, **extra_env}, ray_head.address, task=task, detach=False, timeout=180,
                   what=f"failed job reported ({case})")
    assert r.code == 4, r.text[-3000:]
    assert "Traceback" not in r.err
    rid = rel.run_id_of(r)
    started.append(rid)
    run = rel.mlflow_client(rlx_env).get_run(rid)
    assert run.info.status == "FAILED"
    assert run.data.tags.get("rlx.job_status") == "FAILED"
    tail = rel.mlflow_client(rlx_env).download_artifacts(rid, "rlx/job-log-tail.txt")
    assert log_line in open(tail).read()
    info = rel.job_of(jobs, rid)
    assert str(info.error_type) and "ENTRYPOINT" in str(info.error_type).upper()
    _, shown = rel.runs_json(rlx_env, "show", rid)
    assert shown is not None and "FAILED" in str(shown)


def test_row15_runtime_env_pip_is_never_sent(ray_head, jobs, rlx_env, started):
    """rlx sends no `pip`/`conda`/`uv` runtime_env (nodes are provisioned), so a pip failure cannot start there."""
    r = rel.submit(rlx_env, ray_head.address, task="copy")
    assert r.code == 0, r.text[-3000:]
    rid = rel.run_id_of(r)
    started.append(rid)
    runtime_env = rel.job_of(jobs, rid).runtime_env or {}
    assert not {"pip", "conda", "uv"} & set(runtime_env), runtime_env


# ---- row 16 --------------------------------------------------------------------------------------------------------


def test_row16_stop_running_pending_and_terminal(own_head, rlx_env, tmp_path):
    head = own_head(num_cpus=1)  # one CPU: a second job waits, PENDING
    client = rel.jobs_client(head.address)
    ids = []
    try:
        first = rel.submit(rlx_env, head.address)
        assert first.code == 0, first.text[-3000:]
        ids.append(rel.run_id_of(first))
        rel.wait_for(lambda: rel.job_of(client, ids[0]).status.value == "RUNNING", 60, "the first job to run")
        second = rel.submit(rlx_env, head.address)
        assert second.code == 0, second.text[-3000:]
        ids.append(rel.run_id_of(second))

        pending = rel.rlx("runs", "stop", ids[1], env=rlx_env, timeout=120, what="stop a PENDING job")
        assert pending.code in (0, 3), pending.text[-3000:]
        assert "Traceback" not in pending.text
        status = rel.job_of(client, ids[1]).status.value
        if status != "STOPPED":
            assert "PENDING" in pending.text and "stop" in pending.text.lower(), pending.text

        running = rel.rlx("runs", "stop", ids[0], env=rlx_env, timeout=120, what="stop a RUNNING job")
        assert running.code == 0, running.text[-3000:]
        rel.wait_for(lambda: rel.job_of(client, ids[0]).status.value == "STOPPED", 60, "the job to stop")
        rel.wait_for(lambda: rel.mlflow_client(rlx_env).get_run(ids[0]).info.status == "KILLED", 30,
                     "the run to be KILLED")

        again = rel.rlx("runs", "stop", ids[0], env=rlx_env, timeout=60)
        assert again.code == 0 and "Traceback" not in again.text, again.text[-2000:]
    finally:
        rel.stop_all(client, ids)


# ---- row 27 --------------------------------------------------------------------------------------------------------


def test_row27_ray_address_env_does_not_silently_win(ray_head, jobs, rlx_env, started, blackhole):
    """RAY_ADDRESS names another cluster (a hung one here); --address wins and the address used is reported."""
    env = {**rlx_env, "RAY_ADDRESS": blackhole.url}
    r = rel.submit(env, ray_head.address, task="copy")
    assert r.code == 0, r.text[-3000:]
    started.append(rel.run_id_of(r))
    assert ray_head.address in r.text
    assert blackhole.accepted == 0

    # Without --address, RAY_ADDRESS is the cluster, and rlx says so (here: it is unreachable, named in the error).
    r2 = rel.submit(env, None, task="copy", timeout=120)
    rel.assert_clean_error(r2, 3, mentions=(blackhole.url.split("//")[1],))
