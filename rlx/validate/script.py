"""Validate a verl launch script as it stands: `rlx validate config --verl run.sh`.

The script is read, never run (`rlx.verlscript`). Its overrides are applied to verl's defaults, or to the config its
`--config-path`/`--config-name` compose, exactly as `--verl KEY=VALUE ...` would apply them, and every finding that
a script line set points at `run.sh:LINE`. An override that uses a variable the script never sets is not applied: it
is reported (RLX012), and verl's default stands in for it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rlx.errors import ConfigError
from rlx.validate.report import Problem, Report
from rlx.validate.rules import INFO, WARNING
from rlx.verlscript import Script, read_script


def is_script(file: str | os.PathLike) -> bool:
    """A bash script (by suffix or shebang), not a YAML config."""
    p = Path(file)
    if p.suffix in (".sh", ".bash"):
        return True
    try:
        with p.open("rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


# Set in every login shell, and only ever used for paths: named, but as information, not as a warning.
LOGIN_VARIABLES = frozenset({"HOME", "USER", "LOGNAME", "PWD"})


def unresolved_problems(script: Script) -> list[Problem]:
    out = []
    for name, lines in script.unresolved.items():
        shown = name if not re.fullmatch(r"\w+", name) else f"${name}"
        marks = (name,) if not re.fullmatch(r"\w+", name) else ("$" + name,)
        texts = [a.text for a in script.overrides if a.line in lines and any(m in a.text for m in marks)]
        hint = (
            f"set it in the script ({name}=...) or give it a default (${{{name}:-VALUE}})"
            if re.fullmatch(r"\w+", name)
            else "replace the command substitution with its value"
        )
        quoted = ", ".join(f"`{t}`" for t in texts)
        verb = "was" if len(texts) == 1 else "were"
        what = "is not set in the script" if re.fullmatch(r"\w+", name) else "is shell that rlx does not run"
        out.append(
            Problem(
                "RLX012",
                INFO if name in LOGIN_VARIABLES else WARNING,
                _key(texts[0]) if texts else "",
                f"{shown} {what}, so {quoted} {verb} not validated (verl's default stands in)",
                hint,
                script.where(lines[0]),
            )
        )
    return out


def script_overrides(script: Script) -> tuple[list[str], dict[str, int]]:
    """The overrides to validate (those with no unresolved variable) and each one's line."""
    marks = [m for n in script.unresolved for m in ((n,) if not re.fullmatch(r"\w+", n) else ("$" + n, "${" + n))]
    good = [a for a in script.overrides if not any(m in a.text for m in marks)]
    return [a.text for a in good], {a.text: a.line for a in good}


def _key(text: str) -> str:
    return text.split("=", 1)[0].lstrip("+~")


def validate_script(
    file: str | os.PathLike,
    overrides: Iterable[str] = (),
    *,
    ignore: Iterable[str] = (),
    strict: bool = False,
    deep: bool = False,
) -> Report:
    from rlx.validate import _from_error, validate_source

    try:
        script = read_script(file)
    except ConfigError as e:
        return Report(problems=[_from_error(e, source=str(file))], strict=strict, subject=f"script {Path(file).name}")
    texts, lines = script_overrides(script)
    extra = list(overrides)
    try:
        base = _base_config(script)
    except ConfigError as e:
        return Report(
            problems=[_from_error(e, source=script.where(script.line))],
            strict=strict,
            subject=f"script {script.path.name}",
        )
    try:
        if base is None:
            report = validate_source(
                None,
                overrides=texts + extra,
                verl=True,
                ignore=ignore,
                strict=strict,
                deep=deep,
                _labels=(script, lines),
            )
        else:
            report = validate_source(
                base, overrides=texts + extra, ignore=ignore, strict=strict, deep=deep, _labels=(script, lines)
            )
    finally:
        if base is not None:
            Path(base).unlink(missing_ok=True)
    ignored = {c.strip().upper() for c in ignore}
    skipped = {_key(a.text) for a in script.overrides if a.text not in lines}
    # A key whose override was not applied is not judged on verl's stand-in default (RLX012 names it instead).
    report.problems = [
        p for p in report.problems if p.path not in skipped and not any(f"{k} " in p.message + " " for k in skipped)
    ]
    report.problems[:0] = [p for p in unresolved_problems(script) if p.code not in ignored]
    report.subject = f"script {script.path.name}" + (f" ({script.config_name})" if base is not None else "")
    return report


def label_sources(report_or_resolved, script: Script, lines: dict[str, int]) -> None:
    """Point provenance set by the script's overrides at `run.sh:LINE`."""
    from rlx.resolve import Provenance

    prov = report_or_resolved.provenance
    for path, p in list(prov.items()):
        if p.layer == "cli":
            text = p.where.removeprefix("override '").removesuffix("'")
            if text in lines:
                prov[path] = Provenance("file", f"script {script.path.name}", "", f"{script.path}:{lines[text]}")


def relabel_problem(p: Problem, script: Script, lines: dict[str, int]) -> Problem:
    """A bad override's problem (`command line: TEXT`) names its script line instead."""
    if p.source.startswith("command line: "):
        text = p.source.removeprefix("command line: ")
        if text in lines:
            return dataclasses.replace(p, source=f"{script.path}:{lines[text]}: {text}")
    return p


def _base_config(script: Script) -> str | None:
    """None for verl's ppo_trainer (the default); else a temporary YAML of the config the script composes.

    A relative `--config-path` is relative to the trainer's module file, as Hydra has it (so `config` is verl's own
    folder for main_ppo), then to the script's folder, then to the current one.
    """
    from rlx.resolve import verl_config_dir

    verl_dir = verl_config_dir()
    name, where = script.config_name or "ppo_trainer", script.config_path
    config_dir: Path | None
    if where is None:
        config_dir = verl_dir
    elif where.startswith("pkg://"):
        config_dir = verl_dir if where.rstrip("/") == "pkg://verl.trainer.config" else None
    else:
        p = Path(where.removeprefix("file://"))
        tries = [p] if p.is_absolute() else [verl_dir.parent / p, script.path.parent / p, Path.cwd() / p]
        if "$" in where:  # `$PROJECT_DIR/examples/x/config`: the part after the unknown prefix, in a folder above
            tail = Path(re.split(r"\$\{?\w+\}?/?|\$\([^)]*\)/?", where)[-1])
            tries = [d / tail for d in script.path.resolve().parents] if tail.parts else tries
        config_dir = next((t.resolve() for t in tries if (t / f"{name}.yaml").is_file()), tries[0])
    if config_dir is None or not (config_dir / f"{name}.yaml").is_file():
        raise ConfigError(
            f"--config-name {name}: no {name}.yaml in {config_dir or where}",
            hint=f"keep the config folder where --config-path points ({where} is read relative to verl/trainer/, "
            f"then to {script.path.parent}), or drop --config-path/--config-name to validate against verl's own config",
            code="RLX011",
        )
    if config_dir == verl_dir.resolve() and name == "ppo_trainer":
        return None
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base=None):
            cfg = compose(config_name=name, overrides=[f"hydra.searchpath=[file://{verl_dir}]"])
    except Exception as e:  # noqa: BLE001 - Hydra raises many kinds; each is a config the script cannot compose
        raise ConfigError(
            f"--config-name {name} does not compose: {e}",
            hint=f"check {config_dir / (name + '.yaml')} and its `defaults:` list",
            code="RLX011",
        ) from None
    finally:
        GlobalHydra.instance().clear()
    # Megatron configs are read against verl's Megatron schema, the rest against ppo_trainer's
    script.base = "ppo_megatron_trainer" if OmegaConf.select(cfg, "actor_rollout_ref.actor.megatron") else "ppo_trainer"
    fd, tmp = tempfile.mkstemp(prefix=f"rlx-{name}-", suffix=".yaml")
    os.close(fd)
    OmegaConf.save(cfg, tmp)
    return tmp
