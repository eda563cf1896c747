"""`rlx runs ls|show|logs|stop`: launched runs, their MLflow runs joined with live Ray job states.

The run list comes from the local run records (`$RLX_HOME/runs`, default `./.rlx/runs`) and from MLflow runs that
carry rlx's tags. Non-terminal runs are reconciled with Ray on the way (under deadlines): a job that ended gets its
final MLflow status, a job the cluster forgot (or whose embedded head is gone) becomes LOST.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from rlx.commands.complete import launched_runs
from rlx.commands.options import format_option, tracking_uri_option
from rlx.render import Format

RUNS_EPILOG = """\
\b
Examples:
  $ rlx runs ls
  $ rlx runs ls --format json | jq '.[] | select(.state == "FAILED") | .run_id'
  $ rlx runs show 8df8872c                    # a run id, or a unique prefix of it
  $ rlx runs show gspo-copy-3f9a              # a run name, or a unique prefix of it
  $ rlx runs logs gspo-copy -f
  $ rlx runs stop 8df8872c
  $ rlx runs sync 8df8872c                    # send what a tracking outage left in the run's journal
  $ rlx runs doctor gspo-copy-3f9a            # health checks of a run's metric histories
"""

runs_app = typer.Typer(
    name="runs",
    help="Launched runs: list, inspect, follow logs, stop, check health.",
    epilog=RUNS_EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _row(record, mlflow_run, live: str | None) -> dict[str, Any]:
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


class _Clients:
    """One MLflow client per tracking URI and one Ray client per address, each failure remembered (not retried)."""

    def __init__(self) -> None:
        self.mlflow: dict[str, Any] = {}
        self.jobs: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def mlflow_for(self, uri: str):
        from rlx.errors import RlxError
        from rlx.launch.tracking import connect

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


def _refresh(record, clients: _Clients) -> str | None:
    """Reconcile one record; returns Ray's live status when it could be asked."""
    from rlx.errors import RlxError
    from rlx.launch.lifecycle import owner_alive, reconcile, tracking_pending

    if record.state.terminal:
        if tracking_pending(record):  # an outage outlasted the run: send what waits, if the store answers now
            client = clients.mlflow_for(record.tracking_uri)
            if client is not None:
                try:
                    _sync(record, client)
                except Exception as e:  # noqa: BLE001 - still unreachable, or refused: `rlx runs sync` says why
                    clients.errors[record.run_id[:12]] = (
                        f"tracking calls still waiting ({_first_line(e)}); `rlx runs sync {record.run_id[:12]}` retries"
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


def _mlflow_run(record, clients: _Clients):
    client = clients.mlflow_for(record.tracking_uri)
    if client is None:
        return None
    try:
        return client.get_run(record.run_id)
    except Exception:  # noqa: BLE001 - deleted or unreachable: shown as unknown
        return None


def _store_only_rows(uri: str | None, known: set[str], clients: _Clients, since: float | None) -> list[dict]:
    """rlx runs in the MLflow store without a local record (launched elsewhere): their tags, plus Ray's live
    status for those not ended (read only: without a record, rlx does not change them)."""
    from rlx.launch import tracking

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
            live = _live_status(tags["rlx.cluster_address"], tags["rlx.submission_id"], clients)
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


def _live_status(address: str, submission_id: str, clients: _Clients) -> str:
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


def _warn(clients: _Clients, record=None) -> None:
    """What a command could not reach, on stderr (its answer on stdout is what it had); and, for `record`, the
    tracking calls an unreachable store left in the run's journal."""
    from rlx.render import err_console

    for where, msg in clients.errors.items():
        err_console().print(f"[yellow]warning:[/yellow] {where}: {msg}", markup=True, highlight=False, soft_wrap=True)
    if record is not None:
        from rlx.launch.lifecycle import tracking_pending

        waiting = tracking_pending(record)
        if waiting:
            err_console().print(
                f"[yellow]warning:[/yellow] {waiting} tracking call(s) of run {record.run_id[:12]} wait in its journal "
                f"for the MLflow store {record.tracking_uri}; `rlx runs sync {record.run_id[:12]}` sends them once it "
                "answers",
                markup=True,
                highlight=False,
                soft_wrap=True,
            )


def _age(ts: float) -> str:
    s = int(time.time() - ts)
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit} ago"
    return f"{s}s ago"


@runs_app.command("ls", epilog=RUNS_EPILOG)
def ls(
    all_: bool = typer.Option(False, "--all", "-a", help="Include runs that ended more than a week ago."),
    tracking_uri: str | None = tracking_uri_option(
        "Also list rlx runs of this MLflow store that have no local record (default: ./mlflow.db when it exists)."
    ),
    format: Format = format_option(),
) -> int:
    """List launched runs with their live Ray job state and MLflow status (reconciling ended jobs)."""
    from rlx.launch import records
    from rlx.render import console, emit_json, fmt_value, table

    clients = _Clients()
    week = time.time() - 7 * 86400
    rows = []
    for record in records.all_records():
        if not all_ and record.state.terminal and record.updated < week:
            continue
        live = _refresh(record, clients)
        rows.append(_row(record, _mlflow_run(record, clients), live))
    rows += _store_only_rows(tracking_uri, {r["run_id"] for r in rows}, clients, None if all_ else week)
    if format is Format.json:
        emit_json(rows)
        return 0
    if not rows:
        console().print(f"no runs in {records.runs_dir()} (launch one with `rlx train --algo NAME --smoke`)")
        return 0
    console().print(
        table(
            None,
            ["run", "name", "state", "ray", "mlflow", "algo", "experiment", "step", "reward", "created"],
            [
                [
                    r["run_id"][:12],
                    r["run_name"] or "-",
                    r["state"] or "?",
                    r["ray_status"] or "-",
                    r["mlflow_status"] or "?",
                    r["algo"] or "-",
                    r["experiment"],
                    "-" if r["step"] is None else int(r["step"]),
                    "-" if r["reward"] is None else fmt_value(round(r["reward"], 4)),
                    _age(r["created"]),
                ]
                for r in rows
            ],
        )
    )
    _warn(clients)
    return 0


@runs_app.command("show", epilog=RUNS_EPILOG)
def show(
    run: str = typer.Argument(
        ..., help="Run id, run name or submission id, or a unique prefix of one.", autocompletion=launched_runs
    ),
    format: Format = format_option(),
) -> int:
    """Everything recorded about one run: ids, state, Ray's verdict, MLflow status, latest metrics, artifacts."""
    from rlx.launch import records
    from rlx.redact import redact
    from rlx.render import console, emit_json, fmt_value

    clients = _Clients()
    record = records.find(run)
    live = _refresh(record, clients)
    mrun = _mlflow_run(record, clients)
    data = _row(record, mrun, live)
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
    data = redact(data)
    _warn(clients, record)
    if format is Format.json:
        emit_json(data)
        return 0
    c = console()
    for key in (
        "run_id",
        "state",
        "ray_status",
        "mlflow_status",
        "algo",
        "experiment",
        "run_name",
        "submission_id",
        "address",
        "tracking_uri",
        "run_dir",
        "message",
        "entrypoint",
    ):
        if data.get(key) not in (None, ""):
            c.print(f"{key:<14} {fmt_value(data[key])}", markup=False, highlight=False, soft_wrap=True)
    for key, value in (data.get("metrics") or {}).items():
        c.print(f"  {key:<40} {fmt_value(value)}", markup=False, highlight=False)
    if data.get("artifacts"):
        c.print("artifacts      " + ", ".join(data["artifacts"]), markup=False, highlight=False)
    _warn(clients, record)
    return 0


@runs_app.command("logs", epilog=RUNS_EPILOG)
def logs(
    run: str = typer.Argument(
        ..., help="Run id, run name or submission id, or a unique prefix of one.", autocompletion=launched_runs
    ),
    follow_: bool = typer.Option(
        False,
        "--follow",
        "-f",
        help="Keep streaming until the job ends (Ctrl-C stops following; the job keeps running).",
    ),
    format: Format = format_option(help="Output format (json: the log as one string).", short=False),
) -> int:
    """The job's log (secrets redacted). When the cluster is gone, the log tail rlx saved to MLflow."""
    from rlx.errors import EXIT_INTERRUPTED, ConfigError, RlxError, UnreachableError
    from rlx.launch import records
    from rlx.launch.lifecycle import Display, follow, jobs_for
    from rlx.redact import redact_text
    from rlx.render import emit_json

    record = records.find(run)
    clients = _Clients()
    lost: RlxError | None = None  # raised after whatever log could be shown has been shown
    gone: RlxError | None = None
    text: str | None = None
    try:
        jobs = jobs_for(record)
        if follow_ and format is Format.text and not record.state.terminal:
            client = clients.mlflow_for(record.tracking_uri)
            from rlx.doctor.live import LiveDoctor

            health = LiveDoctor(record.tracking_uri, record.run_id) if client is not None else None
            if client is None:  # the log still streams; only the step and reward on the status line are missing
                _warn(clients)
            try:
                with Display(json_mode=False) as display:
                    final = follow(jobs, record, display, client=client, health=health, watch_record=True)
            except KeyboardInterrupt:
                return EXIT_INTERRUPTED
            except ConfigError as e:  # the record was deleted under the follower: not a cluster problem
                gone = e
            if gone is None and final != "LOST":
                return 0
            lost = gone or UnreachableError(
                f"lost contact with Ray at {record.address} while following run {record.run_id}",
                hint=f"the job may still be running: re-run `rlx runs logs {record.run_id} -f` once the cluster "
                "answers; `rlx runs ls` settles the run's state",
            )
        else:
            text = redact_text(jobs.logs(record.submission_id))
    except RlxError as e:
        text = _saved_tail(record, clients)
        if text is None:
            raise UnreachableError(
                f"cannot read the logs of {record.run_id}: {e.message}",
                hint="the cluster is unreachable and no log tail was saved to MLflow",
            ) from None
        import sys

        sys.stderr.write(f"warning: {e.message}; showing the log tail saved in MLflow\n")
        if follow_ and not record.state.terminal:  # shown what was saved, but it cannot be followed
            lost = UnreachableError(
                f"cannot follow run {record.run_id}: {e.message}",
                hint=f"the job may still be running: re-run `rlx runs logs {record.run_id} -f` once the cluster "
                "answers; `rlx runs ls` settles the run's state",
            )
    if text is not None:
        if format is Format.json:
            emit_json({"run_id": record.run_id, "logs": text})
        else:
            import sys

            sys.stdout.write(text)
    if lost is not None:
        raise lost
    return 0


def _saved_tail(record, clients: _Clients) -> str | None:
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


@runs_app.command("stop", epilog=RUNS_EPILOG)
def stop(
    run: str = typer.Argument(
        ..., help="Run id, run name or submission id, or a unique prefix of one.", autocompletion=launched_runs
    ),
    wait: float = typer.Option(45.0, "--wait", help="Seconds to wait for Ray to confirm the job ended."),
    format: Format = format_option(),
) -> int:
    """Stop a run's job; its MLflow run ends KILLED once Ray confirms the stop."""
    from rlx.launch import records
    from rlx.launch.lifecycle import jobs_for, reconcile
    from rlx.render import console, emit_json

    clients = _Clients()
    record = records.find(run)
    _refresh(record, clients)
    outcome = "already ended"
    if not record.state.terminal:
        jobs = jobs_for(record)
        jobs.stop(record.submission_id)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and jobs.status(record.submission_id) not in (
            "SUCCEEDED",
            "FAILED",
            "STOPPED",
        ):
            time.sleep(0.5)
        reconcile(record, jobs=jobs, client=clients.mlflow_for(record.tracking_uri))
        outcome = "stopped" if record.state.terminal else "stop requested"
    result = {"run_id": record.run_id, "outcome": outcome, "state": record.state.value, "ray_status": record.job_status}
    _warn(clients, record)
    if format is Format.json:
        emit_json(result)
    elif outcome == "stop requested":
        console().print(
            f"stop requested for {record.run_id}; Ray still reports {record.job_status}. A PENDING job "
            "may stay PENDING until the cluster's RAY_JOB_START_TIMEOUT_SECONDS; `rlx runs ls` "
            "settles it later",
            markup=False,
            highlight=False,
        )
    else:
        console().print(
            f"{record.run_id}: {outcome} ({record.state.value}, Ray {record.job_status})", markup=False, highlight=False
        )
    return 0


def _first_line(e: BaseException) -> str:
    from rlx.redact import redact_text

    return redact_text((str(e).strip().splitlines() or [type(e).__name__])[0][:300])


def _sync(record, client) -> tuple[int, int]:
    """Replay the run's journals in order (the job's, then rlx's end of the run); (calls sent, lines skipped)."""
    from rlx.launch import records

    sent = torn = 0
    for journal in records.journals(record.run_id):
        if journal.pending():
            done = journal.replay(client)
            sent, torn = sent + done.sent, torn + done.torn
    return sent, torn


SYNC_EPILOG = """\
Exit codes: 0 every selected run's tracking calls reached MLflow, 3 the store is unreachable (nothing is lost: run
it again later), 1 MLflow refused a call (the journal keeps it and everything after it).

\b
Examples:
  $ rlx runs sync                             # every run with calls waiting
  $ rlx runs sync 8df8872c --format json
"""


@runs_app.command("sync", epilog=SYNC_EPILOG)
def sync(
    runs: list[str] | None = typer.Argument(
        None,
        metavar="[RUN]...",
        help="Run ids or names, or unique prefixes (default: every run with tracking calls waiting).",
        autocompletion=launched_runs,
        show_default=False,
    ),
    format: Format = format_option(),
) -> int:
    """Send what a tracking outage left waiting: the metrics, params and final status kept in a run's journal.

    A job that cannot reach MLflow keeps training and journals what it could not send; rlx journals the run's final
    status the same way. Replay is in order and idempotent: a run synced twice still holds each step once."""
    from rlx.errors import ConfigError, UnreachableError
    from rlx.launch import records
    from rlx.launch.lifecycle import tracking_pending
    from rlx.redact import redact_text
    from rlx.render import console, emit_json

    selected = [records.find(r) for r in runs] if runs else [r for r in records.all_records() if tracking_pending(r)]
    clients = _Clients()
    results: list[dict[str, Any]] = []
    unreachable: list[records.RunRecord] = []
    refused: list[records.RunRecord] = []
    for record in selected:
        row: dict[str, Any] = {"run_id": record.run_id, "sent": 0, "skipped": 0, "pending": tracking_pending(record)}
        client = clients.mlflow_for(record.tracking_uri) if row["pending"] else None
        if row["pending"] and client is None:
            unreachable.append(record)
            row["error"] = clients.errors.get(record.tracking_uri)
        elif row["pending"]:
            try:
                row["sent"], row["skipped"] = _sync(record, client)
            except Exception as e:  # noqa: BLE001 - MLflow refused or went away mid-replay; the journal keeps the rest
                row["error"] = _first_line(e)
                (unreachable if "onnect" in row["error"] or "timed out" in row["error"] else refused).append(record)
            row["pending"] = tracking_pending(record)
        results.append(row)
    if format is Format.json:
        emit_json(results)
    else:
        c = console()
        if not results:
            c.print("no run has tracking calls waiting", markup=False, highlight=False)
        for row in results:
            if row.get("error"):
                line = f"{row['run_id']}: {row['pending']} calls still waiting: {row['error']}"
            elif row["sent"]:
                line = f"{row['run_id']}: sent {row['sent']} calls, nothing left waiting"
            else:
                line = f"{row['run_id']}: nothing waiting"
            if row["skipped"]:
                line += f" ({row['skipped']} unreadable lines skipped: cut by a kill mid-write)"
            c.print(line, markup=False, highlight=False)
    if unreachable:
        r = unreachable[0]
        raise UnreachableError(
            f"cannot reach the MLflow store {redact_text(r.tracking_uri)} of run {r.run_id}",
            hint=f"nothing is lost: the calls stay in {records.run_dir(r.run_id)}; run "
            f"`rlx runs sync {r.run_id[:12]}` again once the store answers",
        )
    if refused:
        r = refused[0]
        raise ConfigError(
            f"MLflow refused a tracking call of run {r.run_id}",
            where=str(records.run_dir(r.run_id)),
            hint="the journal keeps it and the calls after it; `rlx runs show` shows the run's "
            "state, --verbose the full error",
        )
    return 0


DOCTOR_EPILOG = """\
Exit codes: 0 healthy (warnings allowed), 1 a check failed, 3 MLflow unreachable.

\b
Examples:
  $ rlx runs doctor gspo-copy-3f9a
  $ rlx runs doctor 8df8872c 1c2d3e4f --format json
  $ rlx runs doctor --last 5 --tracking-uri sqlite:////abs/mlflow.db
  $ rlx runs doctor my-run --format github      # ::error / ::warning lines for CI
  $ rlx rules                                    # the RLX9xx health checks with their thresholds
"""


@runs_app.command("doctor", epilog=DOCTOR_EPILOG)
def doctor(
    runs: list[str] | None = typer.Argument(
        None,
        metavar="[RUN]...",
        help="MLflow run ids or run names (rlx, plain verl and smoke runs alike).",
        show_default=False,
    ),
    last: int | None = typer.Option(None, "--last", "-n", help="Without RUN: the N newest runs."),
    experiment: list[str] | None = typer.Option(
        None, "--experiment", "-e", help="Only runs of this experiment (repeatable)."
    ),
    tracking_uri: str | None = tracking_uri_option("MLflow store (default: ./mlflow.db)."),
    verbose_evidence: bool = typer.Option(False, "--evidence", help="Show evidence for ok verdicts too."),
    html_out: Path | None = typer.Option(None, "--html", help="Also write the verdicts as an HTML page."),
    format: Format = format_option(Format.github),
) -> int:
    """Judge runs by what their algorithm should look like: ok / warn / fail per health check, with evidence."""
    from rlx.doctor import diagnose
    from rlx.doctor.report import render_github, render_html, render_text
    from rlx.errors import UsageError

    if not runs and last is None:
        raise UsageError(
            "no run to diagnose",
            hint="pass a run id or name, or --last N for the newest runs; "
            "`rlx compare runs --last 10` lists recent runs",
        )
    found = diagnose(runs or (), tracking_uri=tracking_uri, experiments=experiment or (), last=last)
    if format is Format.json:
        from rlx.render import emit_json

        emit_json([d.to_dict() for d in found])
    elif format is Format.github:
        text = render_github(found)
        if text:
            typer.echo(text)
    else:
        import sys

        sys.stdout.write(render_text(found, verbose=verbose_evidence))
    if html_out is not None:
        from rlx.fsutil import atomic_write_text

        atomic_write_text(
            html_out,
            "<!doctype html><meta charset='utf-8'><title>rlx runs doctor</title>"
            + "".join(render_html(d) for d in found),
        )
    return 0 if all(d.healthy for d in found) else 1


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
