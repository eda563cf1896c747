"""The embedded Ray head: loopback, token-protected, and gone (every process, checked by PID) once rlx is done.

Slow on purpose (20-65 s each on a loaded 2-core box): each test starts and stops its own head, because what is
tested is exactly that start and that stop; the rest of the suite shares the session head.
"""

from __future__ import annotations

import json

import psutil
import pytest

pytestmark = pytest.mark.integration


def test_local_head_requires_its_token_and_stops_every_process_it_started():
    from rlx.errors import UnreachableError
    from rlx.launch.cluster import LocalHead
    from rlx.launch.jobs import Jobs

    head = LocalHead(num_cpus=1).start()
    try:
        pids = head.alive_pids()
        assert len(pids) > 3  # ray start, gcs_server, raylet, dashboard, ...
        assert Jobs(head.address, token=head.token).resources()["CPU"] == 1.0
        with pytest.raises(UnreachableError) as e:
            Jobs(head.address, token="wrong-token-value")
        assert "RAY_AUTH_TOKEN" in e.value.hint and "wrong-token-value" not in e.value.render()
        listening = {c.laddr.ip for c in psutil.net_connections("tcp")
                     if c.status == "LISTEN" and c.laddr.port == head.dashboard_port}
        assert listening == {"127.0.0.1"}
    finally:
        head.stop()
    assert head.alive_pids() == []
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


def test_train_without_address_runs_on_an_embedded_head_and_leaves_no_ray_process(tmp_path, monkeypatch, rlx_cli):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLX_HOME", str(tmp_path / ".rlx"))
    monkeypatch.setenv("RLX_SMOKE_ENTRY", "rlx.launch.testjob")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, out, err = rlx_cli("train", "--algo", "grpo", "--smoke", "--steps", "2", "--format", "json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["tracking_uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"  # the default store, absolute
    record = json.loads((tmp_path / ".rlx" / "runs" / summary["run_id"] / "record.json").read_text())
    assert record["embedded_head"] and record["address"].startswith("http://127.0.0.1:")
    assert len(record["head_pids"]) > 3
    alive = [p for p in record["head_pids"]
             if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    code, out, err = rlx_cli("runs", "logs", summary["run_id"])  # the head is gone: the saved tail is shown
    assert code == 0 and "step:2" in out


def test_detach_without_a_cluster_is_refused(tmp_path, monkeypatch, rlx_cli):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code, out, err = rlx_cli("train", "--algo", "grpo", "--smoke", "--detach")
    assert code == 2 and "--detach needs a cluster" in err and "--address" in err
