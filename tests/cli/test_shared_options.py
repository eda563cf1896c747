"""`--format` and `--tracking-uri` are declared once (`rlx.commands.options`), and each command's `--format` accepts
exactly the formats it renders: the one `Format` enum, each command naming its subset."""

from __future__ import annotations

import ast
from enum import Enum
from pathlib import Path

import pytest

COMMANDS = Path(__file__).resolve().parents[2] / "rlx" / "commands"


def test_no_command_module_declares_its_own_format_enum_or_option():
    for path in COMMANDS.glob("*.py"):
        if path.name == "options.py":
            continue
        tree = ast.parse(path.read_text())
        enums = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and "Format" in n.name
                 and any(isinstance(b, ast.Name) and b.id == "Enum" for b in n.bases)]
        assert not enums, f"{path.name} declares {enums}: add the values to rlx.render.Format"
        flags = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in ("--format",
                                                                                             "--tracking-uri")}
        assert not flags, f"{path.name} declares {flags} itself: use rlx.commands.options"


def test_every_format_value_is_rendered_by_some_command(rlx_cli):
    from rlx.render import Format

    assert issubclass(Format, Enum)
    helps = "".join(rlx_cli(*cmd, "--help")[1] for cmd in (
        ("validate", "config"), ("rules",), ("compare", "runs"), ("runs", "doctor"), ("algos",)))
    for value in Format:
        assert value.value in helps, value


@pytest.mark.parametrize(("args", "accepted"), [
    (("validate", "config", "--algo", "grpo", "-f", "csv"), "text, json, github"),
    (("algos", "--format", "github"), "text, json"),
    (("rules", "--format", "github"), "text, json, md"),
])
def test_a_format_the_command_does_not_render_is_refused_with_the_ones_it_does(rlx_cli, args, accepted):
    code, out, err = rlx_cli(*args)
    assert code == 2, out + err
    assert f"is not one of {accepted} for this command" in err
    assert "Traceback" not in err
