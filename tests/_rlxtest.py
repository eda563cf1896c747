"""Helpers shared by the test modules: free ports, deadline waits, a private Ray head, the `rlx` subprocess.

Test modules import these from here (`from _rlxtest import wait_for`), never `from conftest import ...`: with a
conftest.py in a subdirectory as well, the module named `conftest` depends on collection order.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str, interval: float = 0.1):
    """Poll `condition` until it returns a truthy value or `timeout` seconds pass (then fail naming `what`)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - the condition may fail until it holds
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else "")
    )


class RayHead:
    """A private single-node Ray head on 127.0.0.1 with its own ports and temp dir."""

    def __init__(self, tmp: Path, num_cpus: int = 2, env: dict[str, str] | None = None):
        self.tmp = tmp
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.gcs_address = f"127.0.0.1:{self.gcs_port}"
        self.num_cpus = num_cpus
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **(env or {})}
        self.env.pop("RAY_ADDRESS", None)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> RayHead:
        ray_bin = Path(sys.executable).parent / "ray"
        cmd = [
            str(ray_bin),
            "start",
            "--head",
            "--block",
            f"--port={self.gcs_port}",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--num-cpus={self.num_cpus}",
            "--num-gpus=0",
            "--disable-usage-stats",
            f"--temp-dir={self.tmp}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            # below the ephemeral range free_port() draws from (32768-60999), so no other port falls inside it
            f"--min-worker-port={10000 + (self.gcs_port % 22) * 1000}",
            f"--max-worker-port={10000 + (self.gcs_port % 22) * 1000 + 999}",
        ]
        self.log = open(self.tmp / "ray-start.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ray start exited with {self.proc.returncode}: " + (self.tmp / "ray-start.log").read_text()[-2000:]
                )
            with urllib.request.urlopen(f"{self.address}/api/version", timeout=2) as r:
                return r.status == 200

        try:
            wait_for(up, timeout, f"the Ray dashboard at {self.address}", interval=0.5)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()
        self.proc = None


def run_rlx(
    *args: str, env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run `rlx` as a real subprocess (fresh interpreter), capturing output."""
    exe = Path(sys.executable).parent / "rlx"
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd
    )
