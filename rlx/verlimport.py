"""`rlx import run.sh`: a verl launch script as an rlx experiment file that resolves to the same verl config.

The script's overrides are applied to verl's defaults: that is the config the script runs (the *target*). The
experiment names the algorithm (inferred from the estimator and loss, as `rlx compare` infers it), lifts the model,
data, cluster, name and project into the experiment's sections, and keeps every other override as written. An
algorithm's preset sets keys the script may not: for each one where the preset's value differs from the target,
the experiment sets the target's value back (or deletes the key the preset adds), with a comment saying so. The
round trip is therefore exact, and those comments are the list of places where the script is not the published
algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from rlx import verl_keys as K
from rlx.errors import ConfigError, UsageError
from rlx.verlscript import Script

# verl path -> (experiment section, key); only plain `key=value` overrides are lifted
LIFTED: dict[str, tuple[str, ...]] = {
    K.MODEL_PATH: ("model",),
    K.TRAIN_FILES: ("data", "train"),
    K.VAL_FILES: ("data", "val"),
    K.TRAIN_BATCH: ("data", "batch_size"),
    K.MAX_PROMPT_LEN: ("data", "max_prompt_length"),
    K.MAX_RESPONSE_LEN: ("data", "max_response_length"),
    K.NNODES: ("cluster", "nnodes"),
    K.GPUS_PER_NODE: ("cluster", "gpus_per_node"),
    K.PROJECT_NAME: ("tracking", "experiment"),
    K.EXPERIMENT_NAME: ("name",),
    K.TOTAL_STEPS: ("steps",),
}
_SECTIONS = ("name", "model", "data", "cluster", "tracking", "steps")


@dataclass
class Imported:
    algo: str
    algo_source: str  # "--algo" or "inferred from adv_estimator=grpo, loss_mode=gspo"
    lifted: dict[tuple[str, ...], tuple[Any, str]] = field(default_factory=dict)  # (section, key) -> (value, comment)
    overrides: list[tuple[str, Any, str]] = field(default_factory=list)  # (key with op prefix, value, comment)
    reverted: int = 0  # preset keys set back to what the script runs

    def to_yaml(self, script: Script) -> str:
        lines = [
            f"# Imported from {script.path.name} by `rlx import` (its `{script.entry}` command, line {script.line}).",
            f"# algo: {self.algo_source}.",
            f"algo: {self.algo}",
        ]
        for section in _SECTIONS:
            items = [(k, v) for k, v in self.lifted.items() if k[0] == section]
            if not items:
                continue
            if len(items[0][0]) == 1:
                ((_, (value, comment)),) = items
                lines.append(f"{section}: {_scalar(value)}  # {comment}")
                continue
            lines.append(f"{section}:")
            for (_, key), (value, comment) in items:
                lines.append(f"  {key}: {_scalar(value)}  # {comment}")
        if self.overrides:
            lines.append("overrides:")
            for key, value, comment in self.overrides:
                lines.append(f"  {_scalar(key)}: {_scalar(value)}" + (f"  # {comment}" if comment else ""))
        return "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    """One YAML value on one line (flow style), as safe_dump writes it."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20, allow_unicode=True).rstrip("\n")
    return text.removesuffix("\n...")


def import_script(script: Script, algo: str | None = None) -> Imported:
    """Build the experiment for `script`. Raises ConfigError when its overrides do not resolve at all."""
    from rlx.algorithms import ALGORITHMS
    from rlx.resolve import flatten, resolve
    from rlx.resolve.overrides import Op, parse

    if (
        script.config_name not in (None, "ppo_trainer")
        or (script.config_path or "config").rstrip("/") not in ("config", "pkg://verl.trainer.config")
        and not str(script.config_path).endswith("verl/trainer/config")
    ):
        raise ConfigError(
            f"{script.path.name} composes --config-name {script.config_name or 'ppo_trainer'} from "
            f"{script.config_path}; an experiment file builds on verl's ppo_trainer config",
            where=script.where(script.line),
            hint=f"`rlx validate config --verl {script.path}` validates the script as it stands",
        )
    import re

    for name, at in script.unresolved.items():
        if not re.fullmatch(r"\w+", name):
            raise ConfigError(
                f"{name} in the script's arguments is shell that rlx does not run",
                where=script.where(at[0]),
                hint="write its value into the script, then import again",
            )
    texts = [a.text for a in script.overrides]
    lines = {a.text: a.line for a in script.overrides}
    try:
        parsed = parse(texts)
        target = resolve(overrides=texts, verl_only=True)
    except ConfigError as e:
        bad = next((t for t in texts if f"'{t}'" in (e.where or "")), None)
        if bad is not None:
            e.where = script.where(lines[bad])
        raise
    tflat = flatten(_container(target.config))
    if algo:
        algorithm = ALGORITHMS.get(algo)
        source = "--algo"
    else:
        from rlx.compare.core import algorithm_of

        params = {k.replace(".", "/"): str(v) for k, v in tflat.items()}
        inferred, _ = algorithm_of({}, params)
        adv, loss = tflat.get(K.ADV_ESTIMATOR), tflat.get(K.LOSS_MODE)
        if inferred is None or inferred not in ALGORITHMS.names():
            raise UsageError(
                f"no rlx algorithm matches the script's adv_estimator={adv}, loss_mode={loss}",
                hint="name the closest one with --algo NAME (`rlx algos` lists them); the import keeps the "
                "script's values either way",
            )
        algorithm = ALGORITHMS.get(inferred)
        source = f"inferred from adv_estimator={adv}, loss_mode={loss}"
    out = Imported(algo=algorithm.name, algo_source=source)
    preset = resolve(algorithm.name)
    pflat = flatten(_container(preset.config))
    for ov in parsed:
        line = lines[ov.text]
        if ov.op is Op.SET and ov.path in LIFTED:
            out.lifted[LIFTED[ov.path]] = (ov.value, f"{script.path.name}:{line}")
            continue
        key = ov.path
        if ov.op is Op.DELETE:
            key = "~" + key
        elif ov.op is Op.FORCE or (ov.op is Op.ADD and _has(pflat, ov.path)):
            key = "++" + key  # the preset already adds it: `+` would refuse
        elif ov.op is Op.ADD:
            key = "+" + key
        out.overrides.append((key, ov.value, f"{script.path.name}:{line}"))
    # What the preset sets and the script does not: set back to what the script runs.
    with_script = resolve(
        algorithm.name,
        overrides=[_render(k, v) for k, v, _ in out.overrides]
        + [f"{_path_of(s)}={_render_value(v)}" for s, (v, _) in out.lifted.items()],
    )
    wflat = flatten(_container(with_script.config))
    present = _prefixes(tflat)
    deleted: set[str] = set()
    for path in sorted(wflat):
        if path in tflat:
            if wflat[path] != tflat[path]:
                was = preset.provenance.get(path)
                why = f"{was.label} sets {_scalar(wflat[path])}" if was else f"resolves to {_scalar(wflat[path])}"
                if path in LIFTED and LIFTED[path] not in out.lifted:
                    out.lifted[LIFTED[path]] = (tflat[path], f"verl's default, which the script keeps; {why}")
                else:
                    out.overrides.append((path, tflat[path], f"{why}; the script keeps this"))
                out.reverted += 1
            continue
        top = path  # the preset adds a key the script's config lacks: delete its highest missing ancestor
        while "." in top and top.rpartition(".")[0] not in present:
            top = top.rpartition(".")[0]
        if top not in deleted:
            deleted.add(top)
            out.overrides.append(("~" + top, None, f"{algorithm.name}'s preset adds it; the script does not"))
            out.reverted += 1
    return out


def _prefixes(flat: dict) -> set[str]:
    out = set(flat)
    for k in flat:
        head, dot, _ = k.rpartition(".")
        while dot:
            out.add(head)
            head, dot, _ = head.rpartition(".")
    return out


def _container(cfg) -> dict:
    from omegaconf import OmegaConf

    return cast(dict, OmegaConf.to_container(cfg, resolve=False))


def _has(flat: dict, path: str) -> bool:
    return path in flat or any(k.startswith(path + ".") for k in flat)


def _path_of(section: tuple[str, ...]) -> str:
    return next(p for p, s in LIFTED.items() if s == section)


def _render_value(v: Any) -> str:
    from rlx.resolve.overrides import render_value

    return render_value(v)


def _render(key: str, value: Any) -> str:
    return key if key.startswith("~") else f"{key}={_render_value(value)}"


def write_experiment(script: Script, imported: Imported, out: Path, *, force: bool = False) -> Path:
    from rlx.fsutil import atomic_write_text

    if out.exists() and not force:
        raise UsageError(f"{out} exists", hint="pass --force to replace it, or choose another -o")
    return atomic_write_text(out, imported.to_yaml(script))


def round_trip_diff(script: Script, experiment: Path) -> list[str]:
    """The verl keys where the experiment's config differs from the script's (empty when the import is exact)."""
    from rlx.resolve import flatten, resolve

    a = flatten(_container(resolve(overrides=[x.text for x in script.overrides], verl_only=True).config))
    b = flatten(_container(resolve(experiment=experiment).config))
    return sorted(k for k in set(a) | set(b) if a.get(k, _MISSING) != b.get(k, _MISSING))


_MISSING = object()
