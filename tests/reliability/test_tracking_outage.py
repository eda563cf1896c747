"""Row 37 of docs/reliability.md: a tracking outage during a real smoke run loses nothing and stops nothing.

A real `mlflow server` (sqlite store) is SIGKILLed when the job has logged step 26. In the first case it is restarted
on the same port and store 20 s later, while the run trains on; in the second it stays down until after the run,
and `rlx runs sync` sends what waited. Either way the run ends holding every step of `critic/score/mean` exactly once,
FINISHED, and the client exits 0.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import rel

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

KILL_AT = 26
OUTAGE_S = 20.0


def _env(rlx_env: dict[str, str], url: str) -> dict[str, str]:
    """rlx's own MLflow HTTP defaults (not the suite's fast ones), tracking on the server."""
    env = {k: v for k, v in rlx_env.items() if not k.startswith("MLFLOW_HTTP_REQUEST_")}
    env["MLFLOW_TRACKING_URI"] = url
    return env


def _train(env: dict[str, str], cwd: Path, steps: int) -> tuple[subprocess.Popen, Path, Path]:
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    proc = subprocess.Popen([rel.RLX, "train", "--algo", "grpo", "--smoke", "--steps", str(steps)], env=env, cwd=cwd,
                            stdout=open(out, "w"), stderr=open(err, "w"))
    return proc, out, err


def _wait_for_step(proc: subprocess.Popen, out: Path, step: int, timeout: float = 240) -> None:
    """Until the job's own log line for `step` was streamed (the step's metrics were handed to the sender)."""
    rel.wait_for(lambda: f"step {step}/" in out.read_text() or proc.poll() is not None, timeout, f"step {step}")
    assert proc.poll() is None, f"the run ended before step {step}:\n{out.read_text()[-3000:]}"


def _history(url: str, run_id: str, key: str = "critic/score/mean") -> list[int]:
    from mlflow.tracking import MlflowClient

    return sorted(m.step for m in MlflowClient(url).get_metric_history(run_id, key))


def _only_run(env: dict[str, str]) -> str:
    runs = list((Path(env["RLX_HOME"]) / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0].name


def test_row37_server_killed_at_a_step_and_back_20s_later(rlx_env, tmp_path):
    server = rel.MlflowServer(tmp_path).start()
    env = _env(rlx_env, server.url)
    steps = 400
    t0 = time.monotonic()
    proc, out, err = _train(env, tmp_path, steps)
    try:
        _wait_for_step(proc, out, KILL_AT)
        server.kill()
        down = time.monotonic()
        time.sleep(OUTAGE_S)
        server.start()
        rel.measured("outage: server back after", time.monotonic() - down)
        assert proc.wait(420) == 0, err.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        server.kill()
    rel.measured("outage: 400-step smoke run with a 20 s outage", time.monotonic() - t0)
    log, notes = out.read_text(), err.read_text()
    assert "Traceback" not in notes and "internal error" not in notes, notes[-3000:]
    assert "tracking unreachable" in log and "tracking is back" in log, "the outage did not hit the run"
    run_id = _only_run(env)
    server.start()
    try:
        assert _history(server.url, run_id) == list(range(1, steps + 1))  # every step, exactly once
        assert _history(server.url, run_id, "training/global_step") == list(range(1, steps + 1))
        from mlflow.tracking import MlflowClient

        run = MlflowClient(server.url).get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.tags["rlx.job_status"] == "SUCCEEDED"
    finally:
        server.kill()


def test_row37_server_down_until_after_the_run_then_runs_sync(rlx_env, tmp_path):
    server = rel.MlflowServer(tmp_path).start()
    env = _env(rlx_env, server.url)
    steps = 200
    proc, out, err = _train(env, tmp_path, steps)
    try:
        _wait_for_step(proc, out, KILL_AT)
        server.kill()
        t0 = time.monotonic()
        code = proc.wait(420)
    finally:
        if proc.poll() is None:
            proc.kill()
    rel.measured("outage outlasting the run: client end after the kill", time.monotonic() - t0)
    notes = err.read_text()
    assert code == 0, notes[-3000:]
    assert "Traceback" not in notes and "internal error" not in notes, notes[-3000:]
    run_id = _only_run(env)
    assert f"rlx runs sync {run_id}" in notes and "succeeded" in notes
    record = json.loads((Path(env["RLX_HOME"]) / "runs" / run_id / "record.json").read_text())
    assert record["state"] == "SUCCEEDED"  # Ray's verdict holds although MLflow was not told

    down = rel.rlx("runs", "sync", run_id, env=env, cwd=tmp_path, what="runs sync, server still down")
    rel.assert_clean_error(down, 3, mentions=("runs sync",))

    server.start()
    try:
        r = rel.rlx("runs", "sync", "--format", "json", env=env, cwd=tmp_path, what="runs sync")
        assert r.code == 0, r.err[-2000:]
        (row,) = json.loads(r.out)
        assert row["run_id"] == run_id and row["sent"] > 0 and row["pending"] == 0
        assert _history(server.url, run_id) == list(range(1, steps + 1))
        from mlflow.tracking import MlflowClient

        run = MlflowClient(server.url).get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.tags["rlx.job_status"] == "SUCCEEDED"
        again = rel.rlx("runs", "sync", run_id, env=env, cwd=tmp_path)
        assert again.code == 0 and "nothing waiting" in again.out
        assert _history(server.url, run_id) == list(range(1, steps + 1))  # idempotent
    finally:
        server.kill()


# ---- row 41: verl's own MLflow logger, in rlx's place ------------------------------------------------------------

VERL_LOGGER = r'''
import json, sys, time
from verl.utils.tracking import Tracking

t = Tracking(project_name="rel41", experiment_name="rel41", default_backend=["mlflow"], config={"a": 1})
print(json.dumps({"adapter": type(t.logger["mlflow"]).__name__}), flush=True)
for step in range(1, int(sys.argv[1]) + 1):
    t0 = time.monotonic()
    t.log({"critic/score/mean": step / 100, "perf/x@y": 1.0}, step=step)
    print(json.dumps({"step": step, "log_s": time.monotonic() - t0}), flush=True)
    if step in (5, 10):  # the test kills the server after step 5 and restarts it after step 10
        sys.stdin.readline()
t0 = time.monotonic()
t.finish()
print(json.dumps({"finish_s": time.monotonic() - t0}), flush=True)
'''


def _verl_logger(env: dict[str, str], cwd: Path, steps: int) -> subprocess.Popen:
    import sys

    return subprocess.Popen([sys.executable, "-c", VERL_LOGGER, str(steps)], env=env, cwd=cwd, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _lines_until(proc: subprocess.Popen, predicate) -> list[dict]:
    got = []
    for line in proc.stdout:
        if line.startswith("{"):
            got.append(json.loads(line))
            if predicate(got[-1]):
                return got
    raise AssertionError(f"exit {proc.wait()}: {proc.stderr.read()[-3000:]}")


def test_row41_verls_own_mlflow_logger_neither_stalls_nor_drops_steps_in_an_outage(rlx_env, tmp_path):
    """verl's `Tracking` (verl/utils/tracking.py), in a job rlx launched (RLX_VERL_TRACKING=1): the server is killed
    after step 5 and restarted after step 10. verl's own adapter would spend 3 attempts x MLflow's retries on each
    step in between, then drop it; rlx's returns at once, and the run ends holding steps 1-15 once each."""
    from mlflow.tracking import MlflowClient

    server = rel.MlflowServer(tmp_path).start()
    client = MlflowClient(server.url)
    run_id = client.create_run(client.create_experiment("rel41")).info.run_id
    env = {**_env(rlx_env, server.url), "MLFLOW_RUN_ID": run_id, "RLX_VERL_TRACKING": "1",
           "RLX_TRACKING_JOURNAL": str(tmp_path / "journal.jsonl"), "RLX_TRACKING_FINISH_WAIT": "60"}
    proc = _verl_logger(env, tmp_path, 15)
    try:
        (adapter, *_) = _lines_until(proc, lambda d: d.get("step") == 5)
        assert adapter == {"adapter": "RlxMlflowAdapter"}
        server.kill()
        proc.stdin.write("\n")
        proc.stdin.flush()
        down = _lines_until(proc, lambda d: d.get("step") == 10)
        server.start()
        proc.stdin.write("\n")
        proc.stdin.flush()
        rest = _lines_until(proc, lambda d: "finish_s" in d)
        assert proc.wait(timeout=120) == 0, proc.stderr.read()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        server.kill()
    slowest = max(d["log_s"] for d in down)
    rel.measured("row41 slowest verl log() call with the server down", slowest)
    assert slowest < 1.0, down  # verl's adapter: >= 3 x (MLflow's HTTP timeout), per step
    server.start()
    try:
        steps = sorted(m.step for m in MlflowClient(server.url).get_metric_history(run_id, "critic/score/mean"))
        keys = MlflowClient(server.url).get_run(run_id).data.metrics
    finally:
        server.kill()
    assert steps == list(range(1, 16)), steps
    assert "perf/x_at_y" in keys  # verl's key sanitisation kept
    rel.measured("row41 finish() after the outage", rest[-1]["finish_s"])


def test_row41_plain_verl_keeps_its_own_logger(rlx_env, tmp_path):
    """Without RLX_VERL_TRACKING (a verl run rlx did not launch, rlx installed), verl's adapter stays."""
    env = {**rlx_env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}
    env.pop("RLX_VERL_TRACKING", None)
    proc = _verl_logger(env, tmp_path, 1)
    (adapter, *_) = _lines_until(proc, lambda d: "finish_s" in d)
    assert proc.wait(timeout=60) == 0
    assert adapter == {"adapter": "_MlflowLoggingAdapter"}


def test_row41_a_server_down_when_verls_tracking_starts_loses_nothing(rlx_env, tmp_path):
    """verl's `Tracking` gives up on MLflow when it cannot start the run, and drops every metric of the run. In a run
    rlx launched, the run exists already: its params and metrics are journaled from step 1 and sent when the server
    is back (here after step 5)."""
    from mlflow.tracking import MlflowClient

    server = rel.MlflowServer(tmp_path).start()
    client = MlflowClient(server.url)
    run_id = client.create_run(client.create_experiment("rel41b")).info.run_id
    server.kill()
    env = {**_env(rlx_env, server.url), "MLFLOW_RUN_ID": run_id, "RLX_VERL_TRACKING": "1",
           "RLX_TRACKING_JOURNAL": str(tmp_path / "journal.jsonl"), "RLX_TRACKING_FINISH_WAIT": "60"}
    proc = _verl_logger(env, tmp_path, 15)
    try:
        (adapter, *_) = _lines_until(proc, lambda d: d.get("step") == 5)
        assert adapter == {"adapter": "RlxMlflowAdapter"}
        server.start()
        for _ in range(2):
            proc.stdin.write("\n")
            proc.stdin.flush()
        _lines_until(proc, lambda d: "finish_s" in d)
        assert proc.wait(timeout=120) == 0, proc.stderr.read()[-3000:]
        run = MlflowClient(server.url).get_run(run_id)
        steps = sorted(m.step for m in MlflowClient(server.url).get_metric_history(run_id, "critic/score/mean"))
    finally:
        if proc.poll() is None:
            proc.kill()
        server.kill()
    assert steps == list(range(1, 16)), steps
    assert run.data.params.get("a") == "1", run.data.params  # verl's config params, journaled too
