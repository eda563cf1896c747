"""Run names: a run the user did not name is named after what it is, once, when it is launched.

verl's default `trainer.experiment_name` is `gsm8k` for every run, so every MLflow run, compare label and checkpoint
folder would read `gsm8k`. When no layer (preset, experiment file, `--name` or an override) sets it, `rlx train`
names the run `<algo>-<task or data stem>-<4 hex>`, e.g. `gspo-copy-3f9a`, and writes that into the config before
anything is created, so verl's `experiment_name`, the MLflow run name and every label read the same value.

The 4 hex digits are drawn at launch, never at resolve time: `rlx train --dry-run`, `rlx validate` and resolved
configs stay deterministic and show the stem with `RANDOM_MARK` in place of the suffix.
"""

from __future__ import annotations

import re
import secrets
from pathlib import PurePath
from typing import Any

from rlx.resolve.resolved import Provenance
from rlx.verl_keys import EXPERIMENT_NAME

SUFFIX_HEX = 4
RANDOM_MARK = "?" * SUFFIX_HEX
"""Stands for the suffix in a dry run: `gspo-gsm8k-????` (the digits are drawn at launch)."""

DRAWN = Provenance("rlx", "rlx at launch", "no name was given: <algo>-<task or data stem>-<4 hex>")

# File stems that say nothing about the data: the folder above names it (`~/data/gsm8k/train.parquet` -> gsm8k).
_GENERIC_STEMS = frozenset({"train", "training", "data", "dataset", "default", "all", "main", "full"})


def user_named(resolved: Any) -> bool:
    """True when a preset, an experiment file, `--name` or an override set `trainer.experiment_name`."""
    return resolved.source_of(EXPERIMENT_NAME).layer != "verl"


def data_stem(train_files: Any) -> str:
    """What the training data is called: the first file's stem, or its folder when the stem is generic."""
    first = train_files[0] if isinstance(train_files, (list, tuple)) and train_files else train_files
    if not isinstance(first, str) or not first.strip() or "${" in first:
        return "data"
    path = PurePath(first.strip().rstrip("/"))
    stem = path.name.split(".")[0]
    if (stem.lower() in _GENERIC_STEMS or stem.lower().startswith("train")) and path.parent.name not in ("", "~"):
        stem = path.parent.name
    return _slug(stem) or "data"


def name_stem(resolved: Any, task: str | None = None) -> str:
    """`<algo>-<task or data stem>`: the run name without its random suffix."""
    algo = resolved.algorithm.name if getattr(resolved, "algorithm", None) is not None else "verl"
    what = _slug(task) if task else data_stem(resolved.get("data.train_files"))
    return f"{_slug(algo) or 'verl'}-{what or 'data'}"


def planned_name(resolved: Any, task: str | None = None) -> tuple[str, bool]:
    """(name, drawn_at_launch) as a dry run shows it: the user's name, or the stem with `RANDOM_MARK`."""
    if user_named(resolved):
        return str(resolved.get(EXPERIMENT_NAME)), False
    return f"{name_stem(resolved, task)}-{RANDOM_MARK}", True


def name_run(resolved: Any, task: str | None = None, token: str | None = None) -> str | None:
    """Name an unnamed run in place (config and provenance); returns the drawn name, or None when the user named it.

    `token` replaces the random suffix (tests); otherwise it is `secrets.token_hex`.
    """
    if user_named(resolved):
        return None
    from rlx.resolve.apply import apply_override
    from rlx.resolve.overrides import parse, render_value

    name = f"{name_stem(resolved, task)}-{token or secrets.token_hex(SUFFIX_HEX // 2)}"
    (ov,) = parse([f"{EXPERIMENT_NAME}={render_value(name)}"])
    apply_override(resolved.config, ov, where="rlx run name")
    resolved.provenance[EXPERIMENT_NAME] = DRAWN
    return name


def _slug(text: str | None) -> str:
    """Letters, digits, `.`, `_` and `-` only (the name is also a folder and a label), at most 40 characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text or "").strip("-.")[:40]
