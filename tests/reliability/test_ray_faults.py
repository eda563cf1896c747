"""Rows 12-14, 17 and 28 of reliability.md section 6, and the embedded head's security defaults.

Faults are real: a socket that accepts and never answers, a closed port, an unresolvable host, a head with token
auth, a `kill -9` of the head's own gcs_server (found from the head's PID, never by name on the machine), a killed
dashboard, a fake dashboard that reports another Ray version. Deadlines come from rlx's settings (RLX_RAY_TIMEOUT=5
here); each measured time-to-fail is recorded for docs/reliability.md.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from unittest import mock

import pytest
import rel

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

RAY_DEADLINE = 30.0  # the bound the research table states for a dead or hung cluster (rlx's own is 5 s here)


# ---- row 12 --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["blackhole", "refused", "dns"])
def test_row12_unreachable_cluster_fails_within_the_deadline(fault, rlx_env, blackhole, refused_url):
    address = {"blackhole": blackhole.url, "refused": refused_url,
               "dns": "http://rlx-no-such-host.invalid:8265"}[fault]
    hang = blackhole if fault == "blackhole" else None
    r = rel.submit(rlx_env, address, what=f"submit to a {fault} cluster", hang=hang)
    rel.assert_clean_error(r, 3, mentions=(address.split("//")[1].split(":")[0],))
    if hang is not None:
        assert r.seconds < RAY_DEADLINE, f"hung for {r.seconds:.1f}s"
    assert all(run.info.status != "RUNNING" for run in rel.all_runs(rlx_env))


def test_row12_runs_commands_on_a_hung_cluster_fail_within_the_deadline(ray_head, rlx_env, blackhole):
    """`rlx runs show/logs/stop` on a run whose cluster now hangs: bounded, clean, and the cluster is named."""
    r = rel.submit(rlx_env, ray_head.address, task="copy")
    assert r.code == 0, r.text[-3000:]
    rid = rel.run_id_of(r)
    rel.wait_for(lambda: rel.job_of(rel.jobs_client(ray_head.address), rid).status.is_terminal(), 90, "the job")
    rec = next((Path(rlx_env["RLX_HOME"]) / "runs").glob("*/record.json"))
    data = json.loads(rec.read_text())
    data.update(address=blackhole.url, state="SUBMITTED", job_status="RUNNING")  # the cluster now hangs
    rec.write_text(json.dumps(data))
    for cmd in ("show", "logs", "stop"):
        blackhole.first_accept = None
        res = rel.rlx("runs", cmd, rid, env=rlx_env, what=f"runs {cmd} on a hung cluster", hang=blackhole)
        assert "Traceback" not in res.text, res.text[-3000:]
        assert str(blackhole.port) in res.text, res.text[-3000:]
        assert res.seconds < RAY_DEADLINE, f"runs {cmd} hung for {res.seconds:.1f}s"
        if cmd == "stop":  # show reports what is recorded (with a warning); logs falls back to the saved tail
            rel.assert_clean_error(res, 3)
        else:
            assert res.code in (0, 3)


# ---- row 13 --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_head():
    """A head started with RAY_AUTH_MODE=token and a canary token."""
    token = rel.CANARY["RAY_AUTH_TOKEN"]
    tmp = rel.short_tmp("tok")
    head = rel.RayHead(tmp, num_cpus=1, env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    real_urlopen = urllib.request.urlopen

    def urlopen_with_token(url, timeout=None):  # RayHead's readiness probe, authenticated
        return real_urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}),
                            timeout=timeout)

    with mock.patch.object(urllib.request, "urlopen", urlopen_with_token):
        head.start()
    yield head, token
    rel.stop_head_tree(head)
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("case", ["no_token", "wrong_token", "right_token"])
def test_row13_token_protected_cluster(case, token_head, rlx_env):
    head, token = token_head
    env = {**rlx_env, "RAY_AUTH_MODE": "token"}
    if case == "wrong_token":
        env["RAY_AUTH_TOKEN"] = "wrong-" + token[::-1]
    elif case == "right_token":
        env["RAY_AUTH_TOKEN"] = token
    r = rel.submit(env, head.address, task="copy", what=f"token cluster, {case}")
    assert token not in r.text and token[::-1] not in r.text
    if case == "right_token":
        assert r.code == 0, r.text[-3000:]
        rid = rel.run_id_of(r)
        client = rel.jobs_client(head.address, token=token)
        job = rel.job_of(client, rid)
        assert job is not None
        assert token not in json.dumps([job.entrypoint, job.metadata, job.runtime_env], default=str)
        client.stop_job(job.submission_id)
        return
    rel.assert_clean_error(r, 3, mentions=("RAY_AUTH_TOKEN",))
    assert "RAY_AUTH_TOKEN_PATH" in r.err
    assert not rel.all_runs(rlx_env) or all(run.info.status != "RUNNING" for run in rel.all_runs(rlx_env))


# ---- row 14 --------------------------------------------------------------------------------------------------------


def _kill_tree(pids) -> None:
    import psutil

    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            continue
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)


def test_row14_gcs_killed_mid_job_then_head_restarted(own_head, rlx_env):
    head = own_head(num_cpus=1)
    r = rel.submit(rlx_env, head.address)
    assert r.code == 0, r.text[-3000:]
    rid = rel.run_id_of(r)
    client = rel.jobs_client(head.address)
    rel.wait_for(lambda: rel.job_of(client, rid).status.value == "RUNNING", 60, "the job to run")
    tree = rel.head_children(head)
    gcs = [p for p in tree if p.name() == "gcs_server"]
    assert len(gcs) == 1, [p.name() for p in tree]
    tree_pids = [p.pid for p in tree]
    os.kill(gcs[0].pid, signal.SIGKILL)
    try:
        for cmd in ("show", "logs"):
            res = rel.rlx("runs", cmd, rid, env=rlx_env, what=f"runs {cmd} after gcs_server was killed")
            assert "Traceback" not in res.text and res.code in (0, 3), res.text[-3000:]
            assert head.address.split("//")[1] in res.text, res.text[-3000:]
            assert res.seconds < RAY_DEADLINE + 30, f"took {res.seconds:.1f}s (process start included)"
    finally:
        # The job's driver outlives the GCS as an orphan (reliability.md section 1): end the whole tree by PID.
        head.proc.send_signal(signal.SIGKILL)
        head.proc.wait(10)
        _kill_tree(tree_pids)
    # A new head on the same address: Ray has forgotten the job, so rlx reports the run LOST and ends it.
    port = head.dashboard_port
    tmp = rel.short_tmp("restart")
    again = rel.RayHead(tmp, num_cpus=1)
    again.dashboard_port, again.address = port, f"http://127.0.0.1:{port}"
    try:
        again.start()
        res = rel.rlx("runs", "ls", env=rlx_env, timeout=120)
        assert res.code == 0, res.text[-2000:]
        run = rel.mlflow_client(rlx_env).get_run(rid)
        assert run.info.status == "FAILED" and run.data.tags.get("rlx.job_status") == "LOST"
        show = rel.rlx("runs", "show", rid, env=rlx_env, timeout=60)
        assert "LOST" in show.text
    finally:
        rel.stop_head_tree(again)
        shutil.rmtree(tmp, ignore_errors=True)


# ---- row 17 --------------------------------------------------------------------------------------------------------


def test_row17_follow_survives_a_dead_dashboard_with_a_clean_error(own_head, rlx_env):
    """`rlx runs logs -f` while the dashboard dies: exit 3 naming the re-attach command; it waits, never spins."""
    import psutil

    head = own_head(num_cpus=1)
    r = rel.submit(rlx_env, head.address)
    assert r.code == 0, r.text[-3000:]
    rid = rel.run_id_of(r)
    client = rel.jobs_client(head.address)
    rel.wait_for(lambda: rel.job_of(client, rid).status.value == "RUNNING", 60, "the job to run")
    tree_pids = [p.pid for p in rel.head_children(head)]
    env = {**rlx_env, "RLX_LOST_AFTER": "10"}  # seconds without an answer before the cluster counts as gone
    follower = subprocess.Popen([rel.RLX, "runs", "logs", rid, "-f"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        first = follower.stdout.readline()  # a log line: the follower is attached
        assert "step" in first or first, first
        dashboards = [p for p in rel.head_children(head) if any(part.endswith("dashboard.py") for part in p.cmdline())]
        assert dashboards, "no dashboard process in the head's tree"
        proc = psutil.Process(follower.pid)
        cpu0 = sum(proc.cpu_times()[:2])
        cpu = cpu0
        t_kill = time.monotonic()
        for p in dashboards:
            p.kill()
        while True:
            try:
                follower.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                cpu = sum(proc.cpu_times()[:2])
                assert time.monotonic() - t_kill < 120, "the follower never gave up"
        waited = rel.measured("runs logs -f after the dashboard died", time.monotonic() - t_kill)
        err = follower.stderr.read()
    finally:
        if follower.poll() is None:
            follower.kill()
        head.proc.send_signal(signal.SIGKILL)
        _kill_tree(tree_pids)
    assert follower.returncode == 3, (follower.returncode, err[-2000:])
    assert "Traceback" not in err and "rlx runs logs" in err and "-f" in err, err[-2000:]
    assert cpu - cpu0 < 0.5 * waited, f"busy loop: {cpu - cpu0:.1f}s of CPU in {waited:.1f}s"


# ---- row 28 --------------------------------------------------------------------------------------------------------


class _FakeDashboard(http.server.BaseHTTPRequestHandler):
    ray_version = "2.9.0"

    def do_GET(self):  # noqa: N802 - http.server's naming
        body = json.dumps({"version": "4", "ray_version": self.ray_version, "ray_commit": "0" * 40}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_row28_ray_version_skew_is_reported(rlx_env):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeDashboard)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"http://127.0.0.1:{server.server_address[1]}"
        r = rel.submit(rlx_env, address, timeout=120, what="version skew reported")
    finally:
        server.shutdown()
    import ray

    rel.assert_clean_error(r, 3, mentions=("2.9.0", ray.__version__))
    assert not rel.all_runs(rlx_env), "a run was created on a cluster rlx cannot drive"


# ---- security defaults: the embedded head ---------------------------------------------------------------------------

# Ray 2.60 services with no bind-address option: GCS and raylet listen on all interfaces whatever the flags
# (reliability.md "Ports"), and the Ray Client server binds the node address, which `ray start` resolves from
# 127.0.0.1 to the host's own address (its port cannot be 0 = off: Ray requires 1024-65535). Token authentication is
# what protects them; the test checks both facts.
UNMOVABLE = {"gcs_server", "raylet", "ray.util.client.server"}


def test_security_embedded_head_binds_loopback_and_requires_a_token():
    import psutil

    from rlx.launch.cluster import LocalHead

    head = LocalHead(num_cpus=1).start()
    try:
        procs = [psutil.Process(head.proc.pid), *psutil.Process(head.proc.pid).children(recursive=True)]
        exposed = []
        for p in procs:
            try:
                conns = p.net_connections(kind="inet")
                name = p.name()
                cmd = " ".join(p.cmdline())[:200]
            except psutil.Error:
                continue
            for c in conns:
                if c.status != psutil.CONN_LISTEN:
                    continue
                if c.laddr.ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
                    continue
                exposed.append((name, c.laddr.ip, c.laddr.port, cmd))
        dashboard_port = int(head.address.rsplit(":", 1)[1])
        assert all(port != dashboard_port for _, _, port, _ in exposed), "the Jobs API is not on loopback"
        movable = [e for e in exposed if e[0] not in UNMOVABLE and not any(u in e[3] for u in UNMOVABLE)]
        assert not movable, f"listening beyond loopback: {movable}"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{head.address}/api/jobs/", timeout=10)
        assert e.value.code in (401, 403)
        cmdlines = " ".join(" ".join(p.cmdline()) for p in procs if p.is_running())
        assert head.token not in cmdlines
    finally:
        head.stop()
    assert not head.alive_pids()

