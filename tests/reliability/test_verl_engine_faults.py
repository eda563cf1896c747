"""Rows 39-40: the verl engine's process tree under faults, and two verl-engine runs started at once.

`rlx train --smoke --engine verl` on the embedded head is about 20 processes: the head (gcs, raylet, dashboard and
its agents), the job supervisor, verl's driver, TaskRunner, the actor/rollout and reference workers, the rollout
server, TransferQueue, the reward and agent loops. Each fault below hits a run that has logged its first step:

- SIGTERM, SIGHUP and SIGKILL of the rlx client;
- SIGKILL of the job's driver (its PID from Ray's job info, not from a name).

The PIDs are every descendant of the rlx client, sampled until the fault. The test asserts they are all gone (zombies
aside) within 15 s, and that the run ends KILLED or FAILED in MLflow, not RUNNING. After a SIGKILL of the client,
nothing of rlx can run; the next `rlx runs ls` settles it.

Slow by design (marked `verl_engine`): each case starts a head and verl's dozen actors, about a minute to step 1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import rel

pytestmark = [pytest.mark.verl_engine, pytest.mark.timeout(900)]

GONE_WITHIN = 15.0  # seconds from the fault until no process of the run is left (the bound)


class Run:
    """`rlx train --algo grpo --smoke --engine verl` on its own embedded head, in `cwd`; output read by a thread."""

    def __init__(self, cwd: Path, *extra: str, env: dict[str, str]):
        self.cwd = cwd
        self.proc = subprocess.Popen(
            [rel.RLX, "train", "--algo", "grpo", "--smoke", "--engine", "verl", "--format", "json", *extra],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,  # a signal to the client is not also a signal to the test's process group
        )
        self.lines: list[str] = []
        self.pids: set[int] = set()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def sample(self) -> None:
        import psutil

        try:
            self.pids.update(c.pid for c in psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.Error:
            pass

    def wait_for_step(self, timeout: float = 300) -> None:
        def stepped() -> bool:
            self.sample()
            return self.proc.poll() is not None or any("step 1" in x or "step:1 " in x for x in self.lines)

        rel.wait_for(stepped, timeout, "the first training step", interval=0.5)
        assert self.proc.poll() is None, "".join(self.lines[-60:])
        assert len(self.pids) > 8, self.pids  # the head, its workers and verl's actors

    def alive(self) -> list[int]:
        import psutil

        out = []
        for pid in self.pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
            except psutil.Error:
                pass
        return out

    def record(self) -> dict:
        (path,) = (self.cwd / ".rlx" / "runs").glob("*/record.json")
        return json.loads(path.read_text())

    def kill_everything(self) -> None:
        """Teardown only: whatever is still alive of this run, by PID."""
        for pid in [self.proc.pid, *self.alive()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait(timeout=30)


def _env() -> dict[str, str]:
    drop = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "MLFLOW_TRACKING_URI", "RLX_HOME", *rel.CANARY)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"})
    return env


def _driver_pid(record: dict) -> int:
    """The PID of the job's driver as Ray reports it (the embedded head's address and token from the run record)."""
    token = Path(record["token_path"]).read_text().strip() if record.get("token_path") else None
    client = rel.jobs_client(record["address"], token)
    info = None

    def known() -> bool:
        nonlocal info
        info = client.get_job_info(record["submission_id"])
        return info.driver_info is not None and bool(info.driver_info.pid)

    rel.wait_for(known, 60, "Ray to report the driver's PID")
    return int(info.driver_info.pid)


def _summary(lines: list[str]) -> dict:
    """The JSON summary `--format json` prints last (indented: it starts at a line that is just `{`)."""
    starts = [i for i, x in enumerate(lines) if x.rstrip("\n") == "{"]
    assert starts, "".join(lines)[-4000:]
    return json.loads("".join(lines[starts[-1] :]))


FAULTS = ["client-SIGTERM", "client-SIGHUP", "client-SIGKILL", "driver-SIGKILL"]


@pytest.mark.parametrize("fault", FAULTS)
def test_row39_every_process_of_a_verl_run_is_gone_within_15s(fault, tmp_path):
    run = Run(tmp_path, "--steps", "50", env=_env())
    try:
        run.wait_for_step()
        record = run.record()
        who, sig = fault.split("-")
        if who == "driver":
            pid = _driver_pid(record)
            assert pid in run.pids, "Ray's driver PID is not in the run's process tree"
        else:
            pid = run.proc.pid
        run.sample()
        t = time.monotonic()
        os.kill(pid, getattr(signal, sig))
        rel.wait_for(lambda: not run.alive(), 120, "every process of the run to exit", interval=0.2)
        took = rel.measured(f"row39 {fault}: all processes gone", time.monotonic() - t)
        code = run.proc.wait(timeout=60)
    finally:
        if run.proc.poll() is None or run.alive():
            run.kill_everything()
    out = "".join(run.lines)
    assert took < GONE_WITHIN, f"{len(run.pids)} processes took {took:.1f}s to go"
    expected = {"client-SIGTERM": 130, "client-SIGHUP": 130, "client-SIGKILL": -9, "driver-SIGKILL": 4}[fault]
    assert code == expected, out[-4000:]
    env = {**_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    if fault == "client-SIGKILL":  # nothing of rlx ran after the kill: the next command settles the run
        ls = rel.rlx("runs", "ls", "--format", "json", env=env, cwd=tmp_path, timeout=120)
        assert ls.code == 0, ls.text[-3000:]
    rec = run.record()
    assert rec["state"] in ("STOPPED", "FAILED", "LOST", "ABORTED"), rec
    run_info = rel.mlflow_client(env).get_run(rec["run_id"]).info
    assert run_info.status in ("KILLED", "FAILED"), (run_info.status, rec)


def test_row40_two_verl_runs_started_at_once_in_one_directory(tmp_path):
    """Same cwd, so the same default store (./mlflow.db) and state dir (./.rlx); each run has its own head."""
    runs = [Run(tmp_path, "--steps", "2", env=_env()) for _ in range(2)]
    t = time.monotonic()
    try:
        codes = [r.proc.wait(timeout=840) for r in runs]
    finally:
        for r in runs:
            if r.proc.poll() is None:
                r.kill_everything()
    rel.measured("row40 two verl-engine runs at once", time.monotonic() - t)
    for r, code in zip(runs, codes, strict=True):
        assert code == 0, "".join(r.lines)[-4000:]
    summaries = [_summary(r.lines) for r in runs]
    ids = [s["run_id"] for s in summaries]
    assert len(set(ids)) == 2, ids
    env = {**_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    client = rel.mlflow_client(env)
    for rid in ids:
        run = client.get_run(rid)
        assert run.info.status == "FINISHED", run.info
        steps = sorted(m.step for m in client.get_metric_history(rid, "critic/score/mean"))
        assert steps == [1, 2], (rid, steps)  # each step once: the other run's metrics did not land here
        assert run.data.params.get("rlx/run_id", rid) == rid
    assert len({p.parent.name for p in (tmp_path / ".rlx" / "runs").glob("*/record.json")}) == 2
