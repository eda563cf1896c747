"""A launched run's life after submission: follow it, reconcile it with Ray, finish its MLflow run.

Ray is the source of truth for how a job ended (MLflow marks a crashed driver FINISHED and leaves a killed one
RUNNING). `reconcile()` moves a local record to its terminal state and sets the MLflow status to match:

    Ray SUCCEEDED -> record SUCCEEDED, MLflow FINISHED
    Ray FAILED    -> record FAILED,    MLflow FAILED
    Ray STOPPED   -> record STOPPED,   MLflow KILLED
    (each with the last 200 log lines as the artifact `rlx/job-log-tail.txt`: `rlx runs logs` falls back to it)
    Ray 404 after SUBMITTED, or the embedded head is gone -> record LOST, MLflow FAILED (tag rlx.job_status=LOST)
    Ray 404 before SUBMITTED                              -> record ABORTED, MLflow KILLED
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rlx.errors import UnreachableError
from rlx.launch import records
from rlx.launch.jobs import JobNotFound, Jobs
from rlx.launch.records import FROM_RAY, TO_MLFLOW, RunRecord, State
from rlx.redact import redact_text

if TYPE_CHECKING:
    from rich.live import Live

LOG_TAIL_LINES = 200
LOST_AFTER = 60.0  # seconds of an unreachable cluster before a followed run counts as lost (RLX_LOST_AFTER)
PENDING_WARN = 120.0  # seconds PENDING before rlx says the job may be waiting for resources
REWARD_KEYS = ("critic/score/mean", "critic/rewards/mean")
_RAY_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


def token_from_env() -> str | None:
    """The Ray auth token rlx sends as a bearer header: `RAY_AUTH_TOKEN`, else the file `RAY_AUTH_TOKEN_PATH`."""
    token = os.environ.get("RAY_AUTH_TOKEN")
    if token:
        return token.strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        try:
            return open(path).read().strip() or None
        except OSError:
            return None
    return None


def jobs_for(record: RunRecord) -> Jobs:
    """A Jobs client for a record's cluster (an embedded head's token file while its owner lives)."""
    if record.embedded_head and not owner_alive(record):
        raise UnreachableError(
            f"the local Ray head of run {record.run_id} ended with the rlx that started it",
            hint="its job ended with it; `rlx runs show ID` shows what was recorded",
        )
    token = None
    if record.token_path:
        try:
            token = open(record.token_path).read().strip()
        except OSError:
            token = None
    return Jobs(record.address, token=token or token_from_env())


def owner_alive(record: RunRecord) -> bool:
    """Whether the rlx process that launched the run (and owns its embedded head) still runs."""
    if record.owner_pid == os.getpid():
        return True
    import psutil

    return psutil.pid_exists(record.owner_pid)


def log_tail(text: str, n: int = LOG_TAIL_LINES, secrets: tuple[str, ...] = ()) -> str:
    return redact_text("\n".join(text.splitlines()[-n:]) + "\n", secrets)


def _client(record: RunRecord):
    from rlx.track.store import connect

    return connect(record.tracking_uri)


def finish(
    record: RunRecord,
    state: State,
    *,
    client=None,
    job_status: str | None = None,
    message: str | None = None,
    logs: str | None = None,
) -> RunRecord:
    """Move `record` to terminal `state` and set its MLflow run's final status (log tail for FAILED/STOPPED).

    Ray's verdict is final whether or not MLflow answers: if the store cannot be reached, the calls that end the
    MLflow run wait in the run's client journal (after whatever the job journaled), `tracking_pending(record)` says
    how many calls of the run wait in all, and `rlx runs sync` (or the next `rlx runs ls`) sends them."""
    from rlx.track import store as tracking

    job_status = job_status or state.value
    tail = log_tail(logs) if logs else None
    message = redact_text(message) if message else None
    if client is None:
        try:
            client = _client(record)
        except UnreachableError:
            client = None
    job_journal, client_journal = records.journals(record.run_id)
    if client is not None and job_journal.pending():  # the job's own calls first: its metrics, then its end
        try:
            job_journal.replay(client)
        except Exception:  # noqa: BLE001 - still unreachable: ours wait behind them
            client = None
    tracking.finish(
        client,
        record.run_id,
        mlflow_status=TO_MLFLOW[state],
        job_status=job_status,
        log_tail=tail,
        message=message,
        keep=client_journal,
    )
    records.save(record, state, job_status=job_status, message=message)
    return record


def tracking_pending(record: RunRecord) -> int:
    """Tracking calls of this run still waiting in its journals (0 when MLflow has everything)."""
    return sum(j.pending() for j in records.journals(record.run_id))


def reconcile(record: RunRecord, *, jobs: Jobs | None = None, client=None) -> RunRecord:
    """Bring a non-terminal record (and its MLflow run) in line with Ray. Leaves it alone if Ray cannot be asked."""
    if record.state.terminal:
        return record
    if record.embedded_head and not owner_alive(record):
        state = State.LOST if record.state is State.SUBMITTED else State.ABORTED
        return finish(
            record, state, client=client, message="the local Ray head ended with the rlx process that started it"
        )
    if record.address == "local":  # --smoke --local: the run lived in its owner's process
        if owner_alive(record):
            return record
        return finish(record, State.LOST, client=client, message="the rlx process running it exited")
    try:
        jobs = jobs or jobs_for(record)
        info = jobs.info(record.submission_id)
    except JobNotFound:
        if record.state is State.SUBMITTED:
            return finish(
                record,
                State.LOST,
                client=client,
                message=f"Ray at {record.address} no longer knows job {record.submission_id}",
            )
        return finish(record, State.ABORTED, client=client, message="interrupted before Ray accepted the job")
    status = str(info.status.value if hasattr(info.status, "value") else info.status)
    if status not in _RAY_TERMINAL:
        if record.state is not State.SUBMITTED or record.job_status != status:
            records.save(record, State.SUBMITTED, job_status=status)
        return record
    try:  # saved for every outcome: an embedded head takes its logs with it
        logs = jobs.logs(record.submission_id)
    except Exception:  # noqa: BLE001 - the tail is a courtesy; Ray's message is in the record anyway
        logs = info.message or ""
    message = info.message if status != "SUCCEEDED" else None
    if status == "FAILED":  # Ray's message is a header and 20,000 characters of log: say it in one readable line
        from rlx.launch.failure import failure_summary

        message = failure_summary(info.message, exit_code=getattr(info, "driver_exit_code", None), logs=logs)
    elif message and len(message) > 500:
        message = "..." + message[-500:]
    return finish(record, FROM_RAY[status], client=client, job_status=status, message=message, logs=logs)


def stop_job(jobs: Jobs, record: RunRecord, client, *, wait: float) -> RunRecord:
    """Ask Ray to stop the run's job, wait up to `wait` s for it to report the job ended, then reconcile the record
    (and its MLflow run) with what Ray says. Still not ended after `wait`: the record stays open for `reconcile`."""
    jobs.stop(record.submission_id)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and jobs.status(record.submission_id) not in _RAY_TERMINAL:
        time.sleep(0.5)
    return reconcile(record, jobs=jobs, client=client)


def exit_code(state: State) -> int:
    return {State.SUCCEEDED: 0, State.FAILED: 4, State.STOPPED: 4, State.LOST: 3, State.ABORTED: 130}.get(state, 0)


# ---- following -----------------------------------------------------------------------------------------------------


@dataclass
class Status:
    state: str
    step: float | None = None
    reward: float | None = None
    started: float = 0.0
    health: str | None = None  # the first failing `rlx runs doctor` check, once one has fired

    def line(self) -> str:
        parts = [f"{self.state:<9}"]
        parts.append(f"step {int(self.step)}" if self.step is not None else "step -")
        parts.append(f"reward {self.reward:.4g}" if self.reward is not None else "reward -")
        if self.health:
            parts.append(self.health)
        parts.append(f"elapsed {_fmt_elapsed(time.monotonic() - self.started)}")
        return "  ".join(parts)


def _fmt_elapsed(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def read_progress(client, run_id: str) -> tuple[float | None, float | None]:
    """(latest step, latest reward) from the MLflow run; (None, None) when it cannot be read now."""
    try:
        metrics = client.get_run(run_id).data.metrics
    except Exception:  # noqa: BLE001 - progress is cosmetic; the job status comes from Ray
        return None, None
    step = metrics.get("training/global_step")
    if step is None:
        try:
            hist = client.get_metric_history(run_id, next((k for k in REWARD_KEYS if k in metrics), ""))
            step = max((m.step for m in hist), default=None)
        except Exception:  # noqa: BLE001
            step = None
    reward = next((metrics[k] for k in REWARD_KEYS if k in metrics), None)
    return step, reward


class Display:
    """Log lines plus one status line: rich Live on a terminal, a plain line per change otherwise."""

    def __init__(self, *, json_mode: bool, secrets: tuple[str, ...] = ()):
        self.json_mode = json_mode
        self.secrets = secrets
        self.live: Live | None = None
        self._last = ""
        self._partial = ""
        self.tty = not json_mode and sys.stdout.isatty()

    def __enter__(self) -> Display:
        if self.tty:
            from rich.live import Live
            from rich.text import Text

            from rlx.render import console

            self.live = Live(Text(""), console=console(), transient=True, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def logs(self, chunk: str) -> None:
        """Print complete lines (redacted); keep a trailing partial line until it completes."""
        text = self._partial + chunk
        complete, sep, self._partial = text.rpartition("\n")
        if sep:
            self._emit(redact_text(complete + "\n", self.secrets))

    def flush(self) -> None:
        if self._partial:
            self._emit(redact_text(self._partial + "\n", self.secrets))
            self._partial = ""

    def _emit(self, text: str) -> None:
        if self.live is not None:
            self.live.console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        else:
            stream = sys.stderr if self.json_mode else sys.stdout
            stream.write(text)
            stream.flush()

    def status(self, status: Status) -> None:
        line = status.line()
        if self.live is not None:
            from rich.text import Text

            self.live.update(Text(line, style="bold"))
        elif not self.json_mode:
            key = line.rsplit("  elapsed", 1)[0]
            if key != self._last:  # a plain line per change, not per tick
                sys.stderr.write(f"[rlx] {line}\n")
                sys.stderr.flush()
                self._last = key

    def note(self, text: str) -> None:
        if self.live is not None:
            self.live.console.print(text, markup=False, highlight=False)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()


class Health(Protocol):
    """Judges a run while it is followed; rlx.doctor.live.LiveDoctor is the one the CLI passes. Launch knows only
    this shape: the doctor is a later stage (it reads runs through compare)."""

    def apply(
        self, status: Status, display: Display | None = None, note: Callable[[str], None] | None = None
    ) -> None: ...


def follow(
    jobs: Jobs,
    record: RunRecord,
    display: Display,
    *,
    client=None,
    health: Health | None = None,
    interval: float = 1.0,
    lost_after: float | None = None,
    until: Callable[[str], bool] | None = None,
    watch_record: bool = False,
) -> str:
    """Stream the job's logs and its status until it ends; returns Ray's final status (or "LOST").

    Ray unreachable for `lost_after` seconds in a row (default: `RLX_LOST_AFTER`, else 60) counts as the cluster
    being gone. With `watch_record` (`rlx runs logs -f`), a run record deleted meanwhile ends the follow with a
    `ConfigError` that says how to reach the job without it.
    """
    if lost_after is None:
        lost_after = float(os.environ.get("RLX_LOST_AFTER") or LOST_AFTER)
    status = Status(record.job_status or "PENDING", started=time.monotonic())
    doctor = health if client is not None else None
    printed = 0
    pending_warned = False
    unreachable_since: float | None = None
    record_file = records.run_dir(record.run_id) / "record.json"
    while True:
        if watch_record and not record_file.exists():
            from rlx.errors import ConfigError

            display.flush()
            raise ConfigError(
                f"the run record of {record.run_id[:12]} was removed while following it",
                where=str(record_file),
                hint=f"the job {record.submission_id} is unaffected on {record.address}: `ray job logs --address "
                f"{record.address} {record.submission_id} -f` follows it, `ray job stop ...` stops it",
            )
        try:
            job_status = jobs.status(record.submission_id)
            logs = jobs.logs(record.submission_id)
            unreachable_since = None
        except JobNotFound:
            return "LOST"
        except UnreachableError as e:
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if now - unreachable_since >= lost_after:
                display.note(f"rlx: {e.message}")
                return "LOST"
            time.sleep(interval)
            continue
        if len(logs) < printed:  # the log was rotated or replaced: start over
            printed = 0
        display.logs(logs[printed:])
        printed = len(logs)
        status.state = job_status
        if client is not None:
            step, reward = read_progress(client, record.run_id)
            status.step = step if step is not None else status.step
            status.reward = reward if reward is not None else status.reward
            if doctor is not None:
                doctor.apply(status, display)
        display.status(status)
        if job_status == "PENDING" and not pending_warned and time.monotonic() - status.started > PENDING_WARN:
            pending_warned = True
            display.note(
                f"rlx: still PENDING after {PENDING_WARN:.0f}s: the cluster may lack the resources the job "
                f"asks for. `rlx runs stop {record.run_id[:12]}` stops it"
            )
        if job_status != record.job_status:
            records.save(record, job_status=job_status)
        if job_status in _RAY_TERMINAL or (until is not None and until(job_status)):
            display.flush()
            return job_status
        # Poll slower as the log grows: get_job_logs returns the whole log every time.
        time.sleep(interval + min(len(logs) / 2_000_000, 4.0))
