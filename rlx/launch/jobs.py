"""Ray Jobs, with rlx's deadlines and error messages around every call.

`ray.job_submission.JobSubmissionClient` sends its HTTP requests with no timeout, its constructor included
(reliability.md section 1: a dashboard that accepts TCP and never answers hangs it forever). Here every call runs in a
worker thread that rlx abandons at its deadline, and the client subclass also passes a socket `timeout=` to requests so
abandoned threads do not live long. Errors become `RlxError`s:

- connection refused, DNS failure, deadline: `UnreachableError` (exit 3) naming the address;
- 401/403 (`AuthenticationError`): exit 3 with a hint about `RAY_AUTH_TOKEN` / `RAY_AUTH_TOKEN_PATH` (never the token);
- 404 "does not exist": `JobNotFound`;
- the 500 "already exists" on submit: `submit()` looks the job up and adopts it when its metadata carries the same rlx
  run id (a retry of the same submission), and refuses otherwise.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, TypeVar

from rlx.errors import RlxError, UnreachableError

T = TypeVar("T")

CALL_TIMEOUT = float(os.environ.get("RLX_RAY_TIMEOUT", "30"))  # seconds per SDK call
SUBMIT_TIMEOUT = 120.0  # submission may upload a working_dir
_SUBMISSION_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class JobNotFound(RlxError):
    """Ray does not know this submission id (never submitted, or the cluster lost its history)."""

    exit_code = 3


class RayUnreachable(UnreachableError):
    """No connection to Ray's dashboard (refused, reset or timed out), as opposed to an answer that refuses rlx."""


def submission_id_for(run_id: str) -> str:
    """The Ray submission id of an MLflow run: derived, so a retry after a network error cannot launch twice."""
    sid = f"rlx-{run_id.lower()}"
    if not _SUBMISSION_ID.match(sid):
        raise ValueError(f"cannot derive a safe submission id from run id {run_id!r}")
    return sid


def with_deadline(fn: Callable[[], T], timeout: float, what: str, address: str) -> T:
    """Run `fn` in a daemon thread; raise `UnreachableError` if it has not returned after `timeout` seconds."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, name=f"rlx-ray-{what}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise UnreachableError(
            f"Ray at {address} did not answer within {timeout:.0f}s ({what})",
            hint="check that the cluster is up and the address is its dashboard URL (http://HOST:8265); "
            "RLX_RAY_TIMEOUT sets the deadline",
        )
    if "error" in box:
        raise _translate(box["error"], what, address) from None
    return box["value"]


def _translate(e: BaseException, what: str, address: str) -> BaseException:
    """Map SDK / requests errors to rlx errors; leave the rest alone (KeyboardInterrupt included)."""
    from rlx.redact import redact_text

    text = str(e)
    name = type(e).__name__
    if name == "AuthenticationError" or re.search(r"status code 40[13]", text):
        return UnreachableError(
            f"Ray at {address} refused rlx's credentials ({what})",
            hint="this cluster uses token authentication: set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH to a file "
            "holding the token, in rlx's environment",
        )
    if re.search(r"status code 404", text) or "does not exist" in text:
        return JobNotFound(f"Ray at {address} has no such job ({what})")
    if isinstance(e, (ConnectionError, OSError)) or name in (
        "ConnectionError",
        "ConnectTimeout",
        "ReadTimeout",
        "Timeout",
        "MaxRetryError",
    ):
        return RayUnreachable(
            f"cannot reach Ray at {address} ({what}): {redact_text(text.splitlines()[0] if text else name)}",
            hint="start a cluster (`ray start --head`) or pass its dashboard URL with --address http://HOST:8265; "
            "without --address and RAY_ADDRESS, rlx starts a local head itself",
        )
    return e


def _client_class():
    from ray.job_submission import JobSubmissionClient

    class _Client(JobSubmissionClient):
        """JobSubmissionClient whose requests carry a socket timeout (the SDK passes `**kwargs` to requests)."""

        socket_timeout = CALL_TIMEOUT

        def _do_request(self, method, endpoint, **kwargs):
            kwargs.setdefault("timeout", self.socket_timeout)
            return super()._do_request(method, endpoint, **kwargs)

    return _Client


@contextmanager
def _explicit_address():
    """The SDK lets RAY_ADDRESS/RAY_API_SERVER_ADDRESS override its argument; rlx reports what it uses, so it wins."""
    saved = {k: os.environ.pop(k) for k in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS") if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


class Jobs:
    """A connected Ray Jobs client. Every method runs under a deadline and raises rlx errors."""

    def __init__(self, address: str, *, token: str | None = None, timeout: float = CALL_TIMEOUT):
        self.address = address.rstrip("/")
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else None

        # Import Ray's SDK here, not in the deadline thread: the deadline is for the network, and an import cut off
        # by it would leave a thread holding the import lock that also delays the interpreter's exit.
        client_class = _client_class()

        def connect():
            with _explicit_address():
                return client_class(self.address, headers=headers)

        self._client = with_deadline(connect, timeout, "connect", self.address)
        self.server_version: str | None = getattr(self._client, "_server_ray_version", None)

    def version_skew(self) -> str | None:
        """A warning when the cluster runs another Ray patch version than this client; `UnreachableError` (exit 3)
        when the major.minor versions differ: the Jobs API and runtime_env handling change between minor releases."""
        import ray

        if self.server_version and self.server_version.split(".")[:2] != ray.__version__.split(".")[:2]:
            raise UnreachableError(
                f"the cluster at {self.address} runs Ray {self.server_version}, this machine Ray {ray.__version__}",
                hint=f"install the cluster's version here (pip install 'ray[default]=={self.server_version}'), or "
                "use a cluster that runs this one",
            )
        if self.server_version and self.server_version != ray.__version__:
            return (
                f"the cluster at {self.address} runs Ray {self.server_version}, this machine Ray {ray.__version__}; "
                "install the same version if submission misbehaves"
            )
        return None

    def _call(self, what: str, fn: Callable[[], T], timeout: float | None = None) -> T:
        return with_deadline(fn, timeout or self.timeout, what, self.address)

    # ---- jobs
    def submit(
        self,
        *,
        entrypoint: str,
        submission_id: str,
        run_id: str,
        metadata: dict[str, str],
        runtime_env: dict[str, Any],
        **resources: Any,
    ) -> str:
        """Submit once. A retry of the same submission (same id, same rlx run id) adopts the existing job."""
        try:
            return self._call(
                "submit",
                lambda: self._client.submit_job(
                    entrypoint=entrypoint,
                    submission_id=submission_id,
                    metadata=metadata,
                    runtime_env=runtime_env,
                    **resources,
                ),
                timeout=SUBMIT_TIMEOUT,
            )
        except RuntimeError as e:
            if "already exists" not in str(e):
                from rlx.redact import redact_text

                raise UnreachableError(
                    f"Ray at {self.address} refused the job: {redact_text(str(e).strip().splitlines()[-1][:300])}",
                    hint="check the cluster's dashboard logs; nothing was left running",
                ) from None
        info = self.info(submission_id)
        if (info.metadata or {}).get("rlx.run_id") != run_id:
            raise RlxError(
                f"Ray already has a job {submission_id} that rlx did not submit for run {run_id}",
                hint="start a new run: rlx never reuses a submission id",
            )
        return submission_id

    def status(self, submission_id: str) -> str:
        return str(self._call("status", lambda: self._client.get_job_status(submission_id)).value)

    def info(self, submission_id: str):
        return self._call("info", lambda: self._client.get_job_info(submission_id))

    def logs(self, submission_id: str) -> str:
        return self._call("logs", lambda: self._client.get_job_logs(submission_id))

    def stop(self, submission_id: str) -> bool:
        return bool(self._call("stop", lambda: self._client.stop_job(submission_id)))

    def list(self) -> list:
        return self._call("list", lambda: self._client.list_jobs())

    # ---- cluster
    def resources(self, wait: float = 15.0) -> dict[str, float]:
        """Total resources of the ALIVE nodes (the dashboard's state API), waiting up to `wait` s for the first node:
        right after `ray start` the node table can still be empty."""
        import time

        deadline = time.monotonic() + wait
        while True:

            def fetch():
                r = self._client._do_request("GET", "/api/v0/nodes?limit=10000&detail=false")
                if r.status_code != 200:
                    self._client._raise_error(r)
                return r.json()["data"]["result"]["result"]

            nodes = [n for n in self._call("resources", fetch) if n.get("state") == "ALIVE"]
            if nodes or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        total: dict[str, float] = {}
        for n in nodes:
            for k, v in (n.get("resources_total") or {}).items():
                total[k] = total.get(k, 0.0) + float(v)
        return total
