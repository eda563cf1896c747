"""`rlx validate config` and `rlx rules`: static validation of a verl config, and the rules it applies.

Thin: parse the arguments, call `rlx.validate.validate_source`, render. Nothing heavy is imported at start-up.
"""

from __future__ import annotations

import typer

from rlx.commands.complete import algorithms, rule_codes, verl_keys
from rlx.commands.options import format_option
from rlx.render import Format

VALIDATE_EPILOG = """\
A FILE ending in .sh (or starting with #!) is a verl launch script: its `main_ppo` command is read across line
continuations, its variables and ${VAR:-default} forms are expanded, and findings point at run.sh:LINE.

Exit codes: 0 no errors (warnings allowed), 1 errors (or warnings with --strict), 2 usage error.

\b
Examples:
  $ rlx validate config --algo gspo
  $ rlx validate config --algo grpo actor_rollout_ref.rollout.n=1
  $ rlx validate config experiment.yaml --format json
  $ rlx validate config my_preset.yaml --strict
  $ rlx validate config outputs/run/.hydra/config.yaml          # a run's saved verl config
  $ rlx validate config --verl algorithm.adv_estimator=grpo actor_rollout_ref.rollout.n=5 ...
  $ rlx validate config --verl run_qwen2-7b.sh                   # a verl bash script, read (never run)
  $ rlx validate config --algo gspo --ignore RLX420 --format github
"""

RULES_EPILOG = """\
\b
Examples:
  $ rlx rules
  $ rlx rules --format json
  $ rlx rules explain RLX401
  $ rlx rules --format md > docs/rules.md
"""


validate_app = typer.Typer(
    help="Check configs statically, before a GPU is allocated.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=VALIDATE_EPILOG,
)
rules_app = typer.Typer(
    help="List the validation rules, or explain one.",
    invoke_without_command=True,
    rich_markup_mode=None,
    epilog=RULES_EPILOG,
)


def split_args(args: list[str]) -> tuple[str | None, list[str]]:
    """FILE (the first argument that is not an override) and the overrides. Overrides contain `=` or start with
    `+`/`~`; anything else in first position is the file."""
    if args and "=" not in args[0] and not args[0].startswith(("+", "~")):
        return args[0], args[1:]
    return None, list(args)


@validate_app.command("config", epilog=VALIDATE_EPILOG)
def validate_config(
    args: list[str] | None = typer.Argument(
        None,
        metavar="[FILE] [KEY=VALUE]...",
        help="A preset, experiment file, full verl config YAML or verl bash script, then verl overrides.",
        show_default=False,
        autocompletion=verl_keys,
    ),
    algo: str | None = typer.Option(
        None, "--algo", "-a", help="Algorithm (its built-in preset).", autocompletion=algorithms, envvar="RLX_ALGO"
    ),
    preset: str | None = typer.Option(None, "--preset", "-p", help="A preset file or built-in name."),
    verl: bool = typer.Option(
        False,
        "--verl",
        help="Apply the overrides to verl's defaults, with no preset "
        "(validate a verl bash script's arguments as they stand).",
    ),
    ignore: list[str] | None = typer.Option(
        None, "--ignore", help="Suppress a rule code (repeatable).", autocompletion=rule_codes
    ),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 1) on warnings too."),
    deep: bool = typer.Option(False, "--deep", help="Also import verl and run its own validate_config (~4 s)."),
    format: Format = format_option(Format.github),
) -> int:
    """Validate a config statically: input, schema, verl's own checks, names, algorithm rules, resources."""
    from rlx.errors import UsageError
    from rlx.validate import validate_source

    file, overrides = split_args(list(args or []))
    if verl and (algo or preset):
        raise UsageError(
            "--verl validates plain verl overrides and takes no --algo or --preset",
            hint="drop --verl to validate a preset, or drop --algo/--preset",
        )
    if not (file or algo or preset or verl):
        raise UsageError(
            "nothing to validate",
            hint="pass --algo NAME, --preset FILE, a FILE, or --verl KEY=VALUE ...; "
            "e.g. `rlx validate config --algo gspo`",
        )
    report = validate_source(
        file, algo=algo, preset=preset, overrides=overrides, verl=verl, ignore=ignore or (), strict=strict, deep=deep
    )
    if format is Format.json:
        from rlx.render import emit_json

        emit_json(report.to_dict())
    elif format is Format.github:
        from rlx.validate.report import render_github

        text = render_github(report)
        if text:
            typer.echo(text)
    else:
        from rlx.render import console
        from rlx.validate.report import render_text

        render_text(report, console())
    return report.exit_code


@rules_app.callback()
def rules(ctx: typer.Context, format: Format = format_option(Format.md)) -> None:
    """Every rule `rlx validate config` applies: code, severity, category and title."""
    if ctx.invoked_subcommand:
        return
    from rlx.rulebook import all_rules

    rows = all_rules()
    if format is Format.json:
        from rlx.render import emit_json

        emit_json([r.to_dict() for r in rows])
    elif format is Format.md:
        from rlx.rulebook import rules_markdown

        typer.echo(rules_markdown(), nl=False)
    else:
        from rlx.render import console, table

        console().print(
            table(
                None,
                ["code", "severity", "category", "title", "from"],
                [[r.code, r.severity.value, r.category, r.title, r.origin] for r in rows],
            )
        )
        console().print("`rlx rules explain CODE` explains a rule; `--ignore CODE` suppresses it.")


@rules_app.command(
    "explain", epilog="\b\nExamples:\n  $ rlx rules explain RLX401\n  $ rlx rules explain RLX401 --format json"
)
def explain(
    code: str = typer.Argument(..., help="Rule code, e.g. RLX401.", autocompletion=rule_codes),
    format: Format = format_option(Format.md),
) -> None:
    """Explain one rule: what it checks, why, and its severity."""
    from rlx.rulebook import get_rule

    r = get_rule(code)
    if format is Format.json:
        from rlx.render import emit_json

        emit_json(r.to_dict())
        return
    from rlx.render import console

    c = console()
    c.print(f"[bold]{r.code}[/bold]: {r.title}", highlight=False)
    c.print(f"severity: {r.severity.value}   category: {r.category}   from: {r.origin}", markup=False)
    if r.when:
        c.print(f"applies when: {r.when}", markup=False, highlight=False)
    c.print()
    c.print(r.explanation, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(validate_app, name="validate")
    app.add_typer(rules_app, name="rules")
