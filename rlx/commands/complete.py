"""Shell completion for rlx's arguments: rule codes, run names and ids, and verl config keys.

Each function is a Typer `autocompletion` callback: it gets what the user has typed so far and returns the candidates
(with a short help text where the shell shows one). Completion runs on every Tab, so each one reads a local source
only: the rule registry, rlx's run records, an sqlite MLflow store opened read-only, and verl's composed defaults from
rlx's cache. A source that cannot be read gives no candidates, never an error.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

MAX_RUNS = 200  # newest runs offered; older ones are still found when typed in full
_OVERRIDE_PREFIXES = ("++", "+", "~")


def rule_codes(incomplete: str) -> list[tuple[str, str]]:
    """Rule codes (`RLX401`) with their titles, for `--ignore` and `rlx rules explain`."""
    try:
        from rlx.rulebook import all_rules

        rules = all_rules()
    except Exception:  # noqa: BLE001 - completion never fails loudly
        return []
    return [(r.code, r.title) for r in rules if r.code.startswith(incomplete.upper())]


def algorithms(incomplete: str) -> list[str]:
    """Algorithm names, for `--algo` (and comma lists such as `--algo gspo,grpo`)."""
    from rlx.algorithms import ALGORITHMS

    head, _, last = incomplete.rpartition(",")
    return [(head + "," if head else "") + n for n in ALGORITHMS.names() if n.startswith(last)]


def _candidates(pairs: list[tuple[str, str, str]], incomplete: str) -> list[tuple[str, str]]:
    """(name, id, state) newest first -> names first, then ids, matching `incomplete`, each once."""
    out: dict[str, str] = {}
    for name, rid, state in pairs:
        if name and name.startswith(incomplete) and name not in out:
            out[name] = f"run {rid[:12]} {state}".strip()
    for name, rid, state in pairs:
        if rid.startswith(incomplete.lower()) and rid not in out:
            out[rid] = f"{name} {state}".strip()
    return list(out.items())


def launched_runs(incomplete: str) -> list[tuple[str, str]]:
    """Names and run ids of rlx's launched runs (its run records), for `rlx runs show|logs|stop`."""
    try:
        from rlx.launch.records import all_records

        records = all_records()[:MAX_RUNS]
    except Exception:  # noqa: BLE001
        return []
    return _candidates([(r.run_name or "", r.run_id, r.state.value) for r in records], incomplete)


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :])
    if "://" not in uri and uri.endswith(".db"):
        return Path(uri)
    return None


def mlflow_runs(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Names and ids of the runs in the MLflow store (`--tracking-uri`, else MLFLOW_TRACKING_URI, else
    `./mlflow.db`), for `rlx compare runs`. Only an sqlite store is read (read-only, never created): asking a
    server on every Tab would stall the shell."""
    import sqlite3

    uri = (ctx.params or {}).get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    path = _sqlite_path(uri)
    if path is None or not path.is_file():
        return []
    try:
        with sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=1) as con:
            rows = con.execute(
                "SELECT name, run_uuid, status FROM runs WHERE lifecycle_stage = 'active' "
                "ORDER BY start_time DESC LIMIT ?",
                (MAX_RUNS,),
            ).fetchall()
    except sqlite3.Error:
        return []
    return _candidates([(n or "", r, s or "") for n, r, s in rows], incomplete)


def verl_keys(incomplete: str) -> list[str]:
    """verl config keys for a `KEY=VALUE` override, one level at a time: `actor_rollout_ref.ac` offers
    `actor_rollout_ref.actor.` (a section: Tab again goes deeper) and `trainer.total_ep` offers `trainer.total_epochs=`.
    `+`, `++` and `~` stay in front. Nothing once `=` is typed (the value is the user's)."""
    if "=" in incomplete:
        return []
    lead = next((p for p in _OVERRIDE_PREFIXES if incomplete.startswith(p)), "")
    typed = incomplete[len(lead) :]
    try:
        from rlx.resolve import flatten, verl_defaults_container

        keys = flatten(verl_defaults_container())
    except Exception:  # noqa: BLE001
        return []
    out: dict[str, None] = {}
    for key in keys:
        if not key.startswith(typed):
            continue
        rest = key[len(typed) :]
        dot = rest.find(".")
        done = key if dot < 0 else key[: len(typed) + dot + 1]
        out[lead + done + ("" if done.endswith(".") else ("" if lead == "~" else "="))] = None
    return sorted(out)
