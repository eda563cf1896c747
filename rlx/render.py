"""Output helpers shared by the CLI commands: one renderer, several formats (text, json, ...).

Commands compute plain data with the Python API, then hand it here. JSON goes to stdout unadorned so scripts can pipe
it; human text goes through rich. Nothing here imports torch, ray, verl or mlflow.
"""

from __future__ import annotations

import json
import math
import sys
from enum import Enum
from typing import Any


class Format(str, Enum):
    """Every output format of every command; each command accepts text, json and its own subset of the rest
    (`rlx.commands.options.format_option`)."""

    text = "text"
    json = "json"
    github = "github"  # GitHub Actions annotations (validate, doctor)
    csv = "csv"  # compare
    md = "md"  # Markdown (compare, rules)


def _default(o: Any) -> Any:
    if isinstance(o, Enum):
        return o.value
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def _finite(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None if math.isnan(o) else ("inf" if o > 0 else "-inf")
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def dumps(obj: Any) -> str:
    """Strict JSON (NaN and infinities become null / "inf"), indented."""
    return json.dumps(_finite(obj), indent=2, default=_default, ensure_ascii=False)


def emit_json(obj: Any) -> None:
    sys.stdout.write(dumps(obj) + "\n")
    sys.stdout.flush()


_console = None
_err_console = None


def console():
    global _console
    if _console is None:
        from rich.console import Console

        # Piped output (not a terminal) gets a wide console instead of rich's 80 columns, so tables stay readable.
        _console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    return _console


def err_console():
    global _err_console
    if _err_console is None:
        from rich.console import Console

        _err_console = Console(stderr=True, highlight=False)
    return _err_console


def fmt_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def table(title: str | None, columns: list[str], rows: list[list[Any]], **kw):
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_lines=False, **kw)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(
            *[x if hasattr(x, "__rich__") or hasattr(x, "__rich_console__") else _escape(fmt_value(x)) for x in r]
        )
    return t


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
