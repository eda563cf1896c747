"""ASPO's code detector on plain response text and structured messages (rlx.ops.code_detect)."""

from __future__ import annotations

import pytest

from rlx.ops.code_detect import DETECTION_DEFAULTS, code_extras, detect_code, detector_switches


@pytest.mark.parametrize(("text", "expected"), [
    ("Let me compute.\n```python\nprint(1)\n```", (True, 16)),
    ("x\n~~~\ncode\n~~~", (True, 2)),
    ("inline ``` not at line start", (False, -1)),
    ("Use <code>len(x)</code> here", (True, 4)),
    ("<PRE class='x'>a</PRE>", (True, 0)),
    ("think... <tool_call>{\"name\": \"python\"}</tool_call>", (True, 9)),
    ('call {"name": "code_interpreter", "arguments": {}}', (True, 6)),
    ('{"tool_calls": [{"id": 1}]}', (True, 1)),
    ("<|python_tag|>print(2)", (True, 0)),
    ("no code at all, just prose about python", (False, -1)),
    ("", (False, -1)),
])
def test_detects_each_marker_at_its_first_character(text, expected):
    assert detect_code(text) == expected


def test_earliest_marker_wins_and_switches_turn_detectors_off():
    text = "a <code>x</code>\n```py\ny\n```"
    assert detect_code(text) == (True, 2)
    assert detect_code(text, html_tags=False) == (True, 17)
    assert detect_code(text, html_tags=False, markdown_fences=False) == (False, -1)
    assert detect_code("<tool_call>{}</tool_call>", tool_json=False) == (False, -1)


def test_structured_messages():
    messages = [
        {"role": "user", "content": "solve"},
        {"role": "assistant", "content": "First I reason. ", "tool_calls": [{"function": {"name": "python"}}]},
        {"role": "tool", "content": "42"},
        {"role": "assistant", "content": "The answer is 42."},
    ]
    assert detect_code(None, messages) == (True, len("First I reason. "))
    assert detect_code(None, [{"role": "assistant", "content": "abc"}, {"role": "ipython", "content": "1"}]) == (
        True, 3)
    assert detect_code(None, messages, use_messages=False) == (False, -1)
    assert detect_code(None, [{"role": "assistant", "content": "no tools"}]) == (False, -1)
    # both sources: the earliest position
    assert detect_code("```\nx\n```", messages) == (True, 0)


def test_switches_from_config_mapping():
    assert detector_switches(None) == {"use_messages": True, "markdown_fences": True, "html_tags": True,
                                       "tool_json": True}
    assert detector_switches({"html_tags": False})["html_tags"] is False
    assert set(DETECTION_DEFAULTS) == {"messages", "markdown_fences", "html_tags", "tool_json"}
    with pytest.raises(ValueError, match="aspo.code_detection.fences: unknown switch"):
        detector_switches({"fences": False})


def test_code_extras_reads_switches_from_rlx_algo_cfg(monkeypatch):
    text = "see <code>x</code>"
    monkeypatch.delenv("RLX_ALGO_CFG", raising=False)
    assert code_extras(text) == {"used_code": True, "first_code_pos": 4, "response_chars": len(text)}
    monkeypatch.setenv("RLX_ALGO_CFG", '{"aspo": {"code_detection": {"html_tags": false}}}')
    assert code_extras(text) == {"used_code": False, "first_code_pos": -1, "response_chars": len(text)}
    assert code_extras(text, options={"html_tags": True})["used_code"] is True
