"""What every check reads: the resolved config, its provenance, verl's defaults, and the algorithms that apply."""

from __future__ import annotations

import builtins
import functools
from typing import Any

from rlx.algorithms.registry import MISSING_VALUE, Algorithm
from rlx.validate.rules import Finding


class Context:
    """A read-only view of one resolved config for the checks.

    `get(path)` returns the (interpolation-resolved) value or `MISSING_VALUE`; `user_set(path)` says whether a
    preset, experiment file, command line or file set it (as opposed to verl's default); `source(path)` names who.
    """

    def __init__(
        self,
        resolved,
        *,
        algorithms: list[Algorithm] | None = None,
        inferred: bool = False,
        added: set[str] | None = None,
    ):
        self.resolved = resolved
        self._getter = resolved.getter()
        self._cache: dict[str, Any] = {}
        self.algorithms = list(algorithms or ([resolved.algorithm] if resolved.algorithm else []))
        self.inferred = inferred  # algorithms guessed from adv_estimator/loss_mode (no preset named one)
        self._added = added

    # --- values
    def get(self, path: str) -> Any:
        """The value at `path` (interpolations resolved) or `MISSING_VALUE`; memoised, the config is read-only here."""
        try:
            return self._cache[path]
        except KeyError:
            value = self._cache[path] = self._getter(path)
            return value

    def value(self, path: str, default: Any = None) -> Any:
        v = self.get(path)
        return default if v is MISSING_VALUE else v

    def num(self, path: str) -> float | None:
        """The value as a number, or None when absent, null or not a number (RLX103 reports wrong types)."""
        v = self.get(path)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        return v

    def int(self, path: str) -> int | None:
        v = self.num(path)
        return int(v) if v is not None and float(v).is_integer() else None

    def flag(self, path: str) -> bool:
        return self.get(path) is True

    def has(self, path: str) -> bool:
        return self.get(path) is not MISSING_VALUE

    # --- provenance
    @functools.cached_property
    def _base_paths(self) -> set[str]:
        """Paths a preset or experiment file set: with verl's defaults, the config the command line starts from."""
        out: set[str] = set()
        preset = getattr(self.resolved, "preset", None)
        if preset is not None:
            out.update(s.path for _, s in preset.settings)
        exp = getattr(self.resolved, "experiment", None)
        if exp is not None:
            out.update(s.key.lstrip("+~") for s in exp.settings)
            out.update(t.partition("=")[0].strip().lstrip("+~") for t, _ in exp.override_texts)
        return out

    def in_base(self, path: str) -> bool:
        """Whether `path` exists before the command line's overrides (verl's defaults, a preset, an experiment file or
        a verl config file): an override of it takes no `+`, and one of a path that does not needs `+`."""
        if path in self.default_nodes:
            return True
        if not self.has(path):
            return False
        if self.resolved.source_of(path).layer != "cli":
            return True
        return any(path == k or path.startswith(k + ".") for k in self._base_paths)

    def user_set(self, path: str) -> bool:
        return self.resolved.source_of(path).layer != "verl"

    def source(self, path: str) -> str:
        prov = self.resolved.source_of(path)
        text = prov.label if prov.layer != "verl" else "verl default"
        if not prov.where or prov.layer not in ("preset", "experiment", "file"):
            return text
        return f"{text} ({_relative(prov.where)})"

    # --- derived facts verl computes the same way
    @functools.cached_property
    def n_gpus(self) -> builtins.int | None:  # `int` here is the method above
        per, nodes = self.int("trainer.n_gpus_per_node"), self.int("trainer.nnodes")
        return per * nodes if per is not None and nodes is not None else None

    @functools.cached_property
    def uses_critic(self) -> bool:
        """verl's need_critic: critic.enable when set, else on only for adv_estimator=gae."""
        enable = self.get("critic.enable")
        if enable is None or enable is MISSING_VALUE:
            return self.get("algorithm.adv_estimator") == "gae"
        return bool(enable)

    @functools.cached_property
    def uses_ref(self) -> bool:
        """verl's need_reference_policy: KL in the reward or in the loss."""
        return self.flag("algorithm.use_kl_in_reward") or self.flag("actor_rollout_ref.actor.use_kl_loss")

    @functools.cached_property
    def leaves(self) -> dict[str, Any]:
        """The config as {dotted path: raw value} (interpolations unresolved)."""
        from rlx.resolve import leaf_paths

        return leaf_paths(self.resolved.config)

    @functools.cached_property
    def changed(self) -> list:
        return self.resolved.changed()

    @functools.cached_property
    def added(self) -> set[str]:
        """Leaf paths verl's schema lacks: added with `+key=`, or present in a verl config file."""
        if self._added is not None:
            return self._added
        return {ch.key for ch in self.changed if type(ch.default).__name__ == "_Absent"}

    @property
    def defaults(self) -> dict[str, Any]:
        """verl's defaults as {dotted path: raw value}."""
        return self.resolved.default_leaves

    @functools.cached_property
    def default_nodes(self) -> set[str]:
        """Every path in verl's defaults that is a leaf or a section."""
        out: set[str] = set()
        for key in self.defaults:
            parts = key.split(".")
            out.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        return out

    def finding(self, path: str, message: str, hint: str = "", **kw: Any) -> Finding:
        return Finding(path, message, hint, **kw)


def _relative(where: str) -> str:
    """`/repo/presets/gspo.yaml:7` as `presets/gspo.yaml:7` when under the current directory (GitHub annotations
    want repository-relative paths)."""
    import os

    path, sep, line = where.partition(":")
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return where
    return (rel if not rel.startswith("..") else path) + sep + line
