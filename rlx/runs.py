"""Run lifecycle, for the `rlx runs` commands and any script: list, show, logs, stop, sync and reconcile.

A run is a local record (`$RLX_HOME/runs/<id>/`, `rlx.launch.records`) joined with its MLflow run and its Ray job.
Runs not ended are reconciled with Ray on the way (under deadlines): a job that ended gets its final MLflow status, a
job the cluster forgot (or whose embedded head is gone) becomes LOST. What could not be reached is collected in
`Clients.errors` and `warnings()`, never raised, so a listing stays useful when one cluster is down. Nothing here
renders: the commands (`rlx.commands.runs`) parse, call and print.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

WEEK_S = 7 * 86400
TERMINAL_JOB = ("SUCCEEDED", "FAILED", "STOPPED")


def row(record, mlflow_run, live: str | None) -> dict[str, Any]:
    metrics = mlflow_run.data.metrics if mlflow_run is not None else {}
    return {
        "run_id": record.run_id,
        "state": record.state.value,
        "ray_status": live or record.job_status,
        "mlflow_status": mlflow_run.info.status if mlflow_run is not None else None,
        "algo": record.algo,
        "experiment": record.experiment,
        "run_name": record.run_name,
        "smoke": record.smoke,
        "step": metrics.get("training/global_step"),
        "reward": metrics.get("critic/score/mean"),
        "address": record.address,
        "submission_id": record.submission_id,
        "created": record.created,
        "message": record.message,
    }


class Clients:
    """One MLflow client per tracking URI and one Ray client per address, each failure remembered (not retried)."""

    def __init__(self) -> None:
        self.mlflow: dict[str, Any] = {}
        self.jobs: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def mlflow_for(self, uri: str):
        from rlx.errors import RlxError
        from rlx.track.store import connect

        if uri not in self.mlflow:
            try:
                self.mlflow[uri] = connect(uri)
            except RlxError as e:
                self.mlflow[uri] = None
                self.errors[uri] = e.message
        return self.mlflow[uri]

    def jobs_for(self, record):
        from rlx.errors import RlxError
        from rlx.launch.lifecycle import jobs_for

        key = record.address + (record.token_path or "")
        if key not in self.jobs:
            try:
                self.jobs[key] = jobs_for(record)
            except RlxError as e:
                self.jobs[key] = None
                self.errors[record.address] = e.message
        return self.jobs[key]


def refresh(record, clients: Clients) -> str | None:
    """Reconcile one record; returns Ray's live status when it could be asked."""
    from rlx.errors import RlxError
    from rlx.launch.lifecycle import owner_alive, reconcile, tracking_pending

    if record.state.terminal:
        if tracking_pending(record):  # an outage outlasted the run: send what waits, if the store answers now
            client = clients.mlflow_for(record.tracking_uri)
            if client is not None:
                try:
                    sync(record, client)
                except Exception as e:  # noqa: BLE001 - still unreachable, or refused: `rlx runs sync` says why
                    clients.errors[record.run_id[:12]] = (
                        f"tracking calls still waiting ({first_line(e)}); `rlx runs sync {record.run_id[:12]}` retries"
                    )
        return None
    client = clients.mlflow_for(record.tracking_uri)
    jobs = None
    if not (record.embedded_head and not owner_alive(record)) and record.address != "local":
        jobs = clients.jobs_for(record)
        if jobs is None:
            return "UNREACHABLE"
    try:
        reconcile(record, jobs=jobs, client=client)
    except RlxError as e:
        clients.errors[record.address] = e.message
        return "UNREACHABLE"
    return record.job_status


def mlflow_run(record, clients: Clients):
    client = clients.mlflow_for(record.tracking_uri)
    if client is None:
        return None
    try:
        return client.get_run(record.run_id)
    except Exception:  # noqa: BLE001 - deleted or unreachable: shown as unknown
        return None


def store_only_rows(uri: str | None, known: set[str], clients: Clients, since: float | None) -> list[dict]:
    """rlx runs in the MLflow store without a local record (launched elsewhere): their tags, plus Ray's live
    status for those not ended (read only: without a record, rlx does not change them)."""
    from rlx.track import store as tracking

    if uri is None:
        path = tracking.sqlite_path(tracking.default_uri())
        if path is None or not path.exists():
            return []
    uri = tracking.normalize_uri(uri)
    client = clients.mlflow_for(uri)
    if client is None:
        return []
    try:
        exps = [e.experiment_id for e in client.search_experiments()]
        found = (
            client.search_runs(
                exps, "tags.`rlx.submission_id` LIKE 'rlx-%'", max_results=500, order_by=["attributes.start_time DESC"]
            )
            if exps
            else []
        )
    except Exception as e:  # noqa: BLE001 - listing stays useful without them
        clients.errors[uri] = str(e).splitlines()[0][:200]
        return []
    rows = []
    for run in found:
        tags = run.data.tags
        created = run.info.start_time / 1000
        if run.info.run_id in known or (since is not None and created < since and run.info.status != "RUNNING"):
            continue
        state = tags.get("rlx.job_status")
        live = None
        if state not in ("SUCCEEDED", "FAILED", "STOPPED", "LOST", "ABORTED") and tags.get("rlx.cluster_address"):
            live = live_status(tags["rlx.cluster_address"], tags["rlx.submission_id"], clients)
        rows.append(
            {
                "run_id": run.info.run_id,
                "state": state,
                "ray_status": live,
                "mlflow_status": run.info.status,
                "algo": tags.get("rlx.algo"),
                "experiment": client.get_experiment(run.info.experiment_id).name,
                "run_name": run.info.run_name,
                "smoke": tags.get("rlx.smoke") == "true",
                "step": run.data.metrics.get("training/global_step"),
                "reward": run.data.metrics.get("critic/score/mean"),
                "address": tags.get("rlx.cluster_address"),
                "submission_id": tags.get("rlx.submission_id"),
                "created": created,
                "message": "no local run record",
            }
        )
    return rows


def live_status(address: str, submission_id: str, clients: Clients) -> str:
    from rlx.errors import RlxError
    from rlx.launch.jobs import JobNotFound, Jobs
    from rlx.launch.lifecycle import token_from_env

    if address not in clients.jobs:
        try:
            clients.jobs[address] = Jobs(address, token=token_from_env(), timeout=10)
        except RlxError as e:
            clients.jobs[address] = None
            clients.errors[address] = e.message
    jobs = clients.jobs[address]
    if jobs is None:
        return "UNREACHABLE"
    try:
        return jobs.status(submission_id)
    except JobNotFound:
        return "NOT_FOUND"
    except RlxError:
        return "UNREACHABLE"


def saved_tail(record, clients: Clients) -> str | None:
    client = clients.mlflow_for(record.tracking_uri)
    if client is None:
        return None
    try:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            path = client.download_artifacts(record.run_id, "rlx/job-log-tail.txt", d)
            return open(path).read()
    except Exception:  # noqa: BLE001 - no tail saved
        return None


def first_line(e: BaseException) -> str:
    from rlx.redact import redact_text

    return redact_text((str(e).strip().splitlines() or [type(e).__name__])[0][:300])


def sync(record, client) -> tuple[int, int]:
    """Replay the run's journals in order (the job's, then rlx's end of the run); (calls sent, lines skipped)."""
    from rlx.launch import records

    sent = torn = 0
    for journal in records.journals(record.run_id):
        if journal.pending():
            done = journal.replay(client)
            sent, torn = sent + done.sent, torn + done.torn
    return sent, torn


def warnings(clients: Clients, record=None) -> list[str]:
    """What could not be reached, and, for `record`, the tracking calls an unreachable store left in its journal."""
    out = [f"{where}: {msg}" for where, msg in clients.errors.items()]
    if record is not None:
        from rlx.launch.lifecycle import tracking_pending

        waiting = tracking_pending(record)
        if waiting:
            out.append(
                f"{waiting} tracking call(s) of run {record.run_id[:12]} wait in its journal for the MLflow store "
                f"{record.tracking_uri}; `rlx runs sync {record.run_id[:12]}` sends them once it answers"
            )
    return out


def list_runs(
    *, include_old: bool = False, tracking_uri: str | None = None, clients: Clients | None = None
) -> list[dict]:
    """Every run (newest records first as stored), reconciled: the local records, then the rlx runs of the MLflow
    store `tracking_uri` that have no local record. Without `include_old`, runs that ended over a week ago are left
    out."""
    from rlx.launch import records

    clients = clients if clients is not None else Clients()
    week = time.time() - WEEK_S
    rows = []
    for record in records.all_records():
        if not include_old and record.state.terminal and record.updated < week:
            continue
        live = refresh(record, clients)
        rows.append(row(record, mlflow_run(record, clients), live))
    rows += store_only_rows(tracking_uri, {r["run_id"] for r in rows}, clients, None if include_old else week)
    return rows


def show_run(record, clients: Clients) -> dict[str, Any]:
    """Everything recorded about one run, reconciled first: ids, state, Ray's verdict, MLflow status, latest metrics,
    rlx's tags and artifacts. Secrets redacted."""
    from rlx.launch import records
    from rlx.redact import redact

    live = refresh(record, clients)
    mrun = mlflow_run(record, clients)
    data = row(record, mrun, live)
    data.update(
        {
            "entrypoint": record.entrypoint,
            "config_path": record.config_path,
            "tracking_uri": record.tracking_uri,
            "experiment_id": record.experiment_id,
            "embedded_head": record.embedded_head,
            "run_dir": str(records.run_dir(record.run_id)),
        }
    )
    if mrun is not None:
        data["metrics"] = dict(sorted(mrun.data.metrics.items()))
        data["tags"] = {k: v for k, v in sorted(mrun.data.tags.items()) if k.startswith(("rlx.", "verl."))}
        try:
            client = clients.mlflow_for(record.tracking_uri)
            data["artifacts"] = [a.path for a in client.list_artifacts(record.run_id, "rlx")]
        except Exception:  # noqa: BLE001
            data["artifacts"] = []
    data["errors"] = dict(clients.errors)
    return redact(data)


def stop_run(record, clients: Clients, *, wait: float) -> dict[str, Any]:
    """Stop the run's job and wait up to `wait` s for Ray to confirm; the MLflow run ends KILLED once it does.
    `outcome` is "already ended", "stopped" or "stop requested" (Ray has not confirmed yet)."""
    from rlx.launch.lifecycle import jobs_for, stop_job

    refresh(record, clients)
    outcome = "already ended"
    if not record.state.terminal:
        stop_job(jobs_for(record), record, clients.mlflow_for(record.tracking_uri), wait=wait)
        outcome = "stopped" if record.state.terminal else "stop requested"
    return {"run_id": record.run_id, "outcome": outcome, "state": record.state.value, "ray_status": record.job_status}


@dataclass
class Synced:
    """`sync_runs`'s answer: a row per run, and the runs whose store was unreachable or refused a call."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    unreachable: list[Any] = field(default_factory=list)
    refused: list[Any] = field(default_factory=list)


def sync_runs(selected: list, clients: Clients) -> Synced:
    """Replay the journals of `selected` runs (in order, idempotent). A run whose store cannot be reached or refuses
    a call keeps its journal; it is listed in `unreachable` or `refused`."""
    from rlx.launch.lifecycle import tracking_pending

    out = Synced()
    for record in selected:
        r: dict[str, Any] = {"run_id": record.run_id, "sent": 0, "skipped": 0, "pending": tracking_pending(record)}
        client = clients.mlflow_for(record.tracking_uri) if r["pending"] else None
        if r["pending"] and client is None:
            out.unreachable.append(record)
            r["error"] = clients.errors.get(record.tracking_uri)
        elif r["pending"]:
            try:
                r["sent"], r["skipped"] = sync(record, client)
            except Exception as e:  # noqa: BLE001 - MLflow refused or went away mid-replay; the journal keeps the rest
                r["error"] = first_line(e)
                (out.unreachable if "onnect" in r["error"] or "timed out" in r["error"] else out.refused).append(record)
            r["pending"] = tracking_pending(record)
        out.rows.append(r)
    return out
