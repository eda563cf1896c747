"""The embedded Ray head: a private single-node cluster on 127.0.0.1 that lives exactly as long as one `rlx train`.

It is `ray start --head --block`, run as a child process in its own session, with every port rlx can name moved to a
free port, the dashboard (the Jobs API) on loopback and token authentication on: rlx generates a token, hands it to the
head through a 0600 file (`RAY_AUTH_TOKEN_PATH`) and sends it as a bearer header. The token never appears on a command
line or in an environment variable of rlx's own process.

Stopping signals that child (SIGTERM; it tears down the processes it started) and escalates to SIGKILL of the
remembered process tree by PID if it does not exit. If rlx itself is killed, the kernel sends the child SIGTERM
(`PR_SET_PDEATHSIG`), and `reaper.py`, started beside the head, SIGKILLs what is left of its tree 3 s later. Never `ray stop`: it kills every Ray cluster of this user.
Its folder (/tmp/rlx-*: session dir, token file, `ray-start.log`) is removed on stop unless RLX_KEEP_HEAD_DIR=1
(for diagnosis). Some Ray internals (GCS, raylet, object manager) still listen on all interfaces even with these flags
(reliability.md "Ports"); token authentication covers them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rlx.errors import UnreachableError


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_executable() -> str:
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.exists() else shutil.which("ray")
    if not found:
        raise UnreachableError(
            "cannot start a local Ray head: the `ray` command is not installed",
            hint="pip install 'ray[default]', or pass --address of a running cluster",
        )
    return found


def local_gpu_count() -> int:
    """GPUs on this machine, without importing torch: NVIDIA's driver lists one folder per GPU."""
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        return len(list(gpus.iterdir())) if gpus.is_dir() else 0
    except OSError:
        return 0


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when rlx dies, even by SIGKILL (Linux `PR_SET_PDEATHSIG`), so a killed
    rlx cannot leave its head running. Elsewhere a no-op."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalHead:
    """A private Ray head on loopback. Use as a context manager; `address` is its dashboard URL, `token` its token."""

    def __init__(
        self,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        env_exclude=frozenset(),
        system_env: dict[str, str] | None = None,
    ):
        self.env_exclude = frozenset(env_exclude)  # variables rlx set for itself (tight MLflow retries)
        self.system_env = dict(system_env or {})  # Ray system config (RAY_<name>) for this head only
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.proc: subprocess.Popen | None = None
        self.reaper: subprocess.Popen | None = None
        self.pids: set[int] = set()
        self.token = secrets.token_hex(32)
        # Ray's session dir holds unix sockets, whose paths are limited to 107 bytes: keep it short.
        self.tmp = Path(tempfile.mkdtemp(prefix="rlx-", dir="/tmp"))
        self.dashboard_port = free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.log_path = self.tmp / "ray-start.log"
        self.last_error: BaseException | None = None

    def command(self) -> list[str]:
        # Below Linux's ephemeral range (32768-60999), where free_port() draws every other port: a worker range
        # inside it can contain one of them, and Ray then refuses to start ("port ... used by other components").
        worker_base = 10000 + (self.dashboard_port % 22) * 1000
        cmd = [
            _ray_executable(),
            "start",
            "--head",
            "--block",
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            f"--port={free_port()}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--min-worker-port={worker_base}",
            f"--max-worker-port={worker_base + 999}",
            f"--temp-dir={self.tmp / 'ray'}",
        ]
        if self.num_cpus is not None:
            cmd.append(f"--num-cpus={self.num_cpus}")
        if self.num_gpus is not None:
            cmd.append(f"--num-gpus={self.num_gpus}")
        return cmd

    def env(self) -> dict[str, str]:
        token_file = self.tmp / "auth_token"
        token_file.write_text(self.token)
        token_file.chmod(0o600)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN") and k not in self.env_exclude
        }
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file), RAY_USAGE_STATS_ENABLED="0")
        env.update(self.system_env)
        return env

    def start(self, timeout: float = 120.0, attempts: int = 2) -> LocalHead:
        """Start the head and wait until its Jobs API answers; on failure stop it and raise `UnreachableError`.

        A failed start is retried once with fresh ports: a port found free can be taken before Ray binds it."""
        for attempt in range(attempts):
            try:
                return self._start(timeout)
            except UnreachableError:
                if attempt + 1 == attempts or "exited with code" not in str(self.last_error or ""):
                    raise
                self.tmp = Path(tempfile.mkdtemp(prefix="rlx-", dir="/tmp"))
                self.dashboard_port = free_port()
                self.address = f"http://127.0.0.1:{self.dashboard_port}"
                self.log_path = self.tmp / "ray-start.log"
                self.pids = set()
        raise AssertionError("unreachable")

    def _start(self, timeout: float) -> LocalHead:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.pids.add(self.proc.pid)
        self._start_reaper()
        deadline = time.monotonic() + timeout
        try:
            while not self._up():
                if self.proc.poll() is not None:
                    tail = self.log_tail(8)
                    raise UnreachableError(
                        f"the local Ray head exited with code {self.proc.returncode} while starting"
                        + (f":\n{tail}" if tail else ""),
                        hint="retry (a port may have been taken meanwhile), or pass --address of a running cluster",
                    )
                if time.monotonic() > deadline:
                    raise UnreachableError(
                        f"the local Ray head did not come up within {timeout:.0f}s",
                        where=str(self.log_path),
                        hint="the machine may be overloaded; retry",
                    )
                time.sleep(0.3)
        except BaseException as e:
            self.last_error = e
            self.stop()
            raise
        self._remember_tree()
        return self

    def _start_reaper(self) -> None:
        """`reaper.py`: if rlx dies by SIGKILL, it kills what is left of the head's tree within seconds."""
        assert self.proc is not None
        self.reaper = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("reaper.py")),
                str(os.getpid()),
                str(self.proc.pid),
                str(self.tmp),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _up(self) -> bool:
        req = urllib.request.Request(f"{self.address}/api/version", headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def _remember_tree(self) -> None:
        """Record the PIDs of every process the head started, so `stop()` can make sure each one is gone."""
        import psutil

        assert self.proc is not None, "called only while the head process is running"
        try:
            self.pids.update(p.pid for p in psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.Error:
            pass

    def alive_pids(self) -> list[int]:
        """The remembered head processes that still exist."""
        import psutil

        alive = []
        for pid in self.pids:
            try:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.Error:
                continue
        return alive

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM the `ray start --block` child, wait, then SIGKILL whatever of its process tree is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._remember_tree()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while self.alive_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self.alive_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 5  # SIGKILL is asynchronous: return only once the processes are gone
        while self.alive_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        if self.reaper is not None:  # it exits by itself once the head is gone
            try:
                self.reaper.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.reaper.kill()
                self.reaper.wait(timeout=5)
            self.reaper = None
        if not os.environ.get("RLX_KEEP_HEAD_DIR"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> LocalHead:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
