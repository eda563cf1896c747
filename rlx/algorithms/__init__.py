"""Algorithm specs. `ALGORITHMS` is the one place algorithm names live.

Every spec comes through the entry-point group `rlx.algorithms`, rlx's own included (`builtin`, pointing at
`rlx.algorithms.catalog:BUILTIN`), as llm loads its default plugins. A third-party package adds an algorithm with one
spec module and one line of its pyproject:

    [project.entry-points."rlx.algorithms"]
    toypo = "rlx_toypo.spec:SPEC"          # an Algorithm, or an iterable of them

`rlx algos`, `rlx validate`, `rlx train` (dry-run, smoke and cluster) and the docs then know it. A spec whose
`verl_module` is set has that module imported by rlx's verl plugin in every process verl starts, so its
`plugin_names` are registered with verl wherever verl runs. A plugin that fails to load, or claims a name already
taken, is skipped with a warning naming it: a broken third-party package never takes rlx's own algorithms down.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from rlx.algorithms.registry import Algorithm, AlgorithmRegistry, Constraint, Family, Severity, Status

GROUP = "rlx.algorithms"
BUILTIN_ENTRY = "builtin"

logger = logging.getLogger(__name__)

problems: list[str] = []
"""Why each skipped `rlx.algorithms` entry point was skipped (`rlx algos` prints them)."""


def _specs(obj: object, where: str) -> list[Algorithm]:
    if callable(obj) and not isinstance(obj, Algorithm):
        obj = obj()
    if isinstance(obj, Algorithm):
        return [obj]
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        items = list(obj)
        if items and all(isinstance(a, Algorithm) for a in items):
            return items
    raise TypeError(f"{where} is {type(obj).__name__}, not an rlx.algorithms.Algorithm or a list of them")


def load() -> AlgorithmRegistry:
    """Every spec of group `rlx.algorithms`: rlx's own first, then the others by entry-point name."""
    from dataclasses import replace
    from importlib.metadata import entry_points

    registry = AlgorithmRegistry()
    seen: set[tuple[str, str]] = set()
    eps = []
    for ep in entry_points(group=GROUP):
        if (ep.name, ep.value) not in seen:  # an editable and a regular install can both list rlx's own
            seen.add((ep.name, ep.value))
            eps.append(ep)
    eps.sort(key=lambda ep: (ep.name != BUILTIN_ENTRY, ep.name))
    if not any(ep.name == BUILTIN_ENTRY for ep in eps):  # a source tree whose install predates the group
        from rlx.algorithms.catalog import BUILTIN

        for algo in BUILTIN:
            registry.register(algo)
    for ep in eps:
        where = f"entry point '{ep.name} = {ep.value}' (group {GROUP})"
        dist = getattr(ep.dist, "name", None) or ep.value.split(":")[0].split(".")[0]
        try:
            specs = _specs(ep.load(), where)
        except Exception as e:  # noqa: BLE001 - a broken plugin is reported and skipped, whatever it raised
            if ep.name == BUILTIN_ENTRY and ep.value.startswith("rlx."):
                raise
            problems.append(f"{where}: {type(e).__name__}: {e}")
            logger.warning("rlx: algorithm plugin skipped: %s", problems[-1])
            continue
        for algo in specs:
            try:
                registry.register(algo if ep.name == BUILTIN_ENTRY else replace(algo, origin=dist))
            except ValueError as e:
                problems.append(f"{where}: {e}")
                logger.warning("rlx: algorithm skipped: %s", problems[-1])
    return registry


ALGORITHMS = load()

__all__ = ["ALGORITHMS", "GROUP", "Algorithm", "Constraint", "Family", "Severity", "Status", "load", "problems"]
