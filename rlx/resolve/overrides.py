"""Hydra override grammar, both ways: parse `key=value` strings as verl's CLI would, and render values back.

Parsing uses Hydra's own `OverridesParser`, so what rlx accepts is exactly what `python -m verl.trainer.main_ppo`
accepts. Rendering is the inverse, used to print and submit the launch command; tests round-trip every value type.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from rlx.errors import ConfigError


class Op(str, Enum):
    SET = ""  # key=value: the key must exist
    ADD = "+"  # +key=value: the key must not exist
    FORCE = "++"  # ++key=value: set or add
    DELETE = "~"  # ~key or ~key=value


@dataclass(frozen=True)
class Override:
    """One parsed override: an operation on a dotted path, with a typed value."""

    op: Op
    path: str
    value: Any = None
    text: str = ""  # as the user wrote it

    @classmethod
    def from_setting(cls, key: str, value: Any, text: str | None = None) -> Override:
        """From a YAML `key: value` pair whose key may carry Hydra's `+`, `++` or `~` prefix."""
        if key.startswith("++"):
            op, path = Op.FORCE, key[2:]
        elif key.startswith("+"):
            op, path = Op.ADD, key[1:]
        elif key.startswith("~"):
            op, path = Op.DELETE, key[1:]
        else:
            op, path = Op.SET, key
        return cls(op, path, value, text if text is not None else f"{key}={render_value(value)}")

    def render(self) -> str:
        if self.op is Op.DELETE:
            return f"~{self.path}"
        return f"{self.op.value}{self.path}={render_value(self.value)}"


_parser = None


def _get_parser():
    global _parser
    if _parser is None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        _parser = OverridesParser.create()
    return _parser


def _hint_for(text: str) -> str:
    key, _, value = text.partition("=")
    if not _:
        if text.startswith("~"):
            return f"write `{text}` with a key path after `~`, e.g. `~trainer.val_before_train`"
        return f"write `key=value`, e.g. `{text}=VALUE`, or `~{text}` to delete the key"
    if not key.strip("+~"):
        return "the key before `=` is empty: write `SECTION.KEY=VALUE`"
    if " " in key:
        return "keys cannot contain spaces"
    if "[" in key:
        return "index lists in the value instead: `key=[a,b]`"
    if "," in value and not value.startswith(("[", "{", "'", '"')):
        return f"a comma makes a Hydra sweep: write a list `{key}=[{value}]` or quote it `{key}='{value}'`"
    if any(c in value for c in "=$`;()&|<>\\'\" "):
        return f"quote the value: {key}='{value}'"
    return "see Hydra's override grammar: https://hydra.cc/docs/advanced/override_grammar/basic/"


# The common shape `key=word` or `key=123`, which Hydra reads as a plain str or int. Hydra's ANTLR parser costs about
# 0.8 ms an override; an experiment file with 20,000 of them would spend 16 s there. Everything else (quotes, lists,
# floats, interpolations, bools, null, nan/inf, `_` digit separators, `~`) goes to Hydra.
# tests/unit/test_overrides.py checks this against Hydra's own parse.
_SIMPLE = re.compile(
    r"(?P<op>\+\+|\+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)="
    r"(?:(?P<int>[-+]?(?:0|[1-9][0-9]*))|(?P<word>[A-Za-z_][A-Za-z0-9_\-]*))"
)
_HYDRA_WORDS = {"true", "false", "null", "nan", "inf"}  # Hydra reads these case-insensitively as bool/None/float


def _fast(text: str) -> Override | None:
    """`text` parsed without Hydra when its shape is one whose value Hydra reads as a plain int or str."""
    m = _SIMPLE.fullmatch(text)
    if m is None:
        return None
    op = Op.FORCE if m["op"] == "++" else Op.ADD if m["op"] == "+" else Op.SET
    if m["int"] is not None:
        return Override(op, m["key"], int(m["int"]), text)
    if m["word"].lower() in _HYDRA_WORDS:
        return None
    return Override(op, m["key"], m["word"], text)


def parse(texts: list[str]) -> list[Override]:
    """Parse command-line overrides. Every bad one is reported with its own text and a fix."""
    if not texts:
        return []  # importing Hydra's parser costs ~0.35 s: `rlx validate config --algo X` has no overrides
    out: list[Override] = []
    rest = []
    for i, text in enumerate(texts):
        fast = _fast(text)
        if fast is None:
            rest.append(i)
        out.append(fast)  # type: ignore[arg-type]  # filled in below
    if rest:
        for i, ov in zip(rest, _parse_hydra([texts[i] for i in rest]), strict=True):
            out[i] = ov
    return out


def _parse_hydra(texts: list[str]) -> list[Override]:
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    parser = _get_parser()
    out: list[Override] = []
    for text in texts:
        if not text.partition("=")[0].strip("+~ "):
            raise ConfigError(
                f"invalid override '{text}': the key is empty",
                where=f"override '{text}'",
                hint=_hint_for(text),
                code="RLX101",
            )
        try:
            (ov,) = parser.parse_overrides([text])
        except HydraException as e:
            msg = str(e).splitlines()[0] if str(e) else "syntax error"
            raise ConfigError(
                f"invalid override '{text}': {msg}", where=f"override '{text}'", hint=_hint_for(text), code="RLX101"
            ) from None
        if ov.is_sweep_override():
            raise ConfigError(
                f"invalid override '{text}': the value is a Hydra sweep, and rlx launches one run",
                where=f"override '{text}'",
                hint=_hint_for(text),
                code="RLX101",
            )
        if ov.package is not None or "/" in ov.key_or_group:
            raise ConfigError(
                f"config-group override '{text}' is not supported",
                where=f"override '{text}'",
                hint="set the individual keys instead, e.g. `actor_rollout_ref.actor.strategy=fsdp2`",
                code="RLX101",
            )
        op = {
            OverrideType.CHANGE: Op.SET,
            OverrideType.ADD: Op.ADD,
            OverrideType.FORCE_ADD: Op.FORCE,
            OverrideType.DEL: Op.DELETE,
        }[ov.type]
        value = None if op is Op.DELETE and ov._value is None else ov.value()
        if op is not Op.DELETE and value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
            raise ConfigError(
                f"invalid override '{text}': unsupported value",
                where=f"override '{text}'",
                hint=_hint_for(text),
                code="RLX101",
            )
        out.append(Override(op, ov.key_or_group, _plain(value), text))
    return out


def _plain(value: Any) -> Any:
    """Hydra's parsed values are plain Python already, except for nested containers of its own types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_BARE = re.compile(r"^[A-Za-z_/][A-Za-z0-9_\-./@:]*$")
_RESERVED = {"true", "false", "null", "nan", "inf", "-inf", "+inf"}


def render_value(value: Any) -> str:
    """A Python value as Hydra override text that parses back to the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if ("." in text or "e" in text or "inf" in text) else text + ".0"
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}") and value.count("${") == 1:
            return value
        if _BARE.match(value) and value.lower() not in _RESERVED and "://" not in value:
            return value
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(render_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_render_key(k)}:{render_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot render {type(value).__name__} as a Hydra value")


def _render_key(key: Any) -> str:
    key = str(key)
    if _BARE.match(key):
        return key
    raise TypeError(f"dict key {key!r} cannot be written in Hydra's grammar")
