"""The `ray job submit` command a dry run prints: what `rlx train` would submit, in a form a user can paste.

The parts are the launch's own: verl's overrides from `job_overrides` (mlflow added to `trainer.logger`, literal
secrets replaced), the job's environment (`base_env`: `MLFLOW_TRACKING_URI`, `MLFLOW_RUN_ID`, `PYTHONUNBUFFERED`,
`RLX_VERL_TRACKING`), one CPU for
the driver, and the submission id `rlx-<run id>`. Two values exist only at launch: the MLflow run id (rlx creates the
run before submitting) and, for an unnamed run, the run name's random suffix. They are shown as placeholders and
marked.

Quoting: Ray's CLI joins the words after `--` with `shlex.join` (ray/dashboard/modules/job/cli.py), so the printed
words, split by a POSIX shell, must be exactly the job's argv. Each word is quoted the most readable way that a shell
splits back to the same word: bare when safe, in double quotes when it holds single quotes and nothing a shell expands
inside double quotes, single-quoted otherwise.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any

RUN_ID_PLACEHOLDER = "<run-id>"
DEFAULT_ADDRESS = "http://127.0.0.1:8265"  # Ray's dashboard on the head node
_DOUBLE_QUOTE_UNSAFE = frozenset('"$`\\!')  # special inside "..." (and ! in interactive bash)


VERL_TRACKING = "RLX_VERL_TRACKING"  # rlx.track.verl_tracking.ENV_FLAG (not imported: it needs nothing of it here)


def base_env(tracking_uri: str, run_id: str) -> dict[str, str]:
    """The environment every job rlx submits gets: verl (and rlx's smoke loop) log into rlx's MLflow run, and verl's
    MLflow logger sends through rlx's journal (`rlx.track.verl_tracking`)."""
    return {"MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_RUN_ID": run_id, "PYTHONUNBUFFERED": "1", VERL_TRACKING: "1"}


def quote(word: str) -> str:
    """A shell quoting of `word` that reads well: `a=b` stays bare, `k='~/x y'` becomes `"k='~/x y'"`."""
    quoted = shlex.quote(word)
    if quoted == word or "'" not in word or any(c in _DOUBLE_QUOTE_UNSAFE for c in word):
        return quoted
    return f'"{word}"'


@dataclass
class SubmitCommand:
    """The pieces of the printed `ray job submit` line, and the notes that mark what is decided at launch."""

    address: str
    submission_id: str
    runtime_env: dict[str, Any]
    argv: list[str]
    notes: list[str] = field(default_factory=list)

    def words(self) -> list[str]:
        return [
            "ray",
            "job",
            "submit",
            "--address",
            self.address,
            "--submission-id",
            self.submission_id,
            "--entrypoint-num-cpus",
            "1",
            "--runtime-env-json",
            json.dumps(self.runtime_env, separators=(", ", ": ")),
            "--",
            *self.argv,
        ]

    def text(self) -> str:
        """One pasteable line (long, on purpose: a continuation backslash breaks copy-paste from some terminals)."""
        return " ".join(quote(w) for w in self.words())

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.text(),
            "address": self.address,
            "submission_id": self.submission_id,
            "runtime_env": self.runtime_env,
            "entrypoint": shlex.join(self.argv),
            "notes": self.notes,
        }


def submit_command(
    resolved: Any,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    run_name: str | None = None,
    drawn: bool = False,
) -> SubmitCommand:
    """What `rlx train` (no --smoke) would submit for `resolved`. `run_name`/`drawn` come from
    `rlx.resolve.naming.planned_name`: a drawn name is added as `trainer.experiment_name`, as the launch does."""
    from rlx.launch import JOB_PYTHON_ENV, is_loopback, job_overrides
    from rlx.redact import redact_text, secret_values
    from rlx.resolve.overrides import render_value
    from rlx.track.store import normalize_uri

    secrets = tuple(secret_values(resolved.container(), os.environ))
    overrides, _ = job_overrides(resolved, secrets)
    notes = []
    if drawn and run_name:
        overrides.append(f"trainer.experiment_name={render_value(run_name)}")
        notes.append(
            f"trainer.experiment_name={run_name}: the 4 hex digits are drawn at launch (--name NAME picks the name)"
        )
    given = address or os.environ.get("RAY_ADDRESS") or None
    remote = given is not None and not is_loopback(given)
    python = os.environ.get(JOB_PYTHON_ENV) or ("python" if remote or given is None else sys.executable)
    uri = redact_text(normalize_uri(tracking_uri), secrets)
    env = base_env(uri, RUN_ID_PLACEHOLDER)
    notes.insert(
        0,
        f"{RUN_ID_PLACEHOLDER} (MLFLOW_RUN_ID, and the submission id rlx-{RUN_ID_PLACEHOLDER}): the MLflow "
        "run id, created at launch, before the job is submitted",
    )
    rlx_env = sorted(k for k in env if k.startswith("RLX_") and k != VERL_TRACKING)
    why = (
        "rlx.verl_entry sets RLX_ALGO_CFG itself, inside the job"
        if resolved.entrypoint == "rlx.verl_entry"
        else "a GPU job needs no other"
    )
    notes.append(
        f"RLX_* variables sent: {', '.join([VERL_TRACKING, *rlx_env])} (verl's MLflow logger sends through "
        f"rlx's journal, so a tracking outage neither stalls a step nor drops it; {why})"
    )
    if given is None:
        notes.append(f"--address: none given (--address or RAY_ADDRESS); {DEFAULT_ADDRESS} is a head node's dashboard")
    return SubmitCommand(
        given or DEFAULT_ADDRESS,
        f"rlx-{RUN_ID_PLACEHOLDER}",
        {"env_vars": env},
        [python, "-m", resolved.entrypoint, *overrides],
        notes,
    )
