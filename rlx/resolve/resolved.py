"""A resolved config: the complete verl config, who set each non-default key (`Provenance`), what differs from
verl's defaults (`Change`), and the command a GPU cluster runs for it."""

from __future__ import annotations

import copy
import functools
import shlex
from dataclasses import dataclass, field
from typing import Any, cast

from rlx.algorithms import Algorithm
from rlx.errors import ConfigError
from rlx.presets import Preset
from rlx.resolve.defaults import verl_defaults, verl_defaults_container
from rlx.resolve.experiment import Experiment
from rlx.resolve.paths import ABSENT, flatten, leaf_paths, select

VERL_ENTRYPOINT = "verl.trainer.main_ppo"
RLX_ENTRYPOINT = "rlx.verl_entry"


@dataclass(frozen=True)
class Provenance:
    """Who set a key: the layer ("verl", "preset", "experiment", "cli"), a label, the reason and the location."""

    layer: str
    label: str  # e.g. "preset gspo", "experiment exp.yaml", "command line"
    reason: str = ""
    where: str = ""

    def describe(self) -> str:
        return f"set by {self.label}" + (f": {self.reason}" if self.reason else "")


VERL_DEFAULT = Provenance("verl", "verl default")


@dataclass(frozen=True)
class Change:
    key: str
    value: Any
    default: Any
    source: Provenance

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "value": self.value,
            "default": None if self.default is ABSENT else self.default,
            "source": self.source.label,
            "reason": self.source.reason,
            "where": self.source.where,
        }


@dataclass
class Resolved:
    """A complete verl config and where each non-default value came from."""

    config: Any  # omegaconf DictConfig
    provenance: dict[str, Provenance]
    algorithm: Algorithm | None = None
    preset: Preset | None = None
    experiment: Experiment | None = None
    overrides: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    config_name: str = "ppo_trainer"

    @functools.cached_property
    def default_leaves(self) -> dict[str, Any]:
        """verl's defaults as {dotted path: raw value} (interpolations unresolved)."""
        return flatten(verl_defaults_container(self.config_name))

    @property
    def defaults(self):
        """verl's defaults as a DictConfig (built on demand: diffs use `default_leaves`)."""
        return verl_defaults(self.config_name)

    # --- reading
    def get(self, path: str, default: Any = None) -> Any:
        value = select(self.config, path, ABSENT)
        return default if value is ABSENT else value

    def getter(self):
        """A `Getter` for algorithm constraints: absent keys read as `MISSING_VALUE`."""
        from rlx.algorithms.registry import MISSING_VALUE

        def get(path: str) -> Any:
            value = select(self.config, path, ABSENT)
            return MISSING_VALUE if value is ABSENT else value

        return get

    def source_of(self, path: str) -> Provenance:
        """Who set `path` (or the nearest parent that was set as a whole)."""
        probe = path
        while probe:
            if probe in self.provenance:
                return self.provenance[probe]
            probe = probe.rpartition(".")[0]
        return VERL_DEFAULT

    def changed(self) -> list[Change]:
        """Every leaf whose value differs from verl's default, in config order, with its provenance."""
        base = self.default_leaves
        final = leaf_paths(self.config)
        out = []
        for key, value in final.items():
            default = base.get(key, ABSENT)
            if default is ABSENT or default != value or type(default) is not type(value):
                out.append(Change(key, value, default, self.source_of(key)))
        for key, default in base.items():  # deleted keys
            if key not in final and not any(k.startswith(key + ".") for k in final):
                out.append(Change(key, ABSENT, default, self.source_of(key)))
        return out

    def container(self, resolve: bool = True) -> dict:
        """The whole config as plain Python. Node interpolations are resolved; `${oc.env:...}` and other resolver
        calls are left as text, so secrets in the environment are never materialised into outputs."""
        from omegaconf import OmegaConf

        if not resolve:
            return cast(dict, OmegaConf.to_container(self.config, resolve=False))
        cfg = copy.deepcopy(self.config)
        _escape_resolver_calls(cfg)
        try:
            return cast(dict, OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))
        except Exception as e:
            raise ConfigError(
                f"cannot resolve interpolation: {e}".splitlines()[0],
                hint="check the `${...}` references in your overrides",
            ) from None

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.container(), sort_keys=False, default_flow_style=False, width=120)

    # --- launching
    @property
    def entrypoint(self) -> str:
        return RLX_ENTRYPOINT if self.algorithm and self.algorithm.needs_rlx_entrypoint else VERL_ENTRYPOINT

    def override_list(self) -> list[str]:
        """The Hydra overrides that turn verl's defaults into this config (leaf by leaf)."""
        from rlx.resolve.overrides import render_value

        out = []
        for ch in self.changed():
            if ch.value is ABSENT:
                out.append(f"~{ch.key}")
            elif ch.default is ABSENT:
                out.append(f"+{ch.key}={render_value(ch.value)}")
            else:
                out.append(f"{ch.key}={render_value(ch.value)}")
        return out

    def command(self, python: str = "python3") -> list[str]:
        """The command a GPU cluster runs for this config."""
        return [python, "-m", self.entrypoint, *self.override_list()]

    def command_line(self, python: str = "python3") -> str:
        return shlex.join(self.command(python))


def _escape_resolver_calls(cfg) -> None:
    """Turn `${resolver:...}` strings into literal text in place (node interpolations stay live)."""
    from omegaconf import DictConfig, ListConfig

    def walk(node):
        items = (
            node.items_ex(resolve=False) if isinstance(node, DictConfig) else enumerate(node._iter_ex(resolve=False))
        )
        for key, value in list(items):
            if isinstance(value, (DictConfig, ListConfig)):
                walk(value)
            elif isinstance(value, str) and "${" in value and _has_resolver_call(value):
                node[key] = value.replace("${", "\\${")

    from omegaconf import open_dict

    with open_dict(cfg):
        walk(cfg)


# OmegaConf's built-in resolvers that only read the config itself; everything else (oc.env above all) stays text.
PURE_RESOLVERS = frozenset({"oc.select", "oc.dict.keys", "oc.dict.values", "oc.create", "oc.deprecated"})


def _has_resolver_call(text: str) -> bool:
    import re

    return any(name not in PURE_RESOLVERS for name in re.findall(r"\$\{\s*([A-Za-z_][\w.]*)\s*:", text))
