"""Safe YAML input: the only way rlx reads a YAML file.

reliability.md section 4 measured the traps this module closes:
- arbitrary tags (`!!python/object/apply`) run code under unsafe loaders: only a SafeLoader subclass is used;
- a 342-byte alias bomb makes OmegaConf abort the interpreter: anchors and aliases are refused;
- a 13 MB file takes a minute to parse and 50k nested brackets overflow the stack: bytes and depth are capped;
- PyYAML (YAML 1.1) reads `1e-6` as a string and keeps the last of duplicate keys: floats are read the way
  OmegaConf reads them, and duplicate keys are an error;
- every error names file:line:column.

Each mapping key's line is kept (`LoadedYaml.lines`), so provenance can say where a value was set, and the comment
on that line (`LoadedYaml.comments`), so presets can cite their sources in plain YAML comments.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlx.errors import ConfigError

MAX_BYTES = 1 << 20  # 1 MiB: presets and experiment files are a few KB; a full verl config is about 40 KB
MAX_DEPTH = 64
MAX_NODES = 200_000

# OmegaConf's float resolver: YAML 1.2 floats such as 1e-6 (PyYAML 1.1 reads them as strings).
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and duplicate keys, and records key lines."""

    def __init__(self, stream, source: str):
        super().__init__(stream)
        self.source = source
        self.key_lines: dict[tuple, int] = {}
        self._nodes = 0
        self._depth = 0

    # Aliases: refused at the event level, before any expansion can happen.
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                "YAML anchors and aliases are not allowed",
                event.start_mark,
                "write the value out in full; aliases can expand exponentially (billion laughs)",
                code="RLX005",
            )
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(
                f"more than {MAX_NODES} YAML nodes", self.peek_event().start_mark, "split the file", code="RLX006"
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    f"nesting deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,
                    "flatten the file",
                    code="RLX006",
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise _Refused("a mapping key must be a scalar", key_node.start_mark, "quote the key", code="RLX008")
            if key in seen:
                raise _Refused(
                    f"duplicate key '{key}' (first at line {seen[key].start_mark.line + 1})",
                    key_node.start_mark,
                    "remove one of them: YAML loaders disagree on which one wins",
                    code="RLX003",
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))
# Drop PyYAML's own float resolver for these first characters so ours is the one that matches.
for _ch, _resolvers in list(_Loader.yaml_implicit_resolvers.items()):
    _Loader.yaml_implicit_resolvers[_ch] = [
        (tag, rx) for tag, rx in _resolvers if not (tag == "tag:yaml.org,2002:float" and rx is not _FLOAT_RE)
    ]


class _Refused(Exception):
    def __init__(self, message: str, mark, hint: str, *, code: str):
        super().__init__(message)
        self.message, self.mark, self.hint, self.code = message, mark, hint, code


@dataclass
class LoadedYaml:
    """A parsed YAML document with the line and trailing comment of each mapping key (by key path)."""

    data: Any
    source: str
    lines: dict[tuple, int] = field(default_factory=dict)
    comments: dict[tuple, str] = field(default_factory=dict)

    def where(self, path: tuple) -> str:
        line = self.lines.get(tuple(path))
        return f"{self.source}:{line}" if line else self.source


def _where(source: str, mark) -> str:
    if mark is None:
        return source
    return f"{source}:{mark.line + 1}:{mark.column + 1}"


def _walk_key_lines(node, path: tuple, out: dict[tuple, int], ends: dict[tuple, tuple[int, int]], depth: int = 0):
    """Record each mapping key's line, and where its value ends (for trailing comments)."""
    if depth > MAX_DEPTH:
        raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", node.start_mark, "flatten the file", code="RLX006")
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]`: a list or mapping as a key
                raise _Refused("a mapping key must be a scalar", key_node.start_mark, "quote the key", code="RLX008")
            key_path = path + (key_node.value,)
            out[key_path] = key_node.start_mark.line + 1
            ends[key_path] = (value_node.end_mark.line + 1, value_node.end_mark.column)
            _walk_key_lines(value_node, key_path, out, ends, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk_key_lines(item, path + (i,), out, ends, depth + 1)


_COMMENT_RE = re.compile(r"^\s*#\s?(.*)$")


def _comments(text: str, lines: dict[tuple, int], ends: dict[tuple, tuple[int, int]]) -> dict[tuple, str]:
    """The comment that explains each key: a trailing `# ...` after its value, else the comment block just above."""
    src = text.splitlines()
    out: dict[tuple, str] = {}
    for path, line in lines.items():
        if not 1 <= line <= len(src):
            continue
        end_line, end_col = ends.get(path, (0, 0))
        if end_line == line:
            m = _COMMENT_RE.match(src[line - 1][end_col:])
            if m:
                out[path] = m.group(1).strip()
                continue
        block: list[str] = []
        i = line - 2
        while i >= 0 and src[i].lstrip().startswith("#"):
            block.insert(0, src[i].lstrip()[1:].strip())
            i -= 1
        if block and i >= 0 and src[i].strip():  # a block directly above, not the file's header comment
            out[path] = " ".join(block)
    return out


def _syntax_code(problem: str) -> str:
    """RLX004 for a tag the safe loader has no constructor for (`!!python/object/apply`), else RLX001 (syntax)."""
    return "RLX004" if "tag" in problem or "could not determine a constructor" in problem else "RLX001"


def loads(text: str | bytes, source: str = "<string>") -> LoadedYaml:
    """Parse YAML text safely. Raises ConfigError with file:line:column on any problem."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise ConfigError(
                f"{source} is {len(text):,} bytes, over the {MAX_BYTES:,}-byte limit for config files",
                where=source,
                hint="a preset or experiment file is a few KB; pass large data by path, not inline",
                code="RLX006",
            )
        if b"\x00" in text:
            raise ConfigError(
                f"{source} is a binary file, not YAML", where=source, hint="pass a YAML text file", code="RLX006"
            )
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(
                f"{source} is not valid UTF-8 (byte {e.start})",
                where=source,
                hint="save the file as UTF-8",
                code="RLX006",
            ) from None
    if len(text) > MAX_BYTES:
        raise ConfigError(
            f"{source} is over the {MAX_BYTES:,}-byte limit for config files",
            where=source,
            hint="a preset or experiment file is a few KB; pass large data by path, not inline",
            code="RLX006",
        )
    loader = _Loader(text, source)
    try:
        node = loader.get_single_node()
        if node is None:
            return LoadedYaml(data=None, source=source)
        lines: dict[tuple, int] = {}
        ends: dict[tuple, tuple[int, int]] = {}
        _walk_key_lines(node, (), lines, ends)
        data = loader.construct_document(node)
    except _Refused as e:
        raise ConfigError(e.message, where=_where(source, e.mark), hint=e.hint, code=e.code) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        what = (e.problem or e.context or "invalid YAML").strip()
        hint = "check the indentation and quoting on that line"
        if isinstance(e, yaml.constructor.ConstructorError):
            hint = "only plain YAML is accepted: remove the '!' tag"
        raise ConfigError(
            f"invalid YAML: {what}", where=_where(source, mark), hint=hint, code=_syntax_code(what)
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(
            f"invalid YAML: {e}", where=source, hint="check the file's syntax", code=_syntax_code(str(e))
        ) from None
    except RecursionError:
        raise ConfigError(
            "YAML nested too deeply",
            where=source,
            hint=f"config files are at most {MAX_DEPTH} levels deep",
            code="RLX006",
        ) from None
    finally:
        loader.dispose()
    return LoadedYaml(data=data, source=source, lines=lines, comments=_comments(text, lines, ends))


def load_file(path: str | os.PathLike[str], *, mapping: bool = True, what: str = "config file") -> LoadedYaml:
    """Read and parse a YAML file. With `mapping`, the top level must be a mapping."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(
            f"{what} not found: {p}",
            where=str(p),
            hint="check the path (relative paths are from the current directory)",
            code="RLX007",
        )
    if p.is_dir():
        raise ConfigError(f"{what} is a directory: {p}", where=str(p), hint="pass a .yaml file", code="RLX007")
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise ConfigError(
            f"{p} is {size:,} bytes, over the {MAX_BYTES:,}-byte limit for config files",
            where=str(p),
            hint="a preset or experiment file is a few KB; pass large data by path, not inline",
            code="RLX006",
        )
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"cannot read {p}: {e.strerror}", where=str(p), hint="check the file's permissions", code="RLX007"
        ) from None
    doc = loads(raw, source=str(path))
    if mapping and not isinstance(doc.data, dict):
        kind = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise ConfigError(
            f"the top level of {path} must be a mapping (key: value), but it is {kind}",
            where=f"{path}:1:1",
            hint="write the settings as `key: value` lines",
            code="RLX002",
        )
    return doc
