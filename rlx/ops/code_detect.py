"""Detect code use in a response, for ASPO's `used_code` / `first_code_pos` (arXiv 2508.19201).

`detect_code(text, messages=None, **switches)` returns `(used_code, first_code_char_index)`, -1 when no code.
Sources, each switchable under `algorithm.rlx.aspo.code_detection.*` (all on by default):

- `messages`: structured chat messages (OpenAI style): an assistant message with `tool_calls`/`function_call`, or a
  `tool`/`ipython`/`function` role message. The index is the character offset of that call in the concatenated
  assistant contents before it.
- `markdown_fences`: a fenced block (three or more backticks or tildes at a line start, optional language tag).
- `html_tags`: `<code>` or `<pre>` (any attributes, any case).
- `tool_json`: tool-call markers: `<tool_call>`, `<|python_tag|>`, `<execute>`, `<function=`, or JSON with a
  `"tool_calls"`, `"function_call"` or `"name": "python"`/`"code_interpreter"`-style call.

A reward function calls `code_extras(solution_str)` and merges the result into the dict it returns (verl turns the
dict's extra keys into `reward_extra_info`): `used_code`, `first_code_pos` and `response_chars`, the response length in
the same unit (characters) as the position, which `rlx.verl_entry` passes to `rlx_aspo` as `lengths`.
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


def code_extras(
    text: str | None, messages: Iterable[Mapping[str, Any]] | None = None, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Reward extras for ASPO from one response: `used_code`, `first_code_pos` (-1: none) and `response_chars`.

    Args:
        text: the decoded response.
        messages: structured messages, if the rollout has them.
        options: `aspo.code_detection` switches; default: `RLX_ALGO_CFG`'s `aspo.code_detection`, else all on.
    """
    if options is None:
        from rlx.ops.options import algo_options

        options = algo_options("aspo").get("code_detection", {})
    used, pos = detect_code(text, messages, **detector_switches(options))
    return {"used_code": used, "first_code_pos": pos, "response_chars": len(text or "")}


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
    return {
        "use_messages": opts["messages"],
        "markdown_fences": opts["markdown_fences"],
        "html_tags": opts["html_tags"],
        "tool_json": opts["tool_json"],
    }
