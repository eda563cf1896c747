"""Experiment files: the 50-line bash script of Hydra overrides as 10 lines of YAML.

    algo: gspo                         # or `preset: ./my_preset.yaml`
    name: gspo-qwen3b                  # MLflow run name (trainer.experiment_name)
    model: Qwen/Qwen2.5-3B-Instruct    # actor (and critic) model path
    data:
      train: ~/data/gsm8k/train.parquet
      val: ~/data/gsm8k/test.parquet
      batch_size: 512
      max_response_length: 2048
    cluster: {nnodes: 2, gpus_per_node: 8, address: http://head:8265}
    tracking: {uri: http://mlflow:5000, experiment: gsm8k}
    overrides:                         # any verl key, as a mapping or as a list of `key=value` strings
      actor_rollout_ref.rollout.n: 8
    ignore: [RLX421]                   # validation rules to suppress

Shorthand keys map to verl paths (`SHORTHANDS`); `cluster.address` and `tracking.uri` are for the launcher, not verl.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlx import verl_keys as K
from rlx.errors import ConfigError, suggestion
from rlx.presets import Setting, settings_from
from rlx.yamlio import LoadedYaml, load_file

# (section, key) -> verl paths it sets
SHORTHANDS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("model",): (K.MODEL_PATH,),
    ("model", "path"): (K.MODEL_PATH,),
    ("model", "critic"): ("critic.model.path",),
    ("data", "train"): (K.TRAIN_FILES,),
    ("data", "val"): (K.VAL_FILES,),
    ("data", "batch_size"): (K.TRAIN_BATCH,),
    ("data", "max_prompt_length"): (K.MAX_PROMPT_LEN,),
    ("data", "max_response_length"): (K.MAX_RESPONSE_LEN,),
    ("data", "prompt_key"): ("data.prompt_key",),
    ("cluster", "nnodes"): (K.NNODES,),
    ("cluster", "gpus_per_node"): (K.GPUS_PER_NODE,),
    ("tracking", "experiment"): (K.PROJECT_NAME,),
    ("name",): (K.EXPERIMENT_NAME,),
    ("steps",): (K.TOTAL_STEPS,),
}
LAUNCH_KEYS = {("cluster", "address"), ("tracking", "uri")}
TOP_KEYS = {
    "algo",
    "preset",
    "name",
    "model",
    "data",
    "cluster",
    "tracking",
    "overrides",
    "ignore",
    "steps",
    "description",
}
SECTION_KEYS = {
    section: {k[1] for k in (*SHORTHANDS, *LAUNCH_KEYS) if len(k) == 2 and k[0] == section}
    for section in ("model", "data", "cluster", "tracking")
}


@dataclass
class Experiment:
    source: Path
    algo: str | None = None
    preset: str | None = None
    settings: list[Setting] = field(default_factory=list)  # shorthand-derived, then `overrides:` mapping
    override_texts: list[tuple[str, str]] = field(default_factory=list)  # (`key=value`, file:line) from a list
    ignore: list[str] = field(default_factory=list)
    address: str | None = None
    tracking_uri: str | None = None


def load(path: str | os.PathLike[str]) -> Experiment:
    doc = load_file(path, what="experiment file")
    return from_doc(doc, Path(path))


def from_doc(doc: LoadedYaml, path: Path) -> Experiment:
    data: dict[str, Any] = doc.data
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(
                f"unknown key '{key}' in experiment file",
                where=doc.where((key,)),
                hint=(suggestion(str(key), TOP_KEYS) or f"allowed: {', '.join(sorted(TOP_KEYS))}")
                + "; verl keys go under `overrides:`",
            )
    exp = Experiment(source=path, algo=_str(doc, "algo"), preset=_str(doc, "preset"))
    if exp.algo and exp.preset:
        raise ConfigError(
            "set `algo` or `preset`, not both",
            where=doc.where(("preset",)),
            hint="`preset: FILE` may itself `extends:` an algorithm",
        )
    for section, allowed in SECTION_KEYS.items():
        value = data.get(section)
        if value is None:
            continue
        if section == "model" and isinstance(value, str):
            exp.settings.append(_shorthand(doc, ("model",), value))
            continue
        if not isinstance(value, dict):
            raise ConfigError(
                f"'{section}' must be a mapping",
                where=doc.where((section,)),
                hint=f"keys: {', '.join(sorted(allowed))}",
            )
        for key, v in value.items():
            if key not in allowed:
                raise ConfigError(
                    f"unknown key '{section}.{key}'",
                    where=doc.where((section, key)),
                    hint=(suggestion(str(key), allowed) or f"allowed: {', '.join(sorted(allowed))}")
                    + "; other verl keys go under `overrides:`",
                )
            if (section, key) == ("cluster", "address"):
                exp.address = str(v)
            elif (section, key) == ("tracking", "uri"):
                exp.tracking_uri = str(v)
            else:
                exp.settings.append(_shorthand(doc, (section, key), v))
    for key in ("name", "steps"):
        if data.get(key) is not None:
            exp.settings.append(_shorthand(doc, (key,), data[key]))
    overrides = data.get("overrides")
    if isinstance(overrides, list):
        for i, item in enumerate(overrides):
            if not isinstance(item, str):
                raise ConfigError(
                    "a list of overrides holds `key=value` strings",
                    where=doc.where(("overrides", i)),
                    hint="or write `overrides:` as a mapping",
                )
            exp.override_texts.append((item, doc.where(("overrides",))))
    else:
        exp.settings.extend(settings_from(doc, ("overrides",)))
    ignore = data.get("ignore") or []
    if not isinstance(ignore, list) or not all(isinstance(c, str) for c in ignore):
        raise ConfigError(
            "'ignore' must be a list of rule codes",
            where=doc.where(("ignore",)),
            hint="e.g. `ignore: [RLX421]`; `rlx rules` lists the codes",
        )
    exp.ignore = [c.upper() for c in ignore]
    return exp


def _str(doc: LoadedYaml, key: str) -> str | None:
    value = doc.data.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"'{key}' must be a string", where=doc.where((key,)))
    return value


def _shorthand(doc: LoadedYaml, kpath: tuple, value: Any) -> Setting:
    (target,) = SHORTHANDS[kpath]
    return Setting(
        key=target,
        value=value,
        reason=doc.comments.get(kpath, f"experiment `{'.'.join(kpath)}`"),
        where=doc.where(kpath),
    )
