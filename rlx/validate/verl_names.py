"""The names verl 0.9.1 registers, read statically from its source (no `import verl`, which costs ~3 s).

`@register_adv_est(AdvantageEstimator.GRPO)` / `@register_adv_est("grpo")` and `@register_policy_loss("gspo")` in
`verl/trainer/ppo/core_algos.py` are parsed with `ast`; enum members are mapped through the `AdvantageEstimator`
class. The result is cached per file (path, size, mtime) under rlx's cache folder. A contract test checks the result
equals verl's real registries after import.
"""

from __future__ import annotations

import ast
import functools
import json
from pathlib import Path

# Values verl accepts that are not decorator registrations (core_algos.kl_penalty; `+` suffix = straight-through).
KL_TYPES = ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3", "full")
ROLLOUT_NAMES = ("vllm", "sglang", "trtllm")  # verl.workers.rollout.base._ROLLOUT_REGISTRY


def _cache_dir() -> Path:
    import os

    base = os.environ.get("RLX_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "rlx"
    return Path(base)


def _core_algos() -> Path:
    from rlx.resolve import verl_config_dir

    return verl_config_dir().parent / "ppo" / "core_algos.py"


def _decorator_names(tree: ast.Module, decorator: str, enum: dict[str, str]) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for dec in node.decorator_list:
            if not (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Name) and dec.func.id == decorator):
                continue
            if not dec.args:
                continue
            arg = dec.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.append(arg.value)
            elif isinstance(arg, ast.Attribute) and arg.attr in enum:
                names.append(enum[arg.attr])
    return names


def parse_registries(source: str) -> dict[str, list[str]]:
    """{"adv_estimator": [...], "policy_loss": [...]} registered in a core_algos source text."""
    tree = ast.parse(source)
    enum: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "AdvantageEstimator":
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                        and isinstance(stmt.value, ast.Constant)):
                    enum[stmt.targets[0].id] = stmt.value.value
    return {
        "adv_estimator": sorted(set(_decorator_names(tree, "register_adv_est", enum))),
        "policy_loss": sorted(set(_decorator_names(tree, "register_policy_loss", enum))),
    }


@functools.lru_cache(maxsize=1)
def verl_registries() -> dict[str, list[str]]:
    """verl's registered estimator and loss names, parsed once per verl install and cached on disk."""
    src = _core_algos()
    st = src.stat()
    cache = _cache_dir() / f"verl-names-{st.st_size}-{st.st_mtime_ns}.json"
    try:
        return json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    result = parse_registries(src.read_text(encoding="utf-8"))
    try:
        from rlx.fsutil import atomic_write_text

        atomic_write_text(cache, json.dumps(result))
    except Exception:  # noqa: BLE001 - the cache is an optimisation; a read-only home must not fail validation
        pass
    return result


def rlx_plugin_names() -> dict[str, list[str]]:
    """Names rlx's verl plugin registers, from the algorithm registry's `plugin_names`."""
    from rlx.algorithms import ALGORITHMS

    out: dict[str, list[str]] = {"adv_estimator": [], "policy_loss": []}
    for algo in ALGORITHMS:
        for kind, name in algo.plugin_names.items():
            if name not in out[kind]:
                out[kind].append(name)
    return out


def known(kind: str) -> list[str]:
    """verl's names plus rlx's plugin names, for `kind` in ("adv_estimator", "policy_loss")."""
    return sorted({*verl_registries()[kind], *rlx_plugin_names()[kind]})
