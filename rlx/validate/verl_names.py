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
from typing import cast

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


def _enum(tree: ast.Module) -> dict[str, str]:
    enum: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "AdvantageEstimator":
            for stmt in node.body:
                if (
                    isinstance(stmt, ast.Assign)
                    and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name)
                    and isinstance(stmt.value, ast.Constant)
                ):
                    enum[stmt.targets[0].id] = cast(str, stmt.value.value)  # AdvantageEstimator members are str
    return enum


def parse_registries(source: str) -> dict[str, list[str]]:
    """{"adv_estimator": [...], "policy_loss": [...]} registered in a core_algos source text."""
    tree = ast.parse(source)
    enum = _enum(tree)
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


def parse_group_relative(source: str) -> list[str]:
    """The estimators registered in a core_algos source whose function takes `index`: the prompt-group id.

    verl passes `index` (the batch's `uid`) only to estimators that compare a response with the other responses to
    the same prompt (grpo, rloo, opo, gpg, grpo_passk, the optimal-token baselines, ...). Such an estimator needs at
    least two responses per prompt; gae, reinforce_plus_plus and remax do not take it.
    """
    tree = ast.parse(source)
    enum = _enum(tree)
    out: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        args = {a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)}
        if "index" in args:
            out.update(_decorator_names(ast.Module(body=[node], type_ignores=[]), "register_adv_est", enum))
    return sorted(out)


def parse_reward_managers(sources: list[str]) -> list[str]:
    """Names registered with verl's reward-loop `register(...)` class decorator, under any local alias."""
    names: set[str] = set()
    for source in sources:
        tree = ast.parse(source)
        aliases = {"register"}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith(("registry", "reward_manager")):
                aliases.update(a.asname or a.name for a in node.names if a.name == "register")
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for dec in node.decorator_list:
                if (
                    isinstance(dec, ast.Call)
                    and isinstance(dec.func, ast.Name)
                    and dec.func.id in aliases
                    and dec.args
                    and isinstance(dec.args[0], ast.Constant)
                    and isinstance(dec.args[0].value, str)
                ):
                    names.add(dec.args[0].value)
    return sorted(names)


def parse_dataclass_keys(source: str, root: str) -> tuple[list[str], list[str]]:
    """(known dotted keys, free-form prefixes) of dataclass `root` in a source text, nested dataclasses expanded.

    A field typed with another dataclass of the same file (`Optional[FilterGroupsConfig]`) contributes that class's
    fields; a `dict[...]` field is free-form (any key below it is accepted).
    """
    tree = ast.parse(source)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    known: list[str] = []
    free: list[str] = []

    def walk(name: str, prefix: str, seen: frozenset[str]) -> None:
        for stmt in classes[name].body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            key = prefix + stmt.target.id
            known.append(key)
            annotation = ast.unparse(stmt.annotation)
            nested = [n.id for n in ast.walk(stmt.annotation) if isinstance(n, ast.Name) and n.id in classes]
            if nested and nested[0] not in seen:
                walk(nested[0], key + ".", seen | {nested[0]})
            elif annotation.startswith(("dict", "Dict")):
                free.append(key + ".")

    if root in classes:
        walk(root, "", frozenset({root}))
    return sorted(known), sorted(free)


def parse_reward_kwargs(sources: list[str]) -> list[str]:
    """Keys the reward managers read from `reward.reward_kwargs`: `...get("reward_kwargs", {}).get("X")` gives X,
    and an attribute read on a value named X (`self.overlong_buffer_cfg.len`) gives X.len."""
    top: set[str] = set()
    trees = [ast.parse(s) for s in sources]
    for tree in trees:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                inner = node.func.value
                if (
                    isinstance(inner, ast.Call)
                    and isinstance(inner.func, ast.Attribute)
                    and inner.func.attr == "get"
                    and inner.args
                    and isinstance(inner.args[0], ast.Constant)
                    and inner.args[0].value == "reward_kwargs"
                ):
                    top.add(node.args[0].value)
    keys = set(top)
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            base = node.value
            name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else None
            if name in top:
                keys.add(f"{name}.{node.attr}")
    return sorted(keys)


def _reward_manager_dir() -> Path:
    # verl/trainer/config -> verl/experimental/reward_loop/reward_manager: the registry main_ppo's
    # resolve_reward_manager_cls looks names up in (verl/trainer/ppo/reward.py).
    from rlx.resolve import verl_config_dir

    return verl_config_dir().parent.parent / "experimental" / "reward_loop" / "reward_manager"


def _algorithm_py() -> Path:
    # The v1 trainer keeps `algorithm` a plain DictConfig; AlgoConfig's fields are the keys verl's code reads there.
    from rlx.resolve import verl_config_dir

    return verl_config_dir() / "algorithm.py"


@functools.lru_cache(maxsize=1)
def verl_static_extras() -> dict[str, list[str]]:
    """{"group_relative", "reward_manager", "reward_kwargs", "algorithm", "algorithm_free": [...]}, parsed once per verl install and cached on disk."""
    core = _core_algos()
    files = sorted(p for p in _reward_manager_dir().glob("*.py") if p.name != "__init__.py")
    stamp = "-".join(f"{p.stat().st_size}.{p.stat().st_mtime_ns}" for p in (core, _algorithm_py(), *files))
    import hashlib

    cache = _cache_dir() / f"verl-extras-v1-{hashlib.sha1(stamp.encode()).hexdigest()[:16]}.json"
    try:
        return json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    texts = [p.read_text(encoding="utf-8") for p in files]
    algo_known, algo_free = parse_dataclass_keys(_algorithm_py().read_text(encoding="utf-8"), "AlgoConfig")
    result = {
        "group_relative": parse_group_relative(core.read_text(encoding="utf-8")),
        "reward_manager": parse_reward_managers(texts),
        "reward_kwargs": parse_reward_kwargs(texts),
        "algorithm": algo_known,
        "algorithm_free": algo_free,
    }
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
