"""`rlx runs ls|show|logs|stop`: launched runs, their MLflow runs joined with live Ray job states.

The run list comes from the local run records (`$RLX_HOME/runs`, default `./.rlx/runs`) and from MLflow runs that
carry rlx's tags. Non-terminal runs are reconciled with Ray on the way (under deadlines): a job that ended gets its
final MLflow status, a job the cluster forgot (or whose embedded head is gone) becomes LOST.
"""

from __future__ import annotations

import time
from pathlib import Path

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


def _warn(clients, record=None) -> None:
    """What a command could not reach, on stderr (its answer on stdout is what it had)."""
    from rlx.render import err_console
    from rlx.runs import warnings

    for text in warnings(clients, record):
        err_console().print(f"[yellow]warning:[/yellow] {text}", markup=True, highlight=False, soft_wrap=True)


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
    from rlx.runs import Clients, list_runs

    clients = Clients()
    rows = list_runs(include_old=all_, tracking_uri=tracking_uri, clients=clients)
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
    from rlx.render import console, emit_json, fmt_value
    from rlx.runs import Clients, show_run

    clients = Clients()
    record = records.find(run)
    data = show_run(record, clients)
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
    from rlx.runs import Clients, saved_tail

    record = records.find(run)
    clients = Clients()
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
        text = saved_tail(record, clients)
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
    from rlx.render import console, emit_json
    from rlx.runs import Clients, stop_run

    clients = Clients()
    record = records.find(run)
    result = stop_run(record, clients, wait=wait)
    outcome = result["outcome"]
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
    from rlx.runs import Clients, sync_runs

    selected = [records.find(r) for r in runs] if runs else [r for r in records.all_records() if tracking_pending(r)]
    synced = sync_runs(selected, Clients())
    results, unreachable, refused = synced.rows, synced.unreachable, synced.refused
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
