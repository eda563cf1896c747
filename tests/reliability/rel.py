"""Helpers for the reliability suite (reliability.md section 6): fault injectors and sink scanners.

Everything here is real: a loopback socket that accepts and never answers (a hung dashboard or tracking server), a
closed port (connection refused), private Ray heads started with `ray start --head --block` and stopped by PID, real
signals, a real sqlite MLflow store, and a real full file system (a 2 MiB tmpfs in a private mount namespace) or a
real failing write (RLIMIT_FSIZE) where mounting is not allowed.

`rlx(...)` runs the real `rlx` executable and records how long it took; with `RLX_RELIABILITY_TIMES=<file>` set, each
test's measured times are appended there as JSON lines (docs/reliability.md's "measured" column comes from that file).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from _rlxtest import RayHead, free_port, wait_for  # noqa: E402 - tests/ is on sys.path (root conftest)

RLX = str(Path(sys.executable).parent / "rlx")

# Deadlines rlx takes from its environment, set low so fault cases fail fast in CI. Each is a documented setting.
FAST_ENV = {
    "RLX_RAY_TIMEOUT": "5",  # seconds per Ray Jobs call (default 30)
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "PYTHONUNBUFFERED": "1",
}

# Secret canaries: each is unique, so finding one anywhere is a leak.
CANARY = {
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
    "HF_TOKEN": "hf_canaryHFtoken9f8e7d6c5b4a3",
    "RAY_AUTH_TOKEN": "raycanarytoken-5f1c9a2e7b",
    "OPENAI_API_KEY": "sk-canaryOpenAIkey0123456789",
}
CONFIG_SECRET = "sk-canaryConfigKey9876543210abc"
URI_PASSWORD = "canaryUriPassw0rd"


def canaries() -> list[str]:
    return [*CANARY.values(), CONFIG_SECRET, URI_PASSWORD]


@dataclass
class Result:
    """A finished `rlx` process: exit code, output and how long it ran."""

    args: list[str]
    code: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err


def _record_time(name: str, seconds: float) -> None:
    path = os.environ.get("RLX_RELIABILITY_TIMES")
    if path:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(path, "a") as f:
            f.write(json.dumps({"test": test, "what": name, "seconds": round(seconds, 3)}) + "\n")


def measured(name: str, seconds: float) -> float:
    """Record a measured time-to-fail for docs/reliability.md and return it."""
    _record_time(name, seconds)
    return seconds




def rlx(*args: str, env: dict[str, str], cwd=None, timeout: float = 180, what: str | None = None,
        preexec=None, stdin=subprocess.DEVNULL, hang: Blackhole | None = None) -> Result:
    """Run the real `rlx` executable; fail the test (not hang) if it outlives `timeout`.

    `seconds` is the process's wall time; with `hang`, it is the time from the first connection to the hung server
    until rlx exited: the time-to-fail of the hang itself, without interpreter start-up on a loaded machine.
    """
    t0 = time.monotonic()
    p = subprocess.run([RLX, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       preexec_fn=preexec, stdin=stdin)
    end = time.monotonic()
    seconds = end - t0
    if hang is not None and hang.first_accept is not None:
        seconds = end - hang.first_accept
    if what:
        _record_time(what, seconds)
    return Result([*args], p.returncode, p.stdout, p.stderr, seconds)


def assert_clean_error(r: Result, code: int | tuple[int, ...], *, mentions: tuple[str, ...] = ()) -> None:
    """The rlx error contract: the documented exit code, `error:` first, no traceback, no secret."""
    codes = (code,) if isinstance(code, int) else code
    assert r.code in codes, f"exit {r.code}, expected {codes}\nstdout:\n{r.out[-3000:]}\nstderr:\n{r.err[-3000:]}"
    assert "Traceback" not in r.text, r.text[-3000:]
    assert re.search(r"^error: ", r.err, re.M), r.err[-3000:]
    for m in mentions:
        assert m.lower() in r.err.lower(), f"stderr does not mention {m!r}:\n{r.err[-3000:]}"
    assert_no_canary(r.text, "rlx output")


def assert_no_canary(text: str, where: str) -> None:
    for c in canaries():
        assert c not in text, f"secret canary {c[:6]}... leaked into {where}"


def scan_tree(root: Path) -> list[str]:
    """Paths under `root` whose bytes contain a canary (sqlite pages, artifacts, records, logs)."""
    hits = []
    needles = [c.encode() for c in canaries()]
    for p in Path(root).rglob("*"):
        if p.is_file() and not p.is_symlink():
            try:
                data = p.read_bytes()
            except OSError:
                continue
            hits.extend(f"{p}: {n[:6].decode()}..." for n in needles if n in data)
    return hits


class Blackhole:
    """A TCP server on loopback that accepts every connection and never sends a byte (a hung server)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self.first_accept: float | None = None  # time.monotonic() of the first connection: when the hang began
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            if self.first_accept is None:
                self.first_accept = time.monotonic()
            self._held.append(conn)  # held open, never answered

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for c in self._held:
            c.close()
        self.sock.close()






class MlflowServer:
    """A real `mlflow server` on loopback with a sqlite store, killed with SIGKILL (its whole process group: the
    uvicorn worker and the job runner too) and restarted on the same port and store."""

    def __init__(self, root: Path, port: int | None = None):
        self.root, self.port = root, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 90) -> MlflowServer:
        import urllib.request

        mlflow = str(Path(sys.executable).parent / "mlflow")
        self.starts += 1
        log = open(self.root / f"server-{self.starts}.log", "w")
        self.proc = subprocess.Popen(
            [mlflow, "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
             "--artifacts-destination", str(self.root / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(healthy, timeout, f"mlflow server on {self.url}")
        return self

    def kill(self) -> None:
        """SIGKILL the server's process group, and wait until the port refuses connections."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)
        self.proc = None

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return False
            except OSError:
                return True

        wait_for(refused, 30, f"port {self.port} to close")


def short_tmp(tag: str) -> Path:
    """Ray's session dir holds unix sockets (paths <= 107 bytes): a short private dir under /tmp."""
    d = Path(f"/tmp/rlxrel-{tag}-{os.getpid()}-{free_port()}")
    d.mkdir()
    return d




def head_children(head: RayHead) -> list:
    """The processes the head's `ray start --block` started (found from its PID, never by name)."""
    import psutil

    try:
        return psutil.Process(head.proc.pid).children(recursive=True)
    except psutil.Error:
        return []


def stop_head_tree(head: RayHead) -> None:
    import psutil

    if head.proc is None:
        return
    tree = head_children(head)
    head.stop(timeout=30)
    gone, alive = psutil.wait_procs(tree, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


def limit_memory(nbytes: int):
    """preexec_fn: cap the child's address space (RLIMIT_AS)."""

    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))

    return apply


def limit_file_size(nbytes: int):
    """preexec_fn: writes past `nbytes` fail with EFBIG (SIGXFSZ ignored, so the write returns an error)."""

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return apply


def can_mount_tmpfs() -> bool:
    """Whether a private tmpfs can be mounted (root, or an unprivileged user namespace)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null "
                            "|| mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True, timeout=10)
    return probe.returncode == 0


__all__ = ["Blackhole", "MlflowServer", "CANARY", "CONFIG_SECRET", "URI_PASSWORD", "Result", "RLX", "assert_clean_error",
           "assert_no_canary", "canaries", "free_port", "head_children", "limit_file_size", "limit_memory",
           "measured", "rlx", "scan_tree", "wait_for"]


# ---- launching through the real CLI -------------------------------------------------------------------------------

# The launcher's diagnostic job (`rlx.launch.testjob`): verl's metric names and param style without torch or verl.
# Tasks: copy (a few steps, exit 0), fail (exit 3 after a step), sleep (steps until stopped).
TESTJOB = {"RLX_SMOKE_ENTRY": "rlx.launch.testjob"}


def submit(env: dict[str, str], address: str | None, *extra: str, task: str = "sleep", detach: bool = True,
           timeout: float = 180, what: str | None = None, algo: str = "grpo", hang: Blackhole | None = None) -> Result:
    """`rlx train --algo grpo --smoke` with the diagnostic job, JSON output; `--detach` by default."""
    args = ["train", "--algo", algo, "--smoke", "--task", task, "--format", "json"]
    if address:
        args += ["--address", address]
    if detach:
        args.append("--detach")
    return rlx(*args, *extra, env={**env, **TESTJOB}, timeout=timeout, what=what, hang=hang)


def run_id_of(r: Result) -> str:
    """The run id from `--format json` output (the last JSON object on stdout)."""
    for line in reversed(r.out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)["run_id"]
            except (ValueError, KeyError):
                continue
    data = json.loads(r.out[r.out.index("{"):])
    return data["run_id"]


def jobs_client(address: str, token: str | None = None):
    """Ray's own SDK in the test process, to look at what reached the cluster."""
    from ray.job_submission import JobSubmissionClient

    headers = {"Authorization": f"Bearer {token}"} if token else None
    saved = {k: os.environ.pop(k) for k in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS") if k in os.environ}
    try:
        return JobSubmissionClient(address, headers=headers)
    finally:
        os.environ.update(saved)


def rlx_jobs(client) -> list:
    """Ray jobs that rlx submitted (its metadata carries `rlx.run_id`)."""
    return [j for j in client.list_jobs() if (j.metadata or {}).get("rlx.run_id")]


def job_of(client, run_id: str):
    jobs = [j for j in client.list_jobs() if (j.metadata or {}).get("rlx.run_id") == run_id]
    assert len(jobs) <= 1, f"{len(jobs)} Ray jobs for run {run_id}"
    return jobs[0] if jobs else None


def stop_all(client, run_ids) -> None:
    """Teardown: stop every job of these runs that still runs (the shared head must stay free for other tests)."""
    for rid in run_ids:
        job = job_of(client, rid)
        if job is not None and not job.status.is_terminal():
            client.stop_job(job.submission_id)
    for rid in run_ids:
        job = job_of(client, rid)
        if job is not None:
            wait_for(lambda j=job: client.get_job_status(j.submission_id).is_terminal(), 60,
                     f"job {job.submission_id} to stop")


def mlflow_client(env: dict[str, str]):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])


def all_runs(env: dict[str, str]) -> list:
    """Every MLflow run in the test's store, across experiments."""
    client = mlflow_client(env)
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, max_results=10_000) if exps else []


def assert_no_running_ghosts(env: dict[str, str], jobs=None) -> None:
    """No MLflow run says RUNNING unless its Ray job is really pending or running."""
    for run in all_runs(env):
        if run.info.status != "RUNNING":
            continue
        job = job_of(jobs, run.info.run_id) if jobs is not None else None
        assert job is not None and not job.status.is_terminal(), \
            f"MLflow run {run.info.run_id} is RUNNING but its job is {getattr(job, 'status', 'absent')}"


def runs_json(env: dict[str, str], *args: str, timeout: float = 60) -> tuple[Result, object]:
    """`rlx runs ... --format json` and its parsed output (None when it is not JSON)."""
    r = rlx("runs", *args, "--format", "json", env=env, timeout=timeout)
    try:
        return r, json.loads(r.out)
    except ValueError:
        return r, None
