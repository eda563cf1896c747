"""Resolution: preset + experiment file + overrides -> a complete verl 0.9.1 config, with provenance.

Layers, later wins (design.md "Layers of a resolved config"):
1. verl's packaged `ppo_trainer` config, composed with Hydra's compose API from the installed package's config folder
   (`initialize_config_dir`: verl itself is never imported, which would cost ~5 s);
2. the algorithm preset and the presets it extends;
3. the user's experiment file;
4. `key=value` overrides in verl's own Hydra grammar (`+key=`, `++key=`, `~key`).

Every key that differs from verl's default records which layer set it and why (`Provenance`).

The modules, in the order a resolution uses them: `defaults` (verl's packaged config), `paths` (reading a config by
dotted path), `overrides` (Hydra's grammar), `apply` (one override onto a config), `experiment` (experiment files),
`resolved` (the result, `Resolved`), `naming` (run names) and `inert` (keys a config sets to no effect).
"""

from __future__ import annotations

import os
from pathlib import Path

from rlx.algorithms import ALGORITHMS, Algorithm
from rlx.errors import ConfigError, UsageError
from rlx.presets import Preset
from rlx.presets import load as load_preset
from rlx.resolve.apply import apply_override
from rlx.resolve.defaults import cache_dir, compose_verl, verl_config_dir, verl_defaults, verl_defaults_container
from rlx.resolve.experiment import load as load_experiment
from rlx.resolve.overrides import Override
from rlx.resolve.overrides import parse as parse_overrides
from rlx.resolve.paths import ABSENT, flatten, has_key, leaf_paths, select
from rlx.resolve.resolved import RLX_ENTRYPOINT, VERL_DEFAULT, VERL_ENTRYPOINT, Change, Provenance, Resolved

__all__ = [
    "RLX_ENTRYPOINT",
    "VERL_DEFAULT",
    "VERL_ENTRYPOINT",
    "Change",
    "Provenance",
    "Resolved",
    "apply_override",
    "cache_dir",
    "compose_verl",
    "flatten",
    "has_key",
    "leaf_paths",
    "load_verl_yaml",
    "resolve",
    "select",
    "verl_config_dir",
    "verl_defaults",
    "verl_defaults_container",
]


def resolve(
    algo: str | None = None,
    *,
    preset: str | None = None,
    experiment: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    verl_only: bool = False,
) -> Resolved:
    """Resolve an algorithm preset (or a preset file), an experiment file and overrides into a verl config.

    `algo` names a registered algorithm (its built-in preset is used); `preset` is a built-in preset name or a path;
    with `verl_only` no preset is applied (the overrides are validated as a verl bash script would pass them).
    """
    exp = load_experiment(experiment) if experiment else None
    overrides = list(overrides or [])
    algo_given = algo is not None
    algo = algo or (exp.algo if exp else None)
    preset_ref = preset or (exp.preset if exp else None)
    if exp and exp.preset and not preset and not Path(exp.preset).is_absolute():
        candidate = exp.source.parent / exp.preset
        preset_ref = str(candidate) if candidate.exists() else exp.preset

    algorithm = ALGORITHMS.get(algo) if algo else None
    loaded_preset: Preset | None = None
    if not verl_only:
        if preset_ref:
            loaded_preset = load_preset(preset_ref)
            own = ALGORITHMS.get(loaded_preset.algo) if loaded_preset.algo else _algorithm_from_chain(loaded_preset)
            if algorithm is not None and own is not None and own.name != algorithm.name:
                raise _conflicting_algorithms(
                    algorithm, own, loaded_preset, algo_from_cli=algo_given, exp=exp, preset_from_cli=preset is not None
                )
            if algorithm is None:
                algorithm = own
        elif algorithm is not None:
            loaded_preset = load_preset(algorithm.preset)
        else:
            raise UsageError(
                "no algorithm given",
                hint="pass --algo NAME (`rlx algos` lists them), --preset FILE, an experiment file with `algo:`, "
                "or --verl to validate plain verl overrides",
            )

    cli = parse_overrides(overrides)
    exp_cli = parse_overrides([t for t, _ in exp.override_texts]) if exp else []

    cfg = verl_defaults()
    provenance: dict[str, Provenance] = {}
    parents: set[str] = set()  # every proper prefix of a recorded path: only these can have recorded children

    def record(ov: Override, prov: Provenance) -> None:
        apply_override(cfg, ov, where=prov.where)
        provenance.pop(ov.path, None)
        if ov.path in parents:  # the override replaced a subtree: drop what was recorded below it
            for k in [k for k in provenance if k.startswith(ov.path + ".")]:
                del provenance[k]
        provenance[ov.path] = prov
        head, dot, _ = ov.path.rpartition(".")
        while dot and head not in parents:
            parents.add(head)
            head, dot, _ = head.rpartition(".")

    from omegaconf import open_dict

    with open_dict(cfg):  # once, not per override: see `_opened`
        if loaded_preset is not None:
            for p, s in loaded_preset.settings:
                label = f"preset {p.name}" if p is loaded_preset else f"preset {p.name} (via {loaded_preset.name})"
                record(Override.from_setting(s.key, s.value), Provenance("preset", label, s.reason, s.where))
        if exp is not None:
            label = f"experiment {exp.source.name}"
            for s in exp.settings:
                record(Override.from_setting(s.key, s.value), Provenance("experiment", label, s.reason, s.where))
            for ov, (_, where) in zip(exp_cli, exp.override_texts, strict=True):
                record(ov, Provenance("experiment", label, "", where))
        for ov in cli:
            record(ov, Provenance("cli", "command line", "", f"override '{ov.text}'"))

    return Resolved(
        config=cfg,
        provenance=provenance,
        algorithm=algorithm,
        preset=loaded_preset,
        experiment=exp,
        overrides=overrides,
        ignore=list(exp.ignore) if exp else [],
    )


def _conflicting_algorithms(
    named: Algorithm, own: Algorithm, preset: Preset, *, algo_from_cli: bool, exp, preset_from_cli: bool
) -> ConfigError:
    """Two inputs name different algorithms: the title would say one and the losses train the other."""
    said = "--algo" if algo_from_cli else f"{exp.source.name} (`algo: {exp.algo}`)"
    given = f"--preset {preset.source.name}" if preset_from_cli else f"{exp.source.name} (`preset:`)"
    lineage = " <- ".join(p.name for p in [preset, *reversed(preset.chain)])
    return ConfigError(
        f"conflicting algorithm sources: {said} names {named.title}, but {given} is a {own.title} preset ({lineage})",
        where=str(exp.source) if exp is not None and not algo_from_cli else "",
        hint=f"keep one: drop `algo: {named.name}` (the preset decides), or use a preset that extends {named.name} "
        f"(`extends: {named.name}`)"
        if not algo_from_cli
        else f"keep one: drop --algo {named.name} (the preset decides), or use a preset that extends {named.name}",
        code="RLX009",
    )


def _algorithm_from_chain(preset: Preset) -> Algorithm | None:
    """A user preset that extends a built-in one inherits its algorithm."""
    for p in reversed([*preset.chain, preset]):
        from rlx.presets import spec_presets

        own = p.source.parent == _builtin() or spec_presets().get(Path(p.source).stem) == p.source
        algo = ALGORITHMS.find(Path(p.source).stem) if own else None
        if algo is not None:
            return algo
    return None


def _builtin() -> Path:
    from rlx.presets import builtin_dir

    return builtin_dir().resolve()


def load_verl_yaml(path: str | os.PathLike, config_name: str = "ppo_trainer") -> Resolved:
    """A full verl config YAML (e.g. a run's `.hydra/config.yaml`) as a Resolved, with provenance "file".

    `config_name` is the packaged verl config it is read against (ppo_megatron_trainer for a Megatron run)."""
    from omegaconf import OmegaConf

    from rlx.yamlio import load_file

    doc = load_file(path, what="verl config")
    cfg = OmegaConf.create(doc.data)
    prov: dict[str, Provenance] = {}
    base = flatten(verl_defaults_container(config_name))
    for key, value in leaf_paths(cfg).items():
        if base.get(key, ABSENT) != value:
            line_key = tuple(key.split("."))
            prov[key] = Provenance("file", f"file {Path(path).name}", "", doc.where(line_key))
    return Resolved(config=cfg, provenance=prov, config_name=config_name)
