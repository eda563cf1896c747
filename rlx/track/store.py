"""Every MLflow write of a launch, and the store's URI and HTTP settings for every command: the default URI, the
interactive retries, connecting, the experiment verl will use, the run created before anything is submitted, rlx's
params, and the end of a run from Ray's verdict.

Facts this relies on (reliability.md section 2, verl-on-cpu.md section 8):
- MLflow 3.x defaults to `sqlite:///mlflow.db` relative to the working directory; the job runs elsewhere, so rlx always
  passes an absolute URI. Concurrent first use of a fresh sqlite file races MLflow's migrations: the first client is
  created under an exclusive `fcntl` lock next to the database.
- verl attaches to `MLFLOW_RUN_ID` and then logs its whole config as params flattened with `/`. A key rlx logged with
  another value makes verl's MLflow init fail and verl silently continues without MLflow, so every param rlx logs is
  under `rlx/` (verl has no top-level `rlx` section). The run must also live in the experiment named
  `trainer.project_name`.
- MLflow marks a crashed driver FINISHED and leaves a SIGTERMed one RUNNING: the final status is set here from Ray's.
- An unreachable tracking server takes 247 s to fail with MLflow's default retries: interactive commands set tight
  retry and timeout variables (the user's own values win).
"""

from __future__ import annotations

import fcntl
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rlx.errors import ConfigError, UnreachableError
from rlx.redact import redact, redact_text

PARAM_PREFIX = "rlx/"
MAX_PARAM = 6000  # MLflow truncates longer values with a warning

# Tight HTTP retries for an interactive command; values the user already set are kept.
# One retry of 5 s: a hung server fails in ~11 s, within the 15 s the reliability table allows (2 x 10 s took 30 s);
# `rlx compare` and `rlx runs` use the same.
INTERACTIVE_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
_SET_BY_RLX: set[str] = set()


def interactive_http_env() -> None:
    """Make MLflow fail fast (seconds, not minutes) on an unreachable server, for this process only."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow writes "View run ... at: URL" to stdout when a run on a server ends: it broke `--format json` output.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for k, v in INTERACTIVE_HTTP_ENV.items():
        if k not in os.environ:
            os.environ[k] = v
            _SET_BY_RLX.add(k)


def set_by_rlx() -> frozenset[str]:
    """Environment variables rlx set for itself, which processes it starts (a Ray head, a job) must not inherit."""
    return frozenset(_SET_BY_RLX)


def default_uri(cwd: str | os.PathLike | None = None) -> str:
    """`sqlite:///<cwd>/mlflow.db` with an absolute path (MLflow's own default file name)."""
    return f"sqlite:///{Path(cwd or Path.cwd()).absolute() / 'mlflow.db'}"


def env_or_default_uri() -> str:
    """`MLFLOW_TRACKING_URI`, else `default_uri()`: the store a command reads when not told one."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def normalize_uri(uri: str | None) -> str:
    """An absolute tracking URI: relative sqlite paths and bare paths to `.db` files are made absolute."""
    if not uri:
        return default_uri()
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if not path.startswith("/"):
            return f"sqlite:///{Path(path).absolute()}"
        return uri
    if "://" not in uri and uri.endswith(".db"):
        return f"sqlite:///{Path(uri).absolute()}"
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (None for other URIs or the in-memory database)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def is_local_store(uri: str) -> bool:
    """Whether the store is a path on this machine (a remote Ray driver cannot reach it)."""
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


@contextmanager
def _store_lock(uri: str):
    """Exclusive lock around first use of a sqlite store (MLflow's migrations race on a fresh file)."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(db) + ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as e:
        raise UnreachableError(
            f"cannot open the MLflow store {db}: {e.strerror}",
            where=str(db),
            hint="pass a writable location with --tracking-uri sqlite:////ABS/PATH/mlflow.db",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def connect(uri: str):
    """An `MlflowClient` on a store that answered a query; `UnreachableError` (exit 3) otherwise."""
    import logging

    from mlflow.tracking import MlflowClient

    from rlx import trackuri

    trackuri.check(uri, create=True)  # the wrong part named in a second, before MLflow creates anything
    interactive_http_env()
    for name in ("mlflow.store.db.utils", "alembic"):  # "Creating initial MLflow database tables..." is noise here
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with _store_lock(uri):
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)
    except UnreachableError:
        raise
    except Exception as e:  # MlflowException, sqlalchemy errors, requests errors: all mean "cannot use the store"
        raise UnreachableError(
            f"cannot reach the MLflow tracking store {redact_text(uri)}: {redact_text(trackuri.reason(e))}",
            hint="check the server is up (or the sqlite path is writable), or pass --tracking-uri; "
            "without one rlx uses sqlite:///<cwd>/mlflow.db",
        ) from None
    return client


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def experiment_id(client, name: str, uri: str) -> str:
    """The id of experiment `name`, created if needed (artifacts next to a sqlite database, not in the cwd)."""
    with _store_lock(uri):
        exp = client.get_experiment_by_name(name)
        if exp is None:
            db = sqlite_path(uri)
            location = None
            if db is not None:
                slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "default"
                location = (db.parent / "mlruns" / slug).absolute().as_uri()
            try:
                return client.create_experiment(name, artifact_location=location)
            except Exception:  # created meanwhile by another process
                exp = client.get_experiment_by_name(name)
                if exp is None:
                    raise
    if exp.lifecycle_stage == "deleted":
        raise ConfigError(
            f"the MLflow experiment '{name}' is deleted",
            where="trainer.project_name",
            hint=f"restore it (`mlflow experiments restore --experiment-id {exp.experiment_id}`) "
            "or pick another name with --experiment NAME",
        )
    return exp.experiment_id


def params_for(values: dict[str, Any], secrets: list[str]) -> dict[str, str]:
    """rlx's own params: every key under `rlx/`, values redacted and cut to MLflow's limit."""
    from rlx.render import fmt_value

    out = {}
    for key, value in values.items():
        text = fmt_value(redact(value, key=key, secrets=secrets))
        out[f"{PARAM_PREFIX}{key}"] = text[:MAX_PARAM]
    return out


def create_run(client, exp_id: str, *, run_name: str | None, tags: dict[str, str]) -> str:
    run = client.create_run(exp_id, run_name=run_name, tags=tags)
    return run.info.run_id


def log_launch(client, run_id: str, *, params: dict[str, str], artifacts: dict[str, str], tags: dict[str, str]) -> None:
    """Params (already under `rlx/`), tags and text artifacts (already redacted), in a few batched calls."""
    from mlflow.entities import Param, RunTag

    items = list(params.items())
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=[Param(k, v) for k, v in items[i : i + 100]], synchronous=True)
    if tags:
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()], synchronous=True)
    for path, text in artifacts.items():
        client.log_text(run_id, text, path)


def finish_calls(
    run_id: str, *, mlflow_status: str, job_status: str, log_tail: str | None = None, message: str | None = None
) -> list[dict[str, Any]]:
    """The calls that end a run: the log tail when it failed, Ray's verdict as tags, then the final status."""
    from rlx.track import journal

    calls = [journal.text(run_id, "rlx/job-log-tail.txt", log_tail)] if log_tail else []
    tags = [("rlx.job_status", job_status)]
    if message:
        tags.append(("rlx.job_message", redact_text(message)[-5000:]))
    calls.append(journal.batch(run_id, tags=tags))
    calls.append(journal.terminated(run_id, mlflow_status))
    return calls


def finish(
    client,
    run_id: str,
    *,
    mlflow_status: str,
    job_status: str,
    log_tail: str | None = None,
    message: str | None = None,
    keep=None,
) -> int:
    """Set the run's final status from Ray's verdict (never trust MLflow's own), with the log tail when it failed.

    With `keep` (a `Journal`), a store that cannot be reached (`client` None, or a call failing) does not lose the
    calls: they go to the journal, after any it already holds, and the number kept is returned."""
    calls = finish_calls(run_id, mlflow_status=mlflow_status, job_status=job_status, log_tail=log_tail, message=message)
    return send_or_keep(client, calls, keep)


def send_or_keep(client, calls: list[dict[str, Any]], keep) -> int:
    """Send `calls` in order; without `keep` a failure raises, with it the failed call and the rest are journaled
    (as are all of them while the journal still holds older calls: order matters). Returns how many were kept."""
    from rlx.track import journal

    if keep is not None and keep.pending():
        try:
            if client is None:
                raise ConnectionError("no tracking client")
            keep.replay(client)
        except Exception:  # noqa: BLE001 - still unreachable: the older calls wait, and these after them
            keep.append(calls)
            return len(calls)
    for i, call in enumerate(calls):
        try:
            if client is None:
                raise ConnectionError("no tracking client")
            journal.apply(client, call)
        except Exception:
            if keep is None:
                raise
            keep.append(calls[i:])
            return len(calls) - i
    return 0


def latest(client, run_id: str, keys: tuple[str, ...]) -> dict[str, float]:
    """The latest values of the metrics among `keys` that the run has, plus its highest step as `_step`."""
    run = client.get_run(run_id)
    out = {k: run.data.metrics[k] for k in keys if k in run.data.metrics}
    steps = run.data.metrics.get("training/global_step")
    if steps is not None:
        out["_step"] = steps
    return out
