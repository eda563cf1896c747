"""Each stage depends only on what comes before it (issue 17): read from the source, function-level imports included.

The pipeline is resolve -> validate -> launch -> compare, with shared utilities and the tracking service (`rlx.track`)
below every stage and the CLI on top. `LAYERS` ranks every top-level module and package of `rlx`; an import may go to
the same rank or lower, never higher. Edges that still go the wrong way are listed in `KNOWN_BACK_EDGES` with the
reason; the list is a ratchet: an edge that is fixed must leave it (the test fails on a stale entry), and a new one
cannot join it silently.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "rlx"

LAYERS: dict[str, int] = {
    # shared utilities: no stage, no MLflow
    **dict.fromkeys(
        ["rlx", "errors", "fsutil", "yamlio", "redact", "render", "trackuri", "verl_keys", "verl_moves", "verlscript"],
        0,
    ),
    "track": 1,  # the tracking service: every stage reads and writes runs through it
    # what an algorithm is, and its code inside verl's processes
    **dict.fromkeys(["algorithms", "ops", "presets", "verl_algos", "verl_plugin", "verl_entry"], 2),
    "resolve": 3,
    "validate": 4,
    **dict.fromkeys(["launch", "runs", "smoke", "verl_cpu"], 5),
    **dict.fromkeys(["compare", "doctor", "verlimport", "rulebook"], 6),
    "commands": 7,
    "cli": 8,
    **dict.fromkeys(["docgen", "helpgolden"], 9),  # tooling that renders the CLI and the registries
}

# (importer, imported) -> why it is still there, for an edge that cannot be fixed at once. Empty since stop 25 (the
# last three went with rlx.redact, rlx.doctor.live and rlx.rulebook); keep it that way.
KNOWN_BACK_EDGES: dict[tuple[str, str], str] = {}
# Package pairs that import each other, likewise (compare <-> doctor went when the CLI began rendering the health
# sections it hands to compare's HTML report).
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "rlx"


def import_edges() -> dict[tuple[str, str], set[str]]:
    """(importer unit, imported unit) -> the files that make the edge."""
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    units = _units()
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = module if rel.name == "__init__" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                # `from rlx import verl_keys` imports a module; `from rlx import __version__` a name of the root
                targets = (
                    [f"rlx.{a.name}" if a.name in units else "rlx" for a in node.names] if base == "rlx" else [base]
                )
            else:
                continue
            for target in targets:
                if target == "rlx" or target.startswith("rlx."):
                    a, b = _unit(module), _unit(target)
                    if a != b:
                        edges[(a, b)].add(str(path.relative_to(ROOT.parent)))
    return edges


def _units() -> set[str]:
    return {
        p.stem if p.is_file() else p.name
        for p in ROOT.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    }


def test_every_module_has_a_layer():
    assert _units() - set(LAYERS) == set(), "rank the new module in LAYERS"


def test_no_stage_imports_a_later_stage():
    edges = import_edges()
    back = {e: files for e, files in edges.items() if LAYERS[e[1]] > LAYERS[e[0]]}
    new = {e: sorted(f) for e, f in back.items() if e not in KNOWN_BACK_EDGES}
    assert not new, f"imports that go up the layers: {new}"
    stale = set(KNOWN_BACK_EDGES) - set(back)
    assert not stale, f"fixed edges still listed in KNOWN_BACK_EDGES: {stale}"


def test_track_imports_no_stage_and_only_the_cli_imports_commands():
    edges = import_edges()
    assert {b for (a, b) in edges if a == "track"} <= {u for u, r in LAYERS.items() if r == 0}
    assert {a for (a, b) in edges if b == "commands"} <= {"cli", "docgen", "helpgolden"}


def test_the_package_graph_has_no_cycle():
    edges = set(import_edges())
    cycles = {frozenset(e) for e in edges if (e[1], e[0]) in edges}
    assert cycles - set(KNOWN_CYCLES) == set(), f"two packages import each other: {cycles - set(KNOWN_CYCLES)}"
    assert set(KNOWN_CYCLES) - cycles == set(), "a cycle listed in KNOWN_CYCLES is gone: remove it"
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        if frozenset((a, b)) not in KNOWN_CYCLES and (a, b) not in KNOWN_BACK_EDGES:  # both listed as debt
            graph[a].add(b)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in list(graph):
        if node not in state:
            visit(node, [])


def test_the_walker_sees_function_level_and_relative_imports(tmp_path):
    """The walker itself: a function-level import and a relative import are both edges (no mocks: real files)."""
    edges = import_edges()
    # rlx/launch/run.py imports rlx.smoke inside a function; rlx/commands/*.py import rlx.launch inside functions
    assert ("launch", "smoke") in edges and ("commands", "launch") in edges


def test_the_cli_hands_launch_the_live_doctor(monkeypatch):
    """Launch no longer imports the doctor; the CLI passes it in. Without that, `rlx train` would lose its health
    line silently, so the wiring is checked here (launch itself replaced: this is about what is passed)."""
    import rlx.launch
    import rlx.resolve.naming
    from rlx.commands import launch_hook
    from rlx.doctor.live import LiveDoctor

    seen = {}
    monkeypatch.setattr(rlx.launch, "run_train", lambda resolved, report, **kw: seen.update(kw) or 0)
    monkeypatch.setattr(rlx.resolve.naming, "name_run", lambda *a, **k: None)
    assert launch_hook(object(), None, smoke=True) == 0
    assert seen["health"] is LiveDoctor
