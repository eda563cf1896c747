"""`rlx compare runs`: which of these runs is better, how, and what differs in their configs.

Thin: parse the options, call `rlx.compare.compare_runs`, render. mlflow, pandas and matplotlib are imported only
when the command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from rlx.commands.complete import algorithms, mlflow_runs
from rlx.commands.options import format_option, tracking_uri_option
from rlx.compare.metrics import directions_text
from rlx.render import Format

RUNS_EPILOG = f"""\
\b
Examples:
  $ rlx compare runs --experiment gsm8k --last 4
  $ rlx compare runs gspo-smoke grpo-smoke                  # by run name (or run id)
  $ rlx compare runs -e gsm8k --algo gspo,grpo --metric actor/grad_norm:down
  $ rlx compare runs -e gsm8k --filter "params.`data/train_batch_size` = '256'"
  $ rlx compare runs -e gsm8k --plot curves.png --smooth 0.6 --html report.html
  $ rlx compare runs --last 2 --only-metric actor/grad_norm --plot grad_norm.png
  $ rlx compare runs -e gsm8k --format csv --output runs.csv
  $ rlx compare runs --tracking-uri http://mlflow:5000 -e gsm8k --format json | jq '.runs[].status'
\b
Each metric cell is final / best / auc (the curve's mean height, so runs of different lengths compare); the best
value of a column is marked (* in text, bold elsewhere) by the metric's direction:
  {directions_text()}.
`--metric KEY:up|down|zero|neutral` sets a direction. Status comes from rlx's job-status tag when present (MLflow's
own status misreports crashed and killed runs); `algo~` means the algorithm was derived from verl's params.
"""

compare_app = typer.Typer(
    help="Compare runs: metrics that understand RL, best values by direction, config diffs, curves.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog="\b\nExamples:\n  $ rlx compare runs --experiment gsm8k --last 4",
)


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@compare_app.command("runs", epilog=RUNS_EPILOG)
def runs(
    selectors: list[str] | None = typer.Argument(
        None, help="Run ids or run names (default: every run in scope).", show_default=False, autocompletion=mlflow_runs
    ),
    experiment: list[str] | None = typer.Option(
        None,
        "--experiment",
        "-e",
        help="MLflow experiment name (verl's trainer.project_name); repeatable or comma-separated. Default: all.",
    ),
    algo: list[str] | None = typer.Option(
        None, "--algo", "-a", help="Keep runs of these algorithms, e.g. gspo,grpo.", autocompletion=algorithms
    ),
    filter_string: str = typer.Option(
        "", "--filter", help="MLflow search filter, e.g. \"tags.`rlx.preset` = 'gspo'\"."
    ),
    last: int | None = typer.Option(None, "--last", "-n", help="Keep the N newest runs."),
    metric: list[str] | None = typer.Option(
        None,
        "--metric",
        "-m",
        help="Add a metric column and curve to the defaults (repeatable); KEY:up|down|zero|neutral sets its direction.",
    ),
    only_metric: list[str] | None = typer.Option(
        None,
        "--only-metric",
        help="Show and plot only these metrics (repeatable; replaces the "
        "default columns and curves; --metric still adds).",
    ),
    format: Format = format_option(Format.csv, Format.md),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the table (in --format) to this file."),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        help="Write a PNG of the curves: one panel per metric column (metric against step), one line per run.",
    ),
    smooth: float = typer.Option(0.0, "--smooth", help="EMA smoothing for --plot/--html curves, in [0, 1)."),
    html_path: Path | None = typer.Option(
        None,
        "--html",
        help="Write one self-contained HTML report: the table, one captioned chart per metric column, the config diff.",
    ),
    tracking_uri: str | None = tracking_uri_option(
        "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db).", from_env=False
    ),
) -> int:
    """Compare MLflow runs (rlx's and plain verl's): metrics table, best values, config diff, curves."""
    from rlx.compare import compare_runs, parse_metric_option
    from rlx.compare import report as R
    from rlx.compare.metrics import REWARD
    from rlx.fsutil import atomic_write_text
    from rlx.render import dumps

    extra = [parse_metric_option(m) for m in [*(only_metric or []), *(metric or [])]]
    cmp = compare_runs(
        list(selectors or []),
        experiments=_split(experiment),
        algos=_split(algo),
        filter_string=filter_string,
        last=last,
        metrics=extra,
        tracking_uri=tracking_uri,
        only_metrics=bool(only_metric),
    )

    if plot or html_path:
        from rlx.compare import plot as P

        keys = P.default_keys(cmp) or [REWARD]
        if plot:
            figure = P.render(cmp, keys, smooth=smooth)
            P.write_png(figure, plot)
            _say(f"wrote {plot} ({figure.lines} line(s) in {len(figure.panels)} panel(s))")
        if html_path:
            from rlx.doctor import diagnose
            from rlx.doctor.report import render_html

            health = [render_html(d) for d in diagnose([r.run_id for r in cmp.rows], tracking_uri=cmp.tracking_uri)]
            atomic_write_text(
                html_path, R.to_html(cmp, charts=P.render_each(cmp, keys, smooth=smooth), smooth=smooth, health=health)
            )
            _say(f"wrote {html_path} ({len(keys)} chart(s))")

    if format is Format.text and output is None:
        from rich.console import Console

        R.render_text(cmp, Console(highlight=False, width=None if sys.stdout.isatty() else 240))
        return 0
    text = {
        Format.json: lambda: dumps(R.to_json(cmp)) + "\n",
        Format.csv: lambda: R.to_csv(cmp),
        Format.md: lambda: R.to_markdown(cmp),
    }.get(format)
    if text is None:  # text into a file: the same table without colours
        import io

        from rich.console import Console

        buf = io.StringIO()
        R.render_text(cmp, Console(file=buf, width=240, no_color=True, highlight=False))
        body = buf.getvalue()
    else:
        body = text()
    if output is not None:
        atomic_write_text(output, body)
        _say(f"wrote {output}")
    else:
        sys.stdout.write(body)
        sys.stdout.flush()
    return 0


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(compare_app, name="compare")
