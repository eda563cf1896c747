"""Detect code use in a response, for ASPO's `used_code` / `first_code_pos` (docs/algorithms.md 3.8).

`detect_code(text, messages=None, **switches)` returns `(used_code, first_code_char_index)`, -1 when no code.
Sources, each switchable under `algorithm.rlx.aspo.code_detection.*` (all on by default):

- `messages`: structured chat messages (OpenAI style): an assistant message with `tool_calls`/`function_call`, or a
  `tool`/`ipython`/`function` role message. The index is the character offset of that call in the concatenated
  assistant contents before it.
- `markdown_fences`: a fenced block (three or more backticks or tildes at a line start, optional language tag).
- `html_tags`: `<code>` or `<pre>` (any attributes, any case).
- `tool_json`: tool-call markers: `<tool_call>`, `<|python_tag|>`, `<execute>`, `<function=`, or JSON with a
  `"tool_calls"`, `"function_call"` or `"name": "python"`/`"code_interpreter"`-style call.

A reward function calls this on the decoded response and emits `used_code`/`first_code_pos` as reward extras. The
position is in characters; pass `lengths` in characters to the estimator (or convert to tokens) so both match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_FENCE = re.compile(r"(?m)^[ \t]{0,3}(```+|~~~+)")
_HTML = re.compile(r"<(code|pre)(\s[^>]*)?>", re.IGNORECASE)
_TOOL = re.compile(
    r"<tool_call>|<\|python_tag\|>|<execute>|<function=|\"(tool_calls|function_call)\"\s*:"
    r"|\"name\"\s*:\s*\"(python|code_interpreter|execute_code|run_code|code)\"",
    re.IGNORECASE,
)
_TOOL_ROLES = {"tool", "ipython", "function"}

DETECTION_DEFAULTS: dict[str, bool] = {"messages": True, "markdown_fences": True, "html_tags": True, "tool_json": True}


def _first(pattern: re.Pattern[str], text: str) -> int:
    match = pattern.search(text)
    return match.start() if match else -1


def _messages_position(messages: Iterable[Mapping[str, Any]]) -> int:
    offset = 0
    for msg in messages:
        role = str(msg.get("role", ""))
        content = msg.get("content") or ""
        content = content if isinstance(content, str) else str(content)
        if role in _TOOL_ROLES:
            return offset
        if role == "assistant":
            if msg.get("tool_calls") or msg.get("function_call"):
                return offset + len(content)
            offset += len(content)
    return -1


def detect_code(
    text: str | None,
    messages: Iterable[Mapping[str, Any]] | None = None,
    *,
    markdown_fences: bool = True,
    html_tags: bool = True,
    tool_json: bool = True,
    use_messages: bool = True,
) -> tuple[bool, int]:
    """Whether the response used code, and the character index of the first code use (-1 if none).

    Args:
        text: the decoded response (may be None when only `messages` are available).
        messages: structured messages of a multi-turn / tool-calling rollout, if any.
        markdown_fences, html_tags, tool_json, use_messages: switch each detector on or off.

    When both `messages` and `text` find code, the earliest position wins.
    """
    found: list[int] = []
    if use_messages and messages:
        found.append(_messages_position(messages))
    if text:
        if markdown_fences:
            found.append(_first(_FENCE, text))
        if html_tags:
            found.append(_first(_HTML, text))
        if tool_json:
            found.append(_first(_TOOL, text))
    positions = [p for p in found if p >= 0]
    return (True, min(positions)) if positions else (False, -1)


def detector_switches(options: Mapping[str, Any] | None) -> dict[str, bool]:
    """Keyword switches for `detect_code` from an `aspo.code_detection` mapping (unknown keys are refused).

    Raises:
        ValueError: a key that is not one of `DETECTION_DEFAULTS`.
    """
    opts = dict(DETECTION_DEFAULTS)
    for key, value in (options or {}).items():
        if key not in DETECTION_DEFAULTS:
            raise ValueError(f"aspo.code_detection.{key}: unknown switch (known: {', '.join(DETECTION_DEFAULTS)})")
        opts[key] = bool(value)
    return {"use_messages": opts["messages"], "markdown_fences": opts["markdown_fences"],
            "html_tags": opts["html_tags"], "tool_json": opts["tool_json"]}
