"""`rlx algos` and `rlx presets`: what rlx knows, straight from the registry and the preset files.

These commands must stay fast: they import neither torch, ray, verl nor mlflow (a test checks `sys.modules`),
nor Hydra: preset files are read as YAML.
"""

from __future__ import annotations

from pathlib import Path

import typer

from rlx.commands.complete import algorithms
from rlx.commands.options import format_option
from rlx.render import Format

FormatOpt = format_option()

algos_app = typer.Typer(
    help="List the algorithms rlx knows, and what each one sets in verl.",
    invoke_without_command=True,
    epilog="\b\nExamples:\n  $ rlx algos\n  $ rlx algos --format json\n  $ rlx algos show gspo",
    rich_markup_mode=None,
)
presets_app = typer.Typer(
    help="List, show and copy algorithm presets (verl settings with cited sources).",
    no_args_is_help=True,
    epilog="\b\nExamples:\n  $ rlx presets ls\n  $ rlx presets show dapo\n  $ rlx presets cp gspo my_gspo.yaml",
    rich_markup_mode=None,
)


def _complete_preset(incomplete: str) -> list[str]:
    from rlx.presets import builtin_names

    return [n for n in builtin_names() if n.startswith(incomplete)]


@algos_app.callback()
def algos(ctx: typer.Context, format: Format = FormatOpt) -> None:
    """Every algorithm: name, summary, paper, family and status."""
    if ctx.invoked_subcommand:
        return
    from rlx.algorithms import ALGORITHMS
    from rlx.render import console, emit_json, table

    rows = [a.to_dict() for a in ALGORITHMS]
    if format is Format.json:
        emit_json(rows)
        return
    columns = ["name", "algorithm", "family", "status", "paper", "summary"]
    cells = [[a.name, a.title, a.family.value, a.status.value, f"arXiv:{a.paper}", a.summary] for a in ALGORITHMS]
    if any(a.origin != "rlx" for a in ALGORITHMS):  # a plugin package contributed some: say which
        columns.append("from")
        cells = [[*row, a.origin] for row, a in zip(cells, ALGORITHMS, strict=True)]
    console().print(table(None, columns, cells))
    console().print("`rlx algos show NAME` for the verl keys an algorithm sets and why.")


@algos_app.command("show", epilog="\b\nExamples:\n  $ rlx algos show gspo\n  $ rlx algos show dapo --format json")
def algos_show(
    name: str = typer.Argument(..., help="Algorithm name.", autocompletion=algorithms),
    format: Format = FormatOpt,
) -> None:
    """What an algorithm is, its paper, its status, the verl keys its preset sets and why, and its rules."""
    from rlx.algorithms import ALGORITHMS
    from rlx.presets import load
    from rlx.render import console, emit_json, fmt_value, table

    algo = ALGORITHMS.get(name)
    preset = load(algo.preset)
    settings = [
        {"key": s.key, "value": s.value, "reason": s.reason, "preset": p.name, "where": s.where}
        for p, s in preset.effective().values()
    ]
    rules = [
        {"code": c.code, "severity": c.severity.value, "path": c.path, "when": c.describe(), "title": c.title}
        for c in algo.constraints
    ]
    if format is Format.json:
        emit_json(
            {
                **algo.to_dict(),
                "title": algo.title,
                "adv_estimator": algo.adv_estimator,
                "loss_mode": algo.loss_mode,
                "entrypoint": "rlx" if algo.needs_rlx_entrypoint else "verl",
                "preset": preset.lineage,
                "settings": settings,
                "rules": rules,
            }
        )
        return
    c = console()
    c.print(f"[bold]{algo.title}[/bold] ({algo.name}): {algo.summary}")
    c.print(f"paper: https://arxiv.org/abs/{algo.paper}   family: {algo.family.value}   status: {algo.status.value}")
    c.print(
        f"verl: algorithm.adv_estimator={algo.adv_estimator}  policy_loss.loss_mode={algo.loss_mode}"
        + ("   (runs through rlx's verl entrypoint)" if algo.needs_rlx_entrypoint else "")
    )
    c.print()
    c.print(
        table(
            f"Preset {preset.lineage}: keys set and why",
            ["key", "value", "why", "from"],
            [[s["key"], fmt_value(s["value"]), s["reason"], s["preset"]] for s in settings],
        )
    )
    c.print(
        table(
            "Rules checked by `rlx validate config`",
            ["code", "severity", "when", "title"],
            [[r["code"], r["severity"], r["when"], r["title"]] for r in rules],
        )
    )


@presets_app.command("ls", epilog="\b\nExamples:\n  $ rlx presets ls\n  $ rlx presets ls --format json")
def presets_ls(format: Format = FormatOpt) -> None:
    """List the built-in presets."""
    from rlx.algorithms import ALGORITHMS
    from rlx.presets import builtin_names, load
    from rlx.render import console, emit_json, table

    rows = []
    for name in builtin_names():
        p = load(name)
        algo = ALGORITHMS.find(name)
        rows.append(
            {
                "name": name,
                "extends": p.chain[-1].name if p.chain else None,
                "algorithm": algo.name if algo else None,
                "status": algo.status.value if algo else None,
                "keys": len(p.effective()),
                "description": p.description,
                "path": str(p.source),
            }
        )
    if format is Format.json:
        emit_json(rows)
        return
    console().print(
        table(
            None,
            ["name", "extends", "status", "keys", "description"],
            [[r["name"], r["extends"] or "", r["status"] or "", r["keys"], r["description"]] for r in rows],
        )
    )


@presets_app.command(
    "show", epilog="\b\nExamples:\n  $ rlx presets show dapo\n  $ rlx presets show my_gspo.yaml --format json"
)
def presets_show(
    name: str = typer.Argument(..., help="Preset name or path.", autocompletion=_complete_preset),
    format: Format = FormatOpt,
) -> None:
    """Show a preset's file and the settings it ends up with after `extends`."""
    from rlx.presets import load
    from rlx.render import console, emit_json, fmt_value, table

    preset = load(name)
    eff = preset.effective()
    if format is Format.json:
        emit_json(
            {
                "name": preset.name,
                "lineage": preset.lineage,
                "path": str(preset.source),
                "description": preset.description,
                "settings": [
                    {"key": s.key, "value": s.value, "reason": s.reason, "preset": p.name} for p, s in eff.values()
                ],
            }
        )
        return
    c = console()
    c.print(f"# {preset.source}", markup=False)
    c.print(preset.source.read_text(encoding="utf-8"), markup=False, highlight=False)
    c.print(
        table(
            f"Effective settings ({preset.lineage})",
            ["key", "value", "from"],
            [[s.key, fmt_value(s.value), p.name] for p, s in eff.values()],
        )
    )


@presets_app.command(
    "cp", epilog="\b\nExamples:\n  $ rlx presets cp gspo my_gspo.yaml\n  $ rlx train --preset my_gspo.yaml --dry-run"
)
def presets_cp(
    name: str = typer.Argument(..., help="Built-in preset to copy.", autocompletion=_complete_preset),
    dest: Path = typer.Argument(..., help="Destination file (.yaml)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
    format: Format = FormatOpt,
) -> None:
    """Copy a built-in preset to a file you can edit, then use with `--preset FILE`."""
    from rlx.algorithms import ALGORITHMS
    from rlx.errors import UsageError
    from rlx.fsutil import atomic_write_text
    from rlx.presets import load
    from rlx.render import emit_json

    preset = load(name)
    if dest.is_dir():
        dest = dest / f"{preset.source.stem}.yaml"
    if dest.exists() and not force:
        raise UsageError(
            f"{dest} already exists", where=str(dest), hint="pass --force to overwrite, or choose another path"
        )
    text = preset.source.read_text(encoding="utf-8")
    if preset.algo is None and ALGORITHMS.find(preset.name) is not None:
        # A copy is no longer identified by its file name: say which algorithm it configures (rules, entrypoint).
        text = _insert_algo(text, preset.name)
    # `extends: <builtin name>` keeps working from any directory: built-in names resolve inside the package.
    atomic_write_text(dest, text)
    if format is Format.json:
        emit_json({"copied": preset.name, "to": str(dest)})
    else:
        typer.echo(f"copied preset {preset.name} to {dest}\nuse it with: rlx train --preset {dest} --dry-run")


def _insert_algo(text: str, name: str) -> str:
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        i += 1
    lines.insert(i, f"algo: {name}  # the algorithm this preset configures: its rules and entrypoint apply\n")
    return "".join(lines)


def register(app: typer.Typer) -> None:
    app.add_typer(algos_app, name="algos")
    app.add_typer(presets_app, name="presets")
