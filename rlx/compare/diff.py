"""Config diff: only the keys that differ among runs, grouped by config section, with rlx's provenance.

Params come from MLflow as verl logs them: the whole resolved config flattened with `/` (lists as `key/0`, `key/1`
and `key/list_len`). rlx's own params live under `rlx/`. Keys are shown as verl dotted paths
(`actor_rollout_ref.actor.clip_ratio_high`), the form users type in overrides and the form of rlx's provenance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RLX_PARAM_PREFIX = "rlx/"
RLX_SECTION = "rlx"
# rlx launches also log each key they set as `rlx/set/<dotted key>`; next to verl's own param it is a duplicate.
RLX_MIRROR_PREFIX = "rlx/set/"
ABSENT = None  # a key a run did not log
# Smoke runs (both engines, `rlx.smoke.sizes.shrunk_params`) log the sizes they trained with as
# `rlx/smoke/<dotted key>`; verl's own param of that key holds the full-size value the run was resolved from.
SMOKE_PREFIX = "rlx/smoke/"
SMOKE_SOURCE = "smoke size"


def smoke_counterparts(smoke_params: Mapping[str, Mapping[str, str]]) -> list[str]:
    """verl's param keys (`/`-flattened) of the sizes that smoke runs replaced."""
    keys = {k[len(SMOKE_PREFIX) :].replace(".", "/") for p in smoke_params.values() for k in p}
    return sorted(k for k in keys if "/" in k)  # `task`, `seed` are rlx's own facts, not verl keys


def fold_smoke_sizes(
    params: Mapping[str, Mapping[str, str]], smoke_params: Mapping[str, Mapping[str, str]]
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """Each smoke run's params with the sizes it trained with in place of the resolved ones.

    Returns (params, resolved): `resolved[run_id][param key]` is the full-size value a smoke size replaced. The
    `rlx/smoke/<key>` params of replaced keys are dropped (their value now sits under verl's key); the others
    (`rlx/smoke/task`, `rlx/smoke/seed`) stay.
    """
    out = {r: dict(p) for r, p in params.items()}
    resolved: dict[str, dict[str, str]] = {}
    for rid, sp in smoke_params.items():
        mine = out.setdefault(rid, {})
        for skey, value in sp.items():
            pkey = skey[len(SMOKE_PREFIX) :].replace(".", "/")
            if "/" not in pkey:
                continue
            resolved.setdefault(rid, {})[pkey] = mine.get(pkey, "not logged")
            mine[pkey] = value
            mine.pop(skey, None)
    return out, resolved


def dotted(param_key: str) -> str:
    """verl's `/`-flattened param key as a dotted config path; rlx's own params keep their `rlx/` form."""
    return param_key if param_key.startswith(RLX_PARAM_PREFIX) else param_key.replace("/", ".")


def section_of(key: str) -> str:
    """The config section a key belongs to: its first component, or the first two under actor_rollout_ref."""
    if key.startswith(RLX_PARAM_PREFIX):
        return RLX_SECTION
    parts = key.split(".")
    if parts[0] == "actor_rollout_ref" and len(parts) > 2:
        return ".".join(parts[:2])
    return parts[0] if len(parts) > 1 else "(top level)"


@dataclass
class DiffEntry:
    """One differing key: each run's value (None when the run did not log it) and where it came from."""

    key: str
    section: str
    values: dict[str, str | None]
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)  # run_id -> {source, reason, where}

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "section": self.section, "values": self.values, "provenance": self.provenance}


@dataclass
class ConfigDiff:
    """The differing keys sorted by section and key, how many keys were identical, and which runs had no params at all."""

    entries: list[DiffEntry]
    identical: int
    without_params: list[str]

    @property
    def keys(self) -> list[str]:
        return [e.key for e in self.entries]

    def sections(self) -> dict[str, list[DiffEntry]]:
        out: dict[str, list[DiffEntry]] = {}
        for e in self.entries:
            out.setdefault(e.section, []).append(e)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys": len(self.entries),
            "identical": self.identical,
            "runs_without_params": self.without_params,
            "sections": {s: [e.to_dict() for e in es] for s, es in self.sections().items()},
        }


def _provenance_for(key: str, prov: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The record that set `key` or its nearest parent (a list is recorded whole); absent means verl's default."""
    probe = key
    while probe:
        if probe in prov:
            p = prov[probe]
            return {k: p.get(k) for k in ("source", "reason", "where") if p.get(k) not in (None, "")}
        probe = probe.rpartition(".")[0]
    return {"source": "verl default"}


def config_diff(
    run_ids: Sequence[str],
    params: Mapping[str, Mapping[str, str]],
    provenance: Mapping[str, Sequence[Mapping[str, Any]] | None] | None = None,
    *,
    param_counts: Mapping[str, int] | None = None,
    total_keys: int | None = None,
    smoke_resolved: Mapping[str, Mapping[str, str]] | None = None,
) -> ConfigDiff:
    """The keys whose value differs among `run_ids` (a key logged by some runs only counts as differing).

    Runs that logged no params at all are left out of the diff (every key would "differ") and listed in
    `without_params`. Provenance is attached for runs that carry rlx's provenance artifact. `params` may hold only
    the candidate keys (the store found the differing ones); `param_counts` then says which runs have params and
    `total_keys` how many distinct keys there are, for the "identical" count. `smoke_resolved` (from
    `fold_smoke_sizes`) marks the values that are smoke sizes: their provenance is "smoke size", with the resolved
    value they replaced.
    """
    smoke_resolved = smoke_resolved or {}
    provenance = provenance or {}
    has = (lambda r: bool(param_counts.get(r))) if param_counts is not None else (lambda r: bool(params.get(r)))
    with_params = [r for r in run_ids if has(r)]
    without = [r for r in run_ids if not has(r)]
    order: dict[str, None] = {}
    for r in with_params:
        order.update(dict.fromkeys(params[r]))
    prov_maps = {r: {p["key"]: p for p in provenance[r] or ()} for r in with_params if provenance.get(r) is not None}
    entries: list[DiffEntry] = []
    identical = 0
    for pkey in order:
        if pkey.startswith(RLX_MIRROR_PREFIX) and pkey[len(RLX_MIRROR_PREFIX) :].replace(".", "/") in order:
            continue
        vals = [params[r].get(pkey) for r in with_params]
        if all(v == vals[0] for v in vals) and vals[0] is not None:
            identical += 1
            continue
        key = dotted(pkey)
        entry = DiffEntry(key, section_of(key), dict(zip(with_params, vals, strict=True)))
        if not pkey.startswith(RLX_PARAM_PREFIX):
            entry.provenance = {r: _provenance_for(key, pm) for r, pm in prov_maps.items()}
        for r in with_params:
            if pkey in smoke_resolved.get(r, {}):
                entry.provenance[r] = {"source": SMOKE_SOURCE, "reason": f"resolved {smoke_resolved[r][pkey]}"}
        entries.append(entry)
    # MLflow keeps no param order: sort by section, then key (rlx's own params last), the same for every store.
    entries.sort(key=lambda e: (e.section == RLX_SECTION, e.section, e.key))
    if total_keys is not None:
        identical = total_keys - len(entries)
    return ConfigDiff(entries, identical, without)
