"""`rlx train`: resolve a preset into a verl config, validate it, then launch it (or, with --dry-run, show it)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from rlx.commands.complete import algorithms, rule_codes, verl_keys
from rlx.commands.options import format_option, tracking_uri_option
from rlx.render import Format


class Engine(str, Enum):
    """What `--smoke` runs: rlx's own loop (the algorithm's maths trains) or verl's trainer on CPU (the config runs)."""

    rlx = "rlx"
    verl = "verl"


TRAIN_EPILOG = """\
\b
Examples:
  $ rlx train --algo gspo --dry-run
  $ rlx train --algo gspo --dry-run --format json | jq .changed
  $ rlx train --algo dapo -c experiment.yaml actor_rollout_ref.rollout.n=8 --dry-run --output dapo.yaml
  $ rlx train --preset my_gspo.yaml --dry-run
  $ rlx train --algo gspo --smoke                       # CPU smoke run: the algorithm's maths trains
  $ rlx train --algo gspo --smoke --engine verl --steps 3  # the exact config through verl's trainer, on CPU
  $ rlx train -c exp.yaml --smoke --engine verl         # rehearse your own experiment (data, reward) on CPU
  $ rlx train --algo grpo -c exp.yaml --address http://head:8265
"""


def train(
    overrides: list[str] | None = typer.Argument(
        None,
        help="verl overrides in Hydra grammar: key=value, +key=value, ~key.",
        show_default=False,
        autocompletion=verl_keys,
    ),
    algo: str | None = typer.Option(
        None, "--algo", "-a", help="Algorithm (its built-in preset).", autocompletion=algorithms, envvar="RLX_ALGO"
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Experiment file (model, data, cluster, overrides)."
    ),
    preset: str | None = typer.Option(
        None, "--preset", "-p", help="A preset file (or built-in name) instead of --algo."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Resolve and validate, print the config and the launch command."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="With --dry-run: write the full resolved YAML here."
    ),
    format: Format = format_option(),
    smoke: bool = typer.Option(False, "--smoke", help="Run the CPU smoke engine instead of verl on GPUs."),
    engine: Engine = typer.Option(
        Engine.rlx,
        "--engine",
        "-e",
        help="With --smoke: rlx (its own loop: the maths trains, seconds) or verl (verl's own trainer on CPU: "
        "this exact config runs through verl, about a minute).",
    ),
    local: bool = typer.Option(False, "--local", help="With --smoke: run in this process, without Ray."),
    task: str = typer.Option("copy", "--task", help="With --smoke: the synthetic task (copy, reverse, code)."),
    steps: int | None = typer.Option(None, "--steps", help="With --smoke: number of training steps."),
    seed: int = typer.Option(0, "--seed", help="With --smoke: random seed."),
    address: str | None = typer.Option(
        None, "--address", help="Ray dashboard address (default: RAY_ADDRESS, else a local head)."
    ),
    detach: bool = typer.Option(False, "--detach", "-d", help="Return once the job is submitted."),
    tracking_uri: str | None = tracking_uri_option("MLflow tracking URI (default: sqlite:///<cwd>/mlflow.db)."),
    experiment: str | None = typer.Option(None, "--experiment", help="MLflow experiment (sets trainer.project_name)."),
    name: str | None = typer.Option(None, "--name", help="MLflow run name (sets trainer.experiment_name)."),
    ignore: list[str] | None = typer.Option(
        None, "--ignore", help="Suppress a validation rule (repeatable).", autocompletion=rule_codes
    ),
) -> int:
    """Resolve an algorithm preset into a complete verl config, validate it, and launch it."""
    from rlx.algorithms import ALGORITHMS
    from rlx.errors import ConfigError, UsageError
    from rlx.resolve import resolve

    if output and not dry_run:
        raise UsageError("--output needs --dry-run", hint="add --dry-run to write the resolved YAML without launching")
    from rlx.resolve.overrides import render_value

    extra = list(overrides or [])
    # Rendered, not pasted: a name with Unicode, quotes or `=` is a value, not override syntax.
    if experiment:
        extra.append(f"trainer.project_name={render_value(experiment)}")
    if name:
        extra.append(f"trainer.experiment_name={render_value(name)}")
    resolved = resolve(algo, preset=preset, experiment=config, overrides=extra)
    if ignore:
        resolved.ignore.extend(c.upper() for c in ignore)
    algorithm = resolved.algorithm
    if algorithm is not None and not algorithm.ready:
        raise ConfigError(
            f"{algorithm.title} is declared but not implemented yet (status: {algorithm.status.value})",
            hint=f"`rlx algos show {algorithm.name}` shows its preset; `rlx validate config --algo {algorithm.name}` "
            "checks a config for it. Ready algorithms: " + ", ".join(a.name for a in ALGORITHMS if a.ready),
        )
    _check_names(resolved)
    report = _validate(resolved)
    if dry_run:
        return _dry_run(
            resolved, report, output, format, task=task if smoke else None, address=address, tracking_uri=tracking_uri
        )
    from rlx.commands import launch_hook

    return launch_hook(
        resolved,
        report,
        smoke=smoke,
        engine=engine.value,
        local=local,
        task=task,
        steps=steps,
        seed=seed,
        address=address,
        detach=detach,
        tracking_uri=tracking_uri,
        format=format,
    )


def _check_names(resolved) -> None:
    """The MLflow experiment and run names double as folder names (verl checkpoints to
    `trainer.default_local_dir=checkpoints/${project_name}/${experiment_name}`): refuse names that escape or break a
    path, before anything is created, even with `--ignore RLX114`. The test is rule RLX114's, so `rlx validate`
    agrees. Spaces and Unicode are fine; the Ray submission id is derived, never a name."""
    from rlx.errors import ConfigError
    from rlx.validate.checks.schema import NAME_KEYS, name_problem

    for key in NAME_KEYS:
        value = resolved.get(key)
        problem = name_problem(value)
        if problem:
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise ConfigError(
                f"{key} {shown!r} {problem}: it names the MLflow {'experiment' if 'project' in key else 'run'} and "
                "the checkpoint folder",
                where=resolved.source_of(key).describe() if hasattr(resolved, "source_of") else key,
                hint=f"pick a plain name, e.g. --{'experiment' if 'project' in key else 'name'} my-run-1",
            )


def _validate(resolved):
    """Run the validator when it is available; None otherwise."""
    try:
        from rlx.validate import validate
    except ModuleNotFoundError as e:
        if e.name != "rlx.validate":
            raise
        return None
    return validate(resolved)


SHOWN_CHANGES = 500  # a dry run lists this many changed keys; an experiment with 20,000 gets a count for the rest


def _dry_run(
    resolved,
    report,
    output: Path | None,
    format: Format,
    task: str | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
) -> int:
    from rlx.fsutil import atomic_write_text
    from rlx.launch.submit_cmd import submit_command
    from rlx.render import console, emit_json, fmt_value
    from rlx.resolve.inert import inert_keys
    from rlx.resolve.naming import planned_name

    run_name, drawn = planned_name(resolved, task)

    changed = resolved.changed()
    inert = inert_keys([ch.key for ch in changed], resolved.get)
    submit = submit_command(resolved, address=address, tracking_uri=tracking_uri, run_name=run_name, drawn=drawn)
    if output:
        atomic_write_text(output, resolved.to_yaml())
    errors = report.errors if report is not None else []
    if format is Format.json:
        emit_json(
            {
                "algorithm": resolved.algorithm.name if resolved.algorithm else None,
                "preset": resolved.preset.lineage if resolved.preset else None,
                "entrypoint": resolved.entrypoint,
                "config": resolved.container(),
                "changed": [{**c.to_dict(), "inert": inert.get(c.key)} for c in changed],
                "command": resolved.command_line(),
                "argv": resolved.command(),
                "validation": report.to_dict() if report is not None else None,
                "output": str(output) if output else None,
                "run_name": run_name,
                "run_name_drawn_at_launch": drawn,
                "ray_job_submit": submit.to_dict(),
            }
        )
        return 1 if errors else 0
    c = console()
    title = resolved.algorithm.title if resolved.algorithm else "verl"
    lineage = f" (preset {resolved.preset.lineage})" if resolved.preset else ""
    c.print(f"[bold]{title}[/bold]{lineage}: {len(changed)} settings differ from verl's defaults\n")
    c.print(
        f"  [bold]run name[/bold] {_esc(run_name)}"
        + (
            "  [dim](trainer.experiment_name; the 4 hex digits are drawn at launch; --name NAME picks one)[/dim]"
            if drawn
            else ""
        ),
        soft_wrap=True,
    )
    lines = []  # one print: rich's per-call cost made 20,000 changed keys take 10 s
    for ch in changed[:SHOWN_CHANGES]:
        value = "(deleted)" if _absent(ch.value) else fmt_value(ch.value)
        default = "absent" if _absent(ch.default) else fmt_value(ch.default)
        mark = "  [yellow]inert[/yellow]" if ch.key in inert else ""
        lines.append(f"  [bold]{_esc(ch.key)}[/bold] = {_esc(value)}  [dim](verl: {_esc(default)})[/dim]{mark}")
        lines.append(f"      [dim]{_esc(ch.source.describe())}[/dim]")
        if ch.key in inert:
            lines.append(f"      [yellow]inert: {_esc(inert[ch.key])}[/yellow]")
    if len(changed) > SHOWN_CHANGES:
        lines.append(
            f"  [dim]... and {len(changed) - SHOWN_CHANGES:,} more keys (all of them: `--format json`, or "
            "`--output FILE` for the resolved YAML)[/dim]"
        )
    if lines:
        c.print("\n".join(lines), soft_wrap=True)
    c.print("\n[bold]Launch command[/bold] (what a GPU cluster runs; paste it where Ray's CLI reaches the cluster):")
    c.print(submit.text(), markup=False, highlight=False, soft_wrap=True)
    for note in submit.notes:
        c.print(f"  [dim]{_esc(note)}[/dim]", soft_wrap=True)
    if output:
        c.print(f"\nwrote the full resolved config to {output}")
    if report is not None:
        from rlx.validate.report import render_text

        render_text(report, c)
    return 1 if errors else 0


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _absent(value) -> bool:
    return type(value).__name__ == "_Absent"


def register(app: typer.Typer) -> None:
    app.command("train", epilog=TRAIN_EPILOG)(train)
