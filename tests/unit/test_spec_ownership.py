"""One algorithm, one spec (issue 17): outside an algorithm's own modules no code spells its verl names or its option
paths, and rlx's two trainers (rlx.verl_entry, the smoke engine) spell no algorithm at all.

Read from the source (string constants in code; docstrings and comments may cite an algorithm as an example), so a
new `if loss_mode == "rlx_foo"` in a trainer fails here, not in review.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from rlx.algorithms import ALGORITHMS

RLX = Path(__file__).resolve().parents[2] / "rlx"

# Modules that own algorithms: the spec catalog, each algorithm's maths (ops/<name>) and verl code (verl_algos/<name>).
# The doctor's per-paper checks are scoped by algorithm name on purpose (each is what one paper watches), and the
# help golden cases are examples of a user's command line.
OWNERS = ("algorithms/catalog.py", "ops/", "verl_algos/", "doctor/checks.py", "helpgolden.py")
TRAINERS = (
    "verl_entry.py",
    "smoke/engine.py",
    "smoke/setup.py",
    "smoke/phases.py",
    "smoke/updates.py",
    "smoke/tensors.py",
)


def _code_strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docs = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                docs.add(id(body[0].value))
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
    ]


def _modules(prefixes: tuple[str, ...], *, inside: bool) -> list[Path]:
    out = []
    for p in sorted(RLX.rglob("*.py")):
        rel = p.relative_to(RLX).as_posix()
        if rel.startswith(prefixes) == inside:
            out.append(p)
    return out


def _word(names: set[str]) -> re.Pattern[str]:
    alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    return re.compile(rf"(?<![\w.])({alternatives})(?!\w)")


PLUGIN_NAMES = {n for a in ALGORITHMS if a.origin == "rlx" for n in a.plugin_names.values()}
OWN_NAMES = "|".join(a.name for a in ALGORITHMS if a.origin == "rlx")
OPTION_PATH = re.compile(rf"algorithm\.rlx\.({OWN_NAMES})\b")


def test_the_patterns_see_what_they_look_for():
    assert {"rlx_aepo", "rlx_gepo", "rlx_aspo", "rlx_vapo"} <= PLUGIN_NAMES
    assert _word(PLUGIN_NAMES).search("if mode == rlx_gepo:") and not _word(PLUGIN_NAMES).search("rlx_gepox")
    assert OPTION_PATH.search("++algorithm.rlx.gad.teacher_key=x") and not OPTION_PATH.search("algorithm.rlx.")


@pytest.mark.parametrize("path", _modules(OWNERS, inside=False), ids=lambda p: p.relative_to(RLX).as_posix())
def test_no_module_but_its_own_spells_an_algorithms_verl_names_or_options(path):
    plugin = _word(PLUGIN_NAMES)
    hits = [(line, s) for line, s in _code_strings(path) if plugin.search(s) or OPTION_PATH.search(s)]
    assert not hits, f"{path.relative_to(RLX)} spells an algorithm's verl names or option paths: {hits[:5]}"


@pytest.mark.parametrize("path", _modules(TRAINERS, inside=True), ids=lambda p: p.relative_to(RLX).as_posix())
def test_the_trainers_spell_no_algorithm(path):
    names = _word({a.name for a in ALGORITHMS} | {a.title for a in ALGORITHMS} | PLUGIN_NAMES)
    # verl's own estimator names ("grpo", "gae", ...) are verl's API, which the smoke engine calls like verl does
    verl_api = {"grpo", "gae", "ppo", "remax", "rloo", "vanilla", "gspo", "reinforce_plus_plus"}
    hits = [(line, s) for line, s in _code_strings(path) for m in names.finditer(s) if m.group(1) not in verl_api]
    assert not hits, f"{path.relative_to(RLX)} names an algorithm: {hits[:5]}"
