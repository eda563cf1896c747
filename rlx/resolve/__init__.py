"""Resolution: preset + experiment file + overrides -> a complete verl 0.9.1 config, with provenance.

Layers, later wins (design.md "Layers of a resolved config"):
1. verl's packaged `ppo_trainer` config, composed with Hydra's compose API from the installed package's config folder
   (`initialize_config_dir`: verl itself is never imported, which would cost ~5 s);
2. the algorithm preset and the presets it extends;
3. the user's experiment file;
4. `key=value` overrides in verl's own Hydra grammar (`+key=`, `++key=`, `~key`).

Every key that differs from verl's default records which layer set it and why (`Provenance`).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from rlx.algorithms import ALGORITHMS, Algorithm
from rlx.errors import ConfigError, UsageError, did_you_mean
from rlx.presets import Preset
from rlx.presets import load as load_preset
from rlx.resolve.experiment import Experiment
from rlx.resolve.experiment import load as load_experiment
from rlx.resolve.overrides import Op, Override
from rlx.resolve.overrides import parse as parse_overrides

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
            "default": None if self.default is _ABSENT else self.default,
            "source": self.source.label,
            "reason": self.source.reason,
            "where": self.source.where,
        }


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()


def verl_config_dir() -> Path:
    """verl's packaged Hydra config folder, found without importing verl."""
    spec = importlib.util.find_spec("verl")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "verl is not installed in this Python environment",
            hint="run scripts/setup.sh (it installs verl==0.9.1), or `pip install verl==0.9.1`",
            exit_code=3,
        )
    return Path(spec.origin).parent / "trainer" / "config"


def compose_verl(config_name: str = "ppo_trainer") -> dict:
    """Compose verl's packaged config with Hydra (no verl import) and return it as a plain container.

    Interpolations stay unresolved and `???` stays MISSING, so `OmegaConf.create` of the result is the composed config.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(verl_config_dir()), version_base=None):
            cfg = compose(config_name=config_name)
    finally:
        GlobalHydra.instance().clear()
    return cast(dict, OmegaConf.to_container(cfg, resolve=False))


def _fingerprint(config_dir: Path) -> str:
    """Changes whenever any file of verl's config folder changes (path, size, mtime)."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(config_dir.rglob("*.yaml")):
        st = p.stat()
        h.update(f"{p.relative_to(config_dir)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    return Path(
        os.environ.get("RLX_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "rlx"
    )


@functools.lru_cache(maxsize=4)
def _defaults_json(config_name: str) -> str:
    """verl's composed defaults as JSON text, from a cache keyed by the config folder's fingerprint.

    Composing takes 0.3-1 s (Hydra's import and search path); reading the cache takes ~10 ms. The cache is only an
    optimisation: any problem reading or writing it falls back to composing.
    """
    import json

    config_dir = verl_config_dir()
    path = cache_dir() / f"verl-{config_name}-{_fingerprint(config_dir)}.json"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    text = json.dumps(compose_verl(config_name))
    try:
        from rlx.fsutil import atomic_write_text

        atomic_write_text(path, text)
    except Exception:  # noqa: BLE001 - a read-only home must not break resolution
        pass
    return text


def verl_defaults_container(config_name: str = "ppo_trainer") -> dict:
    """verl's composed default config as a fresh plain dict (interpolations unresolved)."""
    import json

    return json.loads(_defaults_json(config_name))


def verl_defaults(config_name: str = "ppo_trainer"):
    """A fresh copy of verl's composed default config (a struct-mode DictConfig)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(verl_defaults_container(config_name))
    OmegaConf.set_struct(cfg, True)
    return cfg


# ---- reading and writing config paths ---------------------------------------------------------------------------


def has_key(cfg, path: str) -> bool:
    from omegaconf import DictConfig, ListConfig

    node = cfg
    for part in path.split("."):
        if isinstance(node, DictConfig):
            if part not in node.keys():  # `in node` is False for a `???` (MISSING) value
                return False
            node = node._get_node(part)
        elif isinstance(node, ListConfig) and part.lstrip("-").isdigit():
            if int(part) >= len(node):
                return False
            node = node._get_node(int(part))
        else:
            return False
    return True


def select(cfg, path: str, default: Any = _ABSENT) -> Any:
    """The value at `path`, with interpolations resolved where they can be; `default` if absent."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not has_key(cfg, path):
        return default
    try:
        value = OmegaConf.select(cfg, path, throw_on_missing=False, throw_on_resolution_failure=False)
    except OmegaConfBaseException:
        value = OmegaConf.select(cfg, path, throw_on_resolution_failure=False)
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=False)
    return value


def leaf_paths(cfg, prefix: str = "") -> dict[str, Any]:
    """Flat {dotted path: raw value} of every leaf, interpolations left unresolved. Empty containers are leaves."""
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else cfg
    return flatten(container, prefix)


def flatten(container: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(container, dict) and container:
        for k, v in container.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = container
    return out


# Sections verl turns into strict dataclasses, and the free-form maps inside them that accept new keys.
_STRICT_ROOTS = ("actor_rollout_ref.", "critic.")
_FREE_MAPS = (
    "actor_rollout_ref.model.override_config.",
    "actor_rollout_ref.rollout.engine_kwargs.",
    "critic.model.override_config.",
)


def _unknown_key_error(cfg, path: str, text: str, where: str, *, op: str = "") -> ConfigError:
    from rlx.verl_moves import new_home

    value = text.partition("=")[2] if "=" in text else ""
    kind, home = new_home(path, lambda p: has_key(cfg, p))
    message = f"unknown config key '{path}' (not in verl {_verl_version()}'s ppo_trainer config)"
    if op == "~":
        hint = "there is nothing to delete: remove the override"
    elif kind == "moved":
        return ConfigError(
            message + f": verl {_verl_version()} moved it to {home}",
            where=where or text,
            hint=f"write `{home}={value}` instead" if value else f"use {home} instead",
            code="RLX102",
        )
    elif kind == "removed":
        return ConfigError(
            message + f": verl {_verl_version()} removed it",
            where=where or text,
            hint=f"delete the override: {home}",
            code="RLX102",
        )
    else:
        hint = ""
    parts = path.split(".")
    # The deepest existing parent, and the closest key there.
    parent_path, depth = "", 0
    for part in parts:
        probe = f"{parent_path}.{part}" if parent_path else part
        if not has_key(cfg, probe):
            break
        parent_path, depth = probe, depth + 1
    i = min(depth, len(parts) - 1)
    parent = select(cfg, parent_path) if parent_path else None
    siblings = list(parent) if isinstance(parent, dict) else (list(cfg) if not parent_path else [])
    close = did_you_mean(parts[i], siblings) if siblings else []
    fixed = ".".join([*parts[:i], close[0], *parts[i + 1 :]]) if close else None
    free = path.startswith(_FREE_MAPS) or not path.startswith(_STRICT_ROOTS)
    if (fixed is None or not has_key(cfg, fixed)) and not (free and parent_path and depth == len(parts) - 1):
        # Never the key's own parent section (`engine_kwargs.sglang` for `engine_kwargs.sglang.attention_backend`).
        leaves = [k for k in leaf_paths(cfg) if not path.startswith(k + ".")]
        full = did_you_mean(path, leaves, n=1, cutoff=0.75)
        fixed = full[0] if full else fixed
    if fixed:
        # With the value, the suggestion is an override the user can paste (and the hint round trip applies).
        mean = f"did you mean `{fixed}={value}`?" if value and has_key(cfg, fixed) else f"did you mean '{fixed}'?"
        hint = f"{hint}; {mean}" if hint else mean
    if op != "~":
        if not free:
            add = (
                f"{parts[0]}.* is turned into verl dataclasses, which refuse keys they lack: `+{path}` would fail "
                "inside the job"
            )
        else:
            # In a free-form map the key is the user's own (engine kwargs): `+` with the value is the fix.
            shown = value if path.startswith(_FREE_MAPS) else "VALUE"
            add = f"To add a key verl's schema lacks, write `+{path}={shown}`"
        hint = (hint + " " if hint else "") + add
    return ConfigError(message, where=where or text, hint=hint, code="RLX102")


def _verl_version() -> str:
    from rlx import VERL_VERSION

    return VERL_VERSION


def _opened(cfg):
    """`open_dict(cfg)`, or nothing when the struct flag is already off.

    Toggling the flag invalidates OmegaConf's flag cache over the whole tree, so doing it once per override made
    resolving an experiment file with 20,000 overrides quadratic (about a minute); `resolve` opens the tree once.
    """
    from contextlib import nullcontext

    from omegaconf import OmegaConf, open_dict

    return open_dict(cfg) if OmegaConf.is_struct(cfg) else nullcontext()


def apply_override(cfg, ov: Override, where: str = "") -> None:
    """Apply one override in Hydra's semantics, with rlx's error messages."""
    from omegaconf import OmegaConf

    exists = has_key(cfg, ov.path)
    loc = where or f"override '{ov.text}'"
    if ov.op is Op.SET and not exists:
        raise _unknown_key_error(cfg, ov.path, ov.text, loc)
    if ov.op is Op.ADD and exists:
        raise ConfigError(
            f"'+{ov.path}' adds a key that already exists",
            where=loc,
            hint=f"drop the `+`: `{ov.path}={ov.render().split('=', 1)[1]}` (or `++` to force)",
            code="RLX108",
        )
    if ov.op is Op.DELETE:
        if not exists:
            raise ConfigError(
                f"'~{ov.path}' deletes a key that does not exist",
                where=loc,
                hint=_unknown_key_error(cfg, ov.path, ov.text, loc, op="~").hint,
                code="RLX108",
            )
        parent_path, _, leaf = ov.path.rpartition(".")
        parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
        with _opened(cfg):
            del parent[leaf]
        return
    with _opened(cfg):
        try:
            try:
                # The root is open, so the plain update adds keys; `force_add` would toggle the struct flag of the
                # parent (and so invalidate its whole subtree's flag cache) on every call.
                OmegaConf.update(cfg, ov.path, ov.value, merge=False)
            except Exception:  # a node below the root that is closed on its own: force it, as Hydra's `+` does
                OmegaConf.update(cfg, ov.path, ov.value, merge=False, force_add=True)
        except Exception as e:  # omegaconf's ValidationError and friends: a value that cannot go there
            raise ConfigError(
                f"cannot set '{ov.path}': {e}".splitlines()[0],
                where=loc,
                hint="check the value's type against verl's default",
                code="RLX103",
            ) from None


# ---- the resolved config ----------------------------------------------------------------------------------------


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
        value = select(self.config, path, _ABSENT)
        return default if value is _ABSENT else value

    def getter(self):
        """A `Getter` for algorithm constraints: absent keys read as `MISSING_VALUE`."""
        from rlx.algorithms.registry import MISSING_VALUE

        def get(path: str) -> Any:
            value = select(self.config, path, _ABSENT)
            return MISSING_VALUE if value is _ABSENT else value

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
            default = base.get(key, _ABSENT)
            if default is _ABSENT or default != value or type(default) is not type(value):
                out.append(Change(key, value, default, self.source_of(key)))
        for key, default in base.items():  # deleted keys
            if key not in final and not any(k.startswith(key + ".") for k in final):
                out.append(Change(key, _ABSENT, default, self.source_of(key)))
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
            if ch.value is _ABSENT:
                out.append(f"~{ch.key}")
            elif ch.default is _ABSENT:
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


# ---- the entry point --------------------------------------------------------------------------------------------


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
        if base.get(key, _ABSENT) != value:
            line_key = tuple(key.split("."))
            prov[key] = Provenance("file", f"file {Path(path).name}", "", doc.where(line_key))
    return Resolved(config=cfg, provenance=prov, config_name=config_name)
