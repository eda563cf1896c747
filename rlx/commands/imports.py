"""`rlx import run.sh -o experiment.yaml`: a verl launch script as an rlx experiment file, checked on the way."""

from __future__ import annotations

from pathlib import Path

import typer

from rlx.commands.options import format_option
from rlx.render import Format

IMPORT_EPILOG = """\
The script is read, never run. The experiment names the algorithm (inferred from adv_estimator and loss_mode
unless --algo is given), lifts model, data, cluster, name and project into its sections, and keeps every other
override with the script line it came from. Where the algorithm's preset sets a key the script does not, the
experiment sets the script's value back, so it resolves to exactly the script's verl config; `rlx import` checks
that round trip, then prints the validator's verdict on the result.

Exit codes: 0 written and valid, 1 written with validation errors (or the script unreadable), 2 usage error.

\b
Examples:
  $ rlx import run_qwen2-7b_gsm8k.sh -o gsm8k.yaml
  $ rlx import run.sh -o exp.yaml --algo drgrpo --force
  $ rlx import run.sh -o exp.yaml --format json
  $ rlx train -c exp.yaml --dry-run                         # then launch it the rlx way
"""


def import_cmd(
    script: Path = typer.Argument(
        ..., metavar="SCRIPT", help="A verl launch script (bash) with a main_ppo command.", show_default=False
    ),
    output: Path = typer.Option(..., "--output", "-o", help="The experiment file to write.", show_default=False),
    algo: str | None = typer.Option(None, "--algo", "-a", help="The algorithm, when inference picks the wrong one."),
    force: bool = typer.Option(False, "--force", help="Replace OUTPUT if it exists."),
    format: Format = format_option(),
) -> int:
    """Turn a verl bash script into an experiment file that resolves to the same verl config."""
    from rlx.errors import ConfigError
    from rlx.validate import validate_source
    from rlx.verlimport import import_script, round_trip_diff, write_experiment
    from rlx.verlscript import read_script

    s = read_script(script)
    imported = import_script(s, algo=algo)
    if output.exists() and not force:
        from rlx.errors import UsageError

        raise UsageError(f"{output} exists", hint="pass --force to replace it, or choose another -o")
    path = write_experiment(s, imported, output, force=True)
    diff = round_trip_diff(s, path)
    if diff:  # a bug in the import, never the user's: say exactly where
        raise ConfigError(
            f"the experiment written to {path} differs from the script's config at {len(diff)} key(s): "
            + ", ".join(diff[:5]),
            hint="report it with the script attached; the file is kept",
        )
    report = validate_source(path)
    unresolved = {n: [s.where(x) for x in lines] for n, lines in s.unresolved.items()}
    if format is Format.json:
        from rlx.render import emit_json

        emit_json(
            {
                "experiment": str(path),
                "algo": imported.algo,
                "algo_source": imported.algo_source,
                "lifted": ["/".join(k) for k in imported.lifted],
                "overrides": len(imported.overrides),
                "reverted": imported.reverted,
                "unresolved": unresolved,
                "round_trip": "exact",
                "validation": report.to_dict(),
            }
        )
        return report.exit_code
    from rlx.render import console
    from rlx.validate.report import render_text

    c = console()
    c.print(
        f"wrote {path}: algo {imported.algo} ({imported.algo_source}); {len(imported.lifted)} key(s) lifted, "
        f"{len(imported.overrides)} override(s), {imported.reverted} of them setting back what the "
        f"{imported.algo} preset changes",
        markup=False,
        highlight=False,
    )
    c.print("round trip: the experiment resolves to exactly the script's verl config", markup=False)
    for name, where in unresolved.items():
        c.print(
            f"note: {name} is not set in the script ({', '.join(where)}); kept as written: fill it in before launching",
            markup=False,
            highlight=False,
        )
    render_text(report, c)
    return report.exit_code


def register(app: typer.Typer) -> None:
    app.command("import", epilog=IMPORT_EPILOG, no_args_is_help=True)(import_cmd)
