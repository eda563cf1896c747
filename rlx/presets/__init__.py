"""Presets: an algorithm's verl settings as a short YAML file, each key citing its source in a comment.

A preset file:

    # GSPO: Group Sequence Policy Optimization (Qwen, arXiv 2507.18071).
    extends: grpo                       # optional: a built-in preset name or a path
    overrides:
      actor_rollout_ref.actor.policy_loss.loss_mode: gspo     # paper section 4: sequence-level ratio
      +algorithm.rlx.aspo.delta: -2.0                          # `+` adds a key verl's schema lacks

Keys are verl dotted paths in Hydra's override grammar (`+key` adds, `++key` forces, `~key` deletes). The comment
on a key's line is its citation; `rlx algos show` and provenance ("set by preset gspo: paper v2 section 5.1") use it.

Built-in presets ship inside the wheel (`rlx/presets/builtin/`, force-included from the repo's top-level
`presets/`); in an editable install they are read from the repo directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlx.errors import ConfigError
from rlx.yamlio import LoadedYaml, load_file

PRESET_KEYS = {"extends", "overrides", "algo", "description"}


def builtin_dir() -> Path:
    """Where the built-in preset YAML files are: inside the wheel, else the source checkout's `presets/`."""
    here = Path(__file__).resolve().parent
    packaged = here / "builtin"
    if packaged.is_dir():
        return packaged
    return here.parent.parent / "presets"


def spec_presets() -> dict[str, Path]:
    """Presets that algorithm specs carry themselves (`Algorithm.preset_file`: a third-party algorithm's preset)."""
    from rlx.algorithms import ALGORITHMS

    return {a.preset: Path(a.preset_file) for a in ALGORITHMS if a.preset_file}


def builtin_names(include_hidden: bool = False) -> list[str]:
    """Preset names `--algo`/`extends:` accept: rlx's own files and the presets of plugin algorithms."""
    names = sorted({p.stem for p in builtin_dir().glob("*.yaml")} | set(spec_presets()))
    return names if include_hidden else [n for n in names if not n.startswith("_")]


@dataclass
class Setting:
    """One key a preset sets: Hydra-grammar key (may carry +, ++ or ~), value, and the cited reason."""

    key: str
    value: Any
    reason: str
    where: str  # file:line

    @property
    def path(self) -> str:
        return self.key.lstrip("+~")


@dataclass
class Preset:
    """A preset with its `extends` chain resolved: `chain` is root-first, `settings` in application order."""

    name: str
    source: Path
    description: str
    chain: list[Preset] = field(default_factory=list)
    own: list[Setting] = field(default_factory=list)
    algo: str | None = None

    @property
    def settings(self) -> list[tuple[Preset, Setting]]:
        out: list[tuple[Preset, Setting]] = []
        for p in [*self.chain, self]:
            out.extend((p, s) for s in p.own)
        return out

    def effective(self) -> dict[str, tuple[Preset, Setting]]:
        """Final value per config path after the chain: the last setter wins."""
        out: dict[str, tuple[Preset, Setting]] = {}
        for p, s in self.settings:
            out[s.path] = (p, s)
        return out

    @property
    def lineage(self) -> str:
        return " <- ".join(p.name for p in [self, *reversed(self.chain)])


def is_path_like(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or "/" in ref or ref.startswith(".")


def resolve_ref(ref: str, relative_to: Path | None = None) -> Path:
    """A preset reference (built-in name or file path) as a file path."""
    if is_path_like(ref):
        p = Path(ref).expanduser()
        if not p.is_absolute() and relative_to is not None and not p.exists():
            p = relative_to / p
        return p
    path = builtin_dir() / f"{ref}.yaml"
    if not path.exists():
        path = spec_presets().get(ref, path)
    if not path.exists():
        from rlx.errors import suggestion

        hint = suggestion(ref, builtin_names(include_hidden=True))
        raise ConfigError(
            f"unknown preset '{ref}'",
            hint=(hint + " " if hint else "") + "`rlx presets ls` lists the built-in presets; a path must end in .yaml",
        )
    return path


def _header(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def load(ref: str, *, relative_to: Path | None = None, _seen: tuple[Path, ...] = ()) -> Preset:
    """Load a preset by built-in name or path, following `extends`."""
    path = resolve_ref(ref, relative_to)
    doc = load_file(path, what="preset")
    resolved = path.resolve()
    if resolved in _seen:
        cycle = " -> ".join(p.stem for p in (*_seen, resolved))
        raise ConfigError(f"preset 'extends' cycle: {cycle}", where=str(path), hint="remove one of the extends")
    return _from_doc(doc, path, name=str(ref), seen=(*_seen, resolved))


def _from_doc(doc: LoadedYaml, path: Path, name: str, seen: tuple[Path, ...]) -> Preset:
    data = doc.data
    unknown = sorted(set(data) - PRESET_KEYS)
    if unknown:
        from rlx.errors import suggestion

        key = unknown[0]
        raise ConfigError(
            f"unknown top-level key '{key}' in preset",
            where=doc.where((key,)),
            hint=(suggestion(key, PRESET_KEYS) or f"a preset has {sorted(PRESET_KEYS)}")
            + "; verl keys go under `overrides:`",
        )
    text = path.read_text(encoding="utf-8")
    preset = Preset(name=name, source=path, description=data.get("description") or _header(text), algo=data.get("algo"))
    parent = data.get("extends")
    if parent is not None:
        if not isinstance(parent, str):
            raise ConfigError("'extends' must be a preset name or a path", where=doc.where(("extends",)))
        base = load(parent, relative_to=path.parent, _seen=seen)
        preset.chain = [*base.chain, base]
        preset.algo = preset.algo or base.algo
    preset.own = settings_from(doc, ("overrides",))
    return preset


def settings_from(doc: LoadedYaml, at: tuple[str, ...]) -> list[Setting]:
    """The `key: value` settings of the mapping at `at` in a loaded YAML file, with their comments and lines."""
    node: Any = doc.data
    for part in at:
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return []
    if not isinstance(node, dict):
        raise ConfigError(
            f"'{'.'.join(at)}' must be a mapping of verl keys to values",
            where=doc.where(at),
            hint="write one `dotted.verl.key: value` per line",
        )
    out = []
    for key, value in node.items():
        kpath = (*at, key)
        if not isinstance(key, str) or not key.strip("+~"):
            raise ConfigError(f"invalid key {key!r}", where=doc.where(kpath), hint="keys are dotted verl config paths")
        if isinstance(value, dict):
            raise ConfigError(
                f"'{key}' is a nested mapping; write dotted keys instead",
                where=doc.where(kpath),
                hint=f"write `{key}.<subkey>: value` lines, one per leaf",
            )
        out.append(Setting(key=key, value=value, reason=doc.comments.get(kpath, ""), where=doc.where(kpath)))
    return out
