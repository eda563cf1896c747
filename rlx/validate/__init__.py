"""`rlx validate`: catch every config mistake before a GPU is allocated.

Two entry points:
- `validate(resolved)` checks a config that `rlx.resolve.resolve` produced (what `rlx train` calls);
- `validate_source(file, algo=, preset=, overrides=, verl=)` also reads the inputs, collecting input and override
  problems (bad YAML, override syntax, unknown keys) instead of stopping at the first, then calls `validate`.

Every rule lives in `rlx.validate.rules.RULES` (code, title, severity, explanation, check) or, for algorithm
constraints, in the algorithm registry. Nothing here imports verl (the `deep` option does, on purpose).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlx.errors import ConfigError, RlxError
from rlx.validate.report import Problem, Report
from rlx.validate.rules import ERROR, RULES, Finding

__all__ = ["validate", "validate_source", "Report", "Problem"]

_CHECK_ERRORS = (TypeError, ValueError, KeyError, AttributeError, ZeroDivisionError)


def _codes(ignore: Iterable[str]) -> set[str]:
    return {c.strip().upper() for c in ignore if c and c.strip()}


def _problem(ctx, code: str, f: Finding) -> Problem:
    severity = f.severity or RULES[code].severity
    source = f.source if f.source is not None else (ctx.source(f.path) if f.path else "")
    return Problem(code, severity, f.path, f.message, f.hint, source)


def validate(
    resolved, *, ignore: Iterable[str] = (), strict: bool = False, pre: Iterable[Problem] = (), deep: bool = False
) -> Report:
    """Run every rule on a resolved config and return the report (never raises for a bad config).

    `ignore` (plus the experiment file's `ignore:` list) suppresses rule codes; with `strict`, warnings fail too.
    `pre` are problems found while reading the inputs. `deep` also runs verl's own `validate_config` and checks its
    registries after `import verl` (~4 s).
    """
    from rlx.validate.checks.algorithm import constraint_findings, infer_algorithms
    from rlx.validate.context import Context
    from rlx.validate.rules import checks

    skip = _codes(ignore) | _codes(getattr(resolved, "ignore", []) or [])
    inferred = resolved.algorithm is None
    algorithms = [resolved.algorithm] if resolved.algorithm else infer_algorithms(resolved.getter())
    ctx = Context(resolved, algorithms=algorithms, inferred=inferred)
    problems = [p for p in pre if p.code not in skip]
    for r in checks():
        if r.code in skip or r.check is None:  # checks() yields only rules that have a check
            continue
        try:
            problems.extend(_problem(ctx, r.code, f) for f in r.check(ctx))
        except _CHECK_ERRORS:
            continue  # a value of the wrong type broke the arithmetic: RLX103 reports the type
    for f in constraint_findings(ctx):
        if f.code not in skip:
            assert f.code is not None and f.severity is not None  # constraint findings carry both
            problems.append(Problem(f.code, f.severity, f.path, f.message, f.hint, ctx.source(f.path)))
    if deep:
        from rlx.validate.deep import deep_problems

        explained = any(
            p.code.startswith("RLX2") or p.code in ("RLX103", "RLX112", "RLX501")
            for p in problems
            if p.severity is ERROR
        )
        problems.extend(
            p for p in deep_problems(resolved, ctx) if p.code not in skip and not (p.code == "RLX290" and explained)
        )
    problems = [_plus_in_hint(p, ctx) for p in problems]
    return Report(
        problems=_scrub(_dedupe(problems), ctx.leaves),
        strict=strict,
        subject=_subject(resolved, algorithms, inferred),
        facts=_facts(ctx),
    )


# An override a hint proposes: `[+|++|~]dotted.key=`, not inside `${...}` or a longer word.
_HINT_OVERRIDE = re.compile(r"(?<![\w.$/{+~-])(\+\+|\+|~)?([a-z_]\w*(?:\.\w+)+)(?==)")


def _plus_in_hint(p: Problem, ctx) -> Problem:
    """Give each `key=value` a hint proposes the `+` it needs in this config, and only then: `+` adds a key absent
    before the command line (Hydra refuses `+` on an existing key, and a plain `key=` on a missing one). Rules write
    the target key; this one place decides the operator, so every hint agrees on it."""
    from dataclasses import replace

    def fix(m: re.Match) -> str:
        op, key = m.group(1) or "", m.group(2)
        if op in ("++", "~"):
            return m.group(0)
        return ("" if ctx.in_base(key) else "+") + key

    hint = _HINT_OVERRIDE.sub(fix, p.hint) if p.hint else p.hint
    return p if hint == p.hint else replace(p, hint=hint)


def _facts(ctx) -> dict[str, Any]:
    """The resources the config asks for (static: the cluster's, not this machine's)."""
    r = "actor_rollout_ref.rollout"
    sizes = [
        ctx.int(f"{r}.{k}") or 1
        for k in ("tensor_model_parallel_size", "data_parallel_size", "pipeline_model_parallel_size")
    ]
    return {
        "gpus": ctx.n_gpus,
        "nnodes": ctx.int("trainer.nnodes"),
        "gpus_per_node": ctx.int("trainer.n_gpus_per_node"),
        "replica": sizes[0] * sizes[1] * sizes[2],
    }


def _scrub(problems: list[Problem], leaves: dict[str, Any] | None = None) -> list[Problem]:
    """Messages quote config values: pass them through rlx's one redaction function (secrets never reach stdout)."""
    from dataclasses import replace

    from rlx.redact import redact_text, secret_values

    secrets = secret_values(leaves or {}, dict(os.environ))
    return [
        replace(
            p,
            message=redact_text(p.message, secrets),
            hint=redact_text(p.hint, secrets),
            source=redact_text(p.source, secrets),
        )
        for p in problems
    ]


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        key = (p.code, p.path, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def _subject(resolved, algorithms, inferred: bool) -> str:
    if getattr(resolved, "preset", None) is not None:
        return f"preset {resolved.preset.name}"
    if algorithms and inferred:
        return "verl config (rules of " + "/".join(a.title for a in algorithms) + ")"
    return "verl config"


# ---- reading the inputs, collecting problems ----------------------------------------------------------------------

VERL_SECTIONS = {"actor_rollout_ref", "algorithm", "trainer", "critic", "reward", "ray_kwargs", "reward_model"}


def _override_path(text: str) -> str:
    return text.partition("=")[0].strip().lstrip("+~")


def _from_error(e: RlxError, *, path: str = "", source: str = "") -> Problem:
    """An error raised while reading inputs or applying an override, as a problem: its raise site names the rule
    (`RlxError.code`); an error no rule describes is an invalid preset or experiment file."""
    from rlx.validate.checks import inputs

    code = e.code or inputs.BAD_STRUCTURE.code
    return Problem(code, ERROR, path or e.path or "", e.message, e.hint or "", source or e.where or "")


def _parse_each(overrides: list[str]) -> tuple[list[str], list[Problem]]:
    """Overrides that parse, and a problem for each that does not (Hydra's parser stops at the first)."""
    from rlx.resolve.overrides import parse

    good, problems = [], []
    for text in overrides:
        try:
            parse([text])
            good.append(text)
        except ConfigError as e:
            p = _from_error(e, path=_override_path(text), source=f"command line: {text}")
            key, _, value = text.partition("=")
            if "~" in value and not value.startswith(("'", '"')):
                # Hydra reads `~` as its delete operator, so a home-relative path must be quoted
                p = Problem(p.code, p.severity, p.path, p.message, f"quote the value: {key}='{value}'", p.source)
            problems.append(p)
    return good, problems


def _culprit(e: RlxError, texts: list[str]) -> str | None:
    for text in texts:
        if e.where == f"override '{text}'":
            return text
    return None


def resolve_collecting(algo=None, *, preset=None, experiment=None, overrides=(), verl_only=False):
    """`rlx.resolve.resolve`, but a bad command-line override is reported and dropped, not fatal.

    Returns (Resolved or None, problems). None means an input could not be read at all (the problems say why).
    """
    from rlx.resolve import resolve

    good, problems = _parse_each(list(overrides))
    while True:
        try:
            return resolve(algo, preset=preset, experiment=experiment, overrides=good, verl_only=verl_only), problems
        except ConfigError as e:
            bad = _culprit(e, good)
            if bad is None:  # a preset or experiment file is broken: nothing left to resolve
                problems.append(_from_error(e))
                return None, problems
            problems.append(_from_error(e, path=_override_path(bad), source=f"command line: {bad}"))
            good.remove(bad)


def _apply_collecting(resolved, overrides: list[str]) -> list[Problem]:
    """Apply command-line overrides on top of a loaded verl YAML, reporting bad ones."""
    from rlx.resolve import Provenance, apply_override
    from rlx.resolve.overrides import parse

    good, problems = _parse_each(overrides)
    for ov in parse(good):
        try:
            apply_override(resolved.config, ov, where=f"override '{ov.text}'")
        except ConfigError as e:
            problems.append(_from_error(e, path=ov.path, source=f"command line: {ov.text}"))
            continue
        resolved.provenance[ov.path] = Provenance("cli", "command line", "", f"override '{ov.text}'")
    return problems


def file_kind(data: dict[str, Any]) -> str:
    """ "verl" (a full verl config), "preset" or "experiment", from a YAML file's top-level keys."""
    from rlx.presets import PRESET_KEYS
    from rlx.resolve.experiment import TOP_KEYS

    keys = set(data)
    if keys & VERL_SECTIONS:
        return "verl"
    if keys & (TOP_KEYS - PRESET_KEYS):
        return "experiment"
    if "extends" in keys:
        return "preset"
    return "experiment"


# Where a verl config file may hold keys verl's schema lacks (what `+key=` adds in rlx presets and verl's recipes).
FREE_PREFIXES = (
    "algorithm.rlx.",
    "reward.reward_kwargs.",
    "ray_kwargs.",
    "actor_rollout_ref.model.override_config.",
    "actor_rollout_ref.rollout.engine_kwargs.",
    "critic.model.override_config.",
)


def _unknown_file_keys(resolved, doc) -> list[Problem]:
    """Keys of a verl config file that are not in verl's schema (outside the strict sections RLX112 covers)."""
    from rlx.errors import did_you_mean
    from rlx.resolve import leaf_paths
    from rlx.validate.checks.schema import STRICT_ROOTS
    from rlx.verl_moves import new_home

    base = resolved.default_leaves
    out = []
    for key in leaf_paths(resolved.config):
        if key in base or key.startswith(STRICT_ROOTS) or key.startswith(FREE_PREFIXES):
            continue
        if any(k.startswith(key + ".") for k in base):
            continue  # an empty mapping where verl has a section
        kind, home = new_home(key, lambda k: k in base)
        if kind == "moved":
            hint = f"verl 0.9.1 moved it to {home}"
        elif kind == "removed":
            hint = f"delete it: verl 0.9.1 removed it ({home})"
        else:
            close = did_you_mean(key, list(base), n=1, cutoff=0.8)
            hint = f"did you mean '{close[0]}'?" if close else "remove it"
        out.append(
            Problem(
                "RLX102",
                ERROR,
                key,
                f"unknown config key '{key}' (not in verl's ppo_trainer config)",
                hint,
                resolved.source_of(key).where or doc.source,
            )
        )
    return out


def validate_source(
    file: str | os.PathLike | None = None,
    *,
    algo: str | None = None,
    preset: str | None = None,
    overrides: Iterable[str] = (),
    verl: bool = False,
    ignore: Iterable[str] = (),
    strict: bool = False,
    deep: bool = False,
    _labels=None,
) -> Report:
    """Validate what `rlx validate config` was given: a FILE (preset, experiment or full verl config) and/or
    `--algo`/`--preset`, plus overrides; with `verl`, the overrides are applied to verl's defaults with no preset.

    Input problems (unreadable YAML, override syntax, unknown keys) are collected, never raised. A usage error (an
    unknown algorithm name, no algorithm at all) still raises `UsageError`.
    """
    overrides = list(overrides)
    experiment = None
    if file is not None and _labels is None:
        from rlx.validate.script import is_script, validate_script

        if is_script(file):
            return validate_script(file, overrides, ignore=ignore, strict=strict, deep=deep)
    if file is not None:
        from rlx.yamlio import load_file

        try:
            doc = load_file(file, what="config file")
        except ConfigError as e:
            return Report(problems=[_from_error(e)], strict=strict, subject=str(file))
        kind = file_kind(doc.data)
        if kind == "verl":
            return _validate_verl_file(file, doc, algo, overrides, ignore, strict, deep, _labels)
        if kind == "preset":
            if preset:
                from rlx.errors import UsageError

                raise UsageError("FILE is a preset and --preset was given too", hint="pass one of them")
            preset = str(file)
        else:
            experiment = Path(file)
    resolved, pre = resolve_collecting(algo, preset=preset, experiment=experiment, overrides=overrides, verl_only=verl)
    if resolved is None:
        return Report(
            problems=_scrub([p for p in pre if p.code not in _codes(ignore)]),
            strict=strict,
            subject=str(file or preset or algo or "verl overrides"),
        )
    pre = _labelled(resolved, pre, _labels)
    return validate(resolved, ignore=ignore, strict=strict, pre=pre, deep=deep)


def _labelled(resolved, pre: list[Problem], labels) -> list[Problem]:
    """For a script (`labels` = (Script, {override: line})): what its lines set points at `run.sh:LINE`."""
    if labels is None:
        return pre
    from rlx.validate.script import label_sources, relabel_problem

    script, lines = labels
    label_sources(resolved, script, lines)
    return [relabel_problem(p, script, lines) for p in pre]


def _validate_verl_file(file, doc, algo, overrides, ignore, strict, deep, labels=None) -> Report:
    from rlx.algorithms import ALGORITHMS
    from rlx.resolve import load_verl_yaml

    try:
        resolved = load_verl_yaml(file, labels[0].base if labels is not None else "ppo_trainer")
    except ConfigError as e:
        return Report(problems=[_from_error(e)], strict=strict, subject=str(file))
    from omegaconf import OmegaConf

    OmegaConf.set_struct(resolved.config, True)
    pre = _unknown_file_keys(resolved, doc) + _apply_collecting(resolved, overrides)
    if labels is not None:
        from rlx.resolve import Provenance

        script = labels[0]
        for k, prov in list(resolved.provenance.items()):  # the composed config is a temporary file: name the config
            if prov.layer == "file":
                resolved.provenance[k] = Provenance("file", f"config {script.config_name}", prov.reason, "")
        pre = _labelled(resolved, pre, labels)
    if algo:
        resolved.algorithm = ALGORITHMS.get(algo)
    report = validate(resolved, ignore=ignore, strict=strict, pre=pre, deep=deep)
    report.subject = f"file {Path(file).name}" + (f" ({report.subject})" if "rules of" in report.subject else "")
    return report
