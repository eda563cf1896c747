"""Local run records: one small JSON file per run, written atomically before anything is submitted.

A record is the launcher's memory. It is written (temp file, fsync, rename) in state PREPARED as soon as the MLflow run
exists, moved to SUBMITTING just before the POST to Ray and to SUBMITTED when Ray accepted the job. Whatever happens
next (Ctrl-C, a crash, a lost network) `rlx runs ls` finds the record and reconciles it with Ray:

    PREPARED -> SUBMITTING -> SUBMITTED -> SUCCEEDED | FAILED | STOPPED | LOST
         \\-----------\\-> ABORTED (never reached Ray)

Records live in `$RLX_HOME/runs/<run_id>/record.json` (default `RLX_HOME` = `./.rlx` in the working directory), next
to the resolved config the job reads.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from rlx.errors import UsageError
from rlx.fsutil import atomic_write_text


class State(str, Enum):
    PREPARED = "PREPARED"  # MLflow run created, nothing sent to Ray
    SUBMITTING = "SUBMITTING"  # the submit request may or may not have reached Ray
    SUBMITTED = "SUBMITTED"  # Ray accepted the job (PENDING or RUNNING there)
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    LOST = "LOST"  # the cluster forgot the job or is gone: the outcome is unknown
    ABORTED = "ABORTED"  # interrupted before Ray ever saw the job

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({State.SUCCEEDED, State.FAILED, State.STOPPED, State.LOST, State.ABORTED})

# Ray job status -> record state, and record state -> MLflow run status.
FROM_RAY = {"SUCCEEDED": State.SUCCEEDED, "FAILED": State.FAILED, "STOPPED": State.STOPPED}
TO_MLFLOW = {
    State.SUCCEEDED: "FINISHED",
    State.FAILED: "FAILED",
    State.STOPPED: "KILLED",
    State.LOST: "FAILED",
    State.ABORTED: "KILLED",
}


@dataclass
class RunRecord:
    """What rlx knows about one launched run. Everything in it has been through redaction."""

    run_id: str  # the MLflow run id (rlx's id for the run)
    submission_id: str
    experiment: str
    experiment_id: str
    tracking_uri: str
    address: str  # the Ray dashboard address the job was (or will be) submitted to
    embedded_head: bool  # True: the head lived only as long as the launching rlx process
    state: State = State.PREPARED
    job_status: str | None = None  # Ray's last reported status
    message: str | None = None
    algo: str | None = None
    preset: str | None = None
    smoke: bool = False
    run_name: str | None = None
    entrypoint: str = ""
    config_path: str = ""
    token_path: str | None = None  # an embedded head's 0600 token file (the path, never the token)
    head_pids: list[int] = field(default_factory=list)  # an embedded head's processes, to check they are gone
    owner_pid: int = field(default_factory=os.getpid)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = self.state.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in d.items() if k in known}
        data["state"] = State(data.get("state", State.PREPARED))
        return cls(**data)


def home() -> Path:
    """rlx's state folder: `$RLX_HOME`, else `.rlx` in the working directory (absolute)."""
    return Path(os.environ.get("RLX_HOME") or Path.cwd() / ".rlx").absolute()


def runs_dir() -> Path:
    return home() / "runs"


def run_dir(run_id: str) -> Path:
    return runs_dir() / run_id


JOB_JOURNAL = "tracking-journal-job.jsonl"  # what the job could not send (a job on this machine writes it here)
CLIENT_JOURNAL = "tracking-journal-client.jsonl"  # what rlx could not send when it ended the run


def journals(run_id: str):
    """The run's tracking journals (`rlx.track.journal.Journal`), in replay order: the job's, then rlx's own end."""
    from rlx.track.journal import Journal

    return [Journal(run_dir(run_id) / JOB_JOURNAL), Journal(run_dir(run_id) / CLIENT_JOURNAL)]


def save(record: RunRecord, state: State | None = None, *, create: bool = False, **changes: Any) -> RunRecord:
    """Update `record` (state and fields) and write it atomically.

    Only the first save (`create=True`) makes the file. A record removed since (by the user, or `rm -r .rlx`) is
    updated in memory but not written back: a follower that raced the deletion must not resurrect it.
    """
    if state is not None:
        record.state = state
    for k, v in changes.items():
        setattr(record, k, v)
    record.updated = time.time()
    path = run_dir(record.run_id) / "record.json"
    if create or path.exists():
        atomic_write_text(path, json.dumps(record.to_dict(), indent=2) + "\n")
    return record


def load(path: Path) -> RunRecord | None:
    """A record from its file; None (and the file quarantined as `record.json.corrupt`) when unreadable."""
    try:
        return RunRecord.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError):
        _quarantine(path)
        return None


def _quarantine(path: Path) -> None:
    """Move an unreadable record aside (never over an earlier one) and say so: it is evidence, not garbage."""
    import sys

    target = path.with_name(path.name + ".corrupt")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt.{n}")
        n += 1
    try:
        path.rename(target)
    except OSError as e:
        sys.stderr.write(f"warning: corrupt run record {path} (cannot move it aside: {e.strerror})\n")
        return
    sys.stderr.write(f"warning: corrupt run record {path} moved to {target.name}; the run is not listed\n")


def all_records() -> list[RunRecord]:
    """Every readable record, newest first."""
    base = runs_dir()
    if not base.is_dir():
        return []
    out = [r for p in base.glob("*/record.json") if (r := load(p)) is not None]
    return sorted(out, key=lambda r: r.created, reverse=True)


def find(ref: str) -> RunRecord:
    """The record that `ref` names: a run id or submission id, a run name, or a unique prefix of any of them.

    An exact id wins over an exact name, which wins over a prefix (so `gspo-copy-3f9a` is never shadowed by
    `gspo-copy-3f9a2` and an id is never shadowed by a name). No match or several matches: a usage error (exit 2)
    that lists the candidates.
    """
    records = all_records()
    matches = (
        [r for r in records if ref in (r.run_id, r.submission_id)]
        or [r for r in records if r.run_name == ref]
        or [
            r
            for r in records
            if r.run_id.startswith(ref) or r.submission_id.startswith(ref) or (r.run_name or "").startswith(ref)
        ]
    )
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(
            f"no run '{ref}' in {runs_dir()}",
            hint="`rlx runs ls` lists the runs launched from this directory (or set RLX_HOME)",
        )
    matches.sort(key=lambda r: r.created, reverse=True)
    shown = [f"  {r.run_id[:12]}  {r.run_name or '-'}  {r.state.value}" for r in matches[:10]]
    if len(matches) > 10:
        shown.append(f"  ... and {len(matches) - 10} more")
    raise UsageError(
        f"'{ref}' matches {len(matches)} runs:\n" + "\n".join(shown),
        hint="give the run id (or more of it) or a longer part of the name",
    )
