"""Options that several commands share, declared once: `--format` and `--tracking-uri`.

Every command's `--format` takes values of the one `rlx.render.Format` enum; `format_option` names the subset a
command renders (text and json always) and refuses the others with the list it does accept. Completion helpers live
in `rlx.commands.complete`.
"""

from __future__ import annotations

from typing import Any

import typer

from rlx.render import Format

TRACKING_ENV = "MLFLOW_TRACKING_URI"


def format_option(*extra: Format, help: str = "Output format.", short: bool = True) -> Any:
    """`--format` (`-f`) restricted to text, json and `extra`; default text."""
    allowed = (Format.text, Format.json, *extra)
    names = [f.value for f in allowed]

    def check(value: Format) -> Format:
        if value not in allowed:
            raise typer.BadParameter(f"'{value.value}' is not one of {', '.join(names)} for this command")
        return value

    return typer.Option(
        Format.text,
        "--format",
        *(("-f",) if short else ()),
        help=help,
        metavar="<" + "|".join(names) + ">",
        callback=check,
        autocompletion=lambda incomplete: [n for n in names if n.startswith(incomplete)],
    )


def tracking_uri_option(help: str, *, from_env: bool = True) -> Any:
    """`--tracking-uri`: the MLflow store; read from `MLFLOW_TRACKING_URI` too unless the command resolves that itself."""
    return typer.Option(None, "--tracking-uri", envvar=TRACKING_ENV if from_env else None, help=help)
