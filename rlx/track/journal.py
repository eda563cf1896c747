"""What could not reach MLflow, kept in order on local disk and replayed later: a tracking outage loses nothing.

A journal is a JSON-lines file of tracking calls for one MLflow run, each line one call:

    {"op": "batch", "run_id": "...", "metrics": [[key, value, timestamp_ms, step], ...], "params": [[k, v]],
     "tags": [[k, v]]}
    {"op": "text", "run_id": "...", "path": "rlx/job-log-tail.txt", "text": "..."}
    {"op": "terminated", "run_id": "...", "status": "FINISHED", "end_time": 1764...}

Next to it, `<journal>.sent` holds how many lines have been replayed. Replay sends the rest in order and advances
that count after each call, so a replay cut short resumes where it stopped. Sending a call twice is harmless:
metrics keep their original timestamps, and MLflow's SQL stores merge a metric whose (key, timestamp, step, value)
they already hold (`SqlAlchemyStore._log_metrics`); params with the same value, tags and texts overwrite. A run
replayed after an outage therefore holds every step exactly once.

`Outbox` is the sender a training job uses: calls go out from a background thread, so a slow or dead server never
stalls a step; when a call fails, it and every call after it go to the journal until a replay (tried every
`probe_every` seconds) succeeds.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL_ENV = "RLX_TRACKING_JOURNAL"  # where a job keeps its journal (rlx sets it for jobs on this machine)
FINISH_WAIT_ENV = "RLX_TRACKING_FINISH_WAIT"  # seconds a job waits at its end for the server to come back
FINISH_WAIT = 15.0
PROBE_EVERY = 5.0

# A bounded wait per call in a job (the user's own values win): MLflow's defaults retry for minutes (reliability.md),
# and a journal makes waiting pointless.
JOB_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}

Entry = dict[str, Any]


def batch(run_id: str, *, metrics: Iterable = (), params: Iterable = (), tags: Iterable = ()) -> Entry:
    """A `log_batch` call from MLflow entities (or `(key, value)` pairs for params and tags)."""
    return {
        "op": "batch",
        "run_id": run_id,
        "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
        "params": [list(_pair(p)) for p in params],
        "tags": [list(_pair(t)) for t in tags],
    }


def text(run_id: str, path: str, body: str) -> Entry:
    return {"op": "text", "run_id": run_id, "path": path, "text": body}


def terminated(run_id: str, status: str, end_time: int | None = None) -> Entry:
    return {
        "op": "terminated",
        "run_id": run_id,
        "status": status,
        "end_time": end_time if end_time is not None else int(time.time() * 1000),
    }


def _pair(item) -> tuple[str, str]:
    if isinstance(item, (tuple, list)):
        return str(item[0]), str(item[1])
    return item.key, str(item.value)


def apply(client, entry: Entry) -> None:
    """Send one journaled call to MLflow (raises what MLflow raises)."""
    from mlflow.entities import Metric, Param, RunTag

    run_id, op = entry["run_id"], entry["op"]
    if op == "batch":
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), int(ts), int(step)) for k, v, ts, step in entry["metrics"]],
            params=[Param(k, v) for k, v in entry["params"]],
            tags=[RunTag(k, v) for k, v in entry["tags"]],
            synchronous=True,
        )
    elif op == "text":
        client.log_text(run_id, entry["text"], entry["path"])
    elif op == "terminated":
        client.set_terminated(run_id, status=entry["status"], end_time=entry["end_time"])
    else:
        raise ValueError(f"unknown journal op {op!r}")


@dataclass
class Replayed:
    sent: int  # calls sent by this replay
    pending: int  # calls still in the journal
    torn: int  # lines that could not be read (cut by a kill mid-write), skipped


class Journal:
    """An append-only file of tracking calls, with the count already replayed beside it."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.sent_path = self.path.with_name(self.path.name + ".sent")
        self._lock = threading.Lock()

    def append(self, entries: Entry | Iterable[Entry]) -> None:
        """Append calls, one line each; a line cut by an earlier kill is closed first, so it spoils only itself."""
        items = [entries] if isinstance(entries, dict) else list(entries)
        if not items:
            return
        data = "".join(json.dumps(e, separators=(",", ":"), allow_nan=True) + "\n" for e in items)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as f:
                if f.tell() and not self._ends_with_newline():
                    data = "\n" + data
                f.write(data.encode())
                f.flush()
                os.fsync(f.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def sent(self) -> int:
        try:
            return int(self.sent_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _mark_sent(self, n: int) -> None:
        tmp = self.sent_path.with_name(self.sent_path.name + ".tmp")
        tmp.write_text(f"{n}\n")
        os.replace(tmp, self.sent_path)

    def _lines(self) -> list[bytes]:
        try:
            return self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return []

    def pending(self) -> int:
        """Calls not yet replayed (torn lines included)."""
        return max(len(self._lines()) - self.sent(), 0)

    def unsent(self) -> Iterator[tuple[int, Entry | None]]:
        """(line number, call) for each line after the replayed ones; None for a line that cannot be read."""
        lines = self._lines()
        for i in range(self.sent(), len(lines)):
            try:
                yield i, json.loads(lines[i])
            except ValueError:
                yield i, None

    def replay(self, client, *, progress: Callable[[int], None] | None = None) -> Replayed:
        """Send the unsent calls in order, marking each one sent; raises on the first call MLflow refuses."""
        sent = torn = 0
        with self._lock:
            for i, entry in self.unsent():
                if entry is None:
                    torn += 1
                else:
                    apply(client, entry)
                    sent += 1
                self._mark_sent(i + 1)
                if progress is not None:
                    progress(sent)
            return Replayed(sent, self.pending(), torn)


class Outbox:
    """Tracking calls sent in order from a background thread; what cannot be sent waits in the journal.

    `put` never blocks. After a failure every call is journaled (order is kept) and a replay is tried at most every
    `probe_every` seconds; `close` waits up to `wait` seconds for the journal to drain and returns what is left.
    """

    def __init__(
        self, client, journal: Journal, *, probe_every: float = PROBE_EVERY, note: Callable[[str], None] | None = None
    ) -> None:
        self.client, self.journal, self.probe_every = client, journal, probe_every
        self.note = note or (lambda _text: None)
        self.offline = journal.pending() > 0  # a journal left by an earlier attempt is replayed first
        self._next_probe = 0.0
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="rlx-tracking-outbox", daemon=True)
        self._thread.start()

    def put(self, entry: Entry) -> None:
        self._queue.put(entry)

    def _run(self) -> None:
        while True:
            try:
                entry = self._queue.get(timeout=self.probe_every)
            except queue.Empty:
                if self.offline:
                    self._replay()
                continue
            if entry is None:
                return
            self._ship(entry)

    def _ship(self, entry: Entry) -> None:
        if not self.offline:
            try:
                apply(self.client, entry)
                return
            except Exception as e:  # noqa: BLE001 - any failure to send: keep the call, send it later
                self.offline = True
                self._next_probe = time.monotonic() + self.probe_every
                self.note(
                    f"rlx: tracking unreachable ({_first_line(e)}); keeping metrics in {self.journal.path} "
                    "and training on"
                )
        self.journal.append(entry)
        self._replay()

    def _replay(self, force: bool = False) -> None:
        if not force and time.monotonic() < self._next_probe:
            return
        try:
            done = self.journal.replay(self.client)
        except Exception:  # noqa: BLE001 - still down: try again later
            self._next_probe = time.monotonic() + self.probe_every
            return
        if self.offline:
            self.offline = False
            self.note(f"rlx: tracking is back; replayed {done.sent} buffered calls from {self.journal.path}")

    def close(self, wait: float) -> int:
        """Send what is queued, wait up to `wait` s for a down server, and return the calls left in the journal."""
        self._queue.put(None)
        self._thread.join()
        deadline = time.monotonic() + wait
        while self.offline and self.journal.pending():
            self._replay(force=True)
            if not self.offline or time.monotonic() >= deadline:
                break
            time.sleep(min(self.probe_every, max(deadline - time.monotonic(), 0.0)))
        return self.journal.pending() if self.offline else 0


def _first_line(e: BaseException) -> str:
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return line[:200]
