"""`compare_runs`: select runs, read their metrics in bulk, summarise, mark the best, diff their configs.

The result, `Comparison`, is plain data that the renderers (`rlx.compare.report`) and the plot turn into a table,
JSON, CSV, Markdown, a PNG or an HTML page.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlx import verl_keys as K
from rlx.compare.diff import SMOKE_PREFIX, ConfigDiff, config_diff, fold_smoke_sizes, smoke_counterparts
from rlx.compare.metrics import (
    REWARD,
    STATS,
    Histories,
    MetricSpec,
    Summary,
    best_runs,
    select_metrics,
    sparkline,
    summarise,
)
from rlx.errors import ConfigError, suggestion
from rlx.track.reads import RunInfo, Source, open_source

ADV_PARAM = K.ADV_ESTIMATOR.replace(".", "/")
LOSS_PARAM = K.LOSS_MODE.replace(".", "/")
VERL_DEFAULT_LOSS_MODE = "vanilla"  # verl's PolicyLossConfig default, used when a run did not log the key
STATUS_TAG = "rlx.job_status"
ALGO_TAG = "rlx.algo"
OK_STATUSES = {"SUCCEEDED", "FINISHED"}


@dataclass
class RunRow:
    """One compared run: identity, algorithm, status, length, metric summaries, sparkline and marks."""

    info: RunInfo
    label: str
    algorithm: str | None
    algorithm_source: str  # "tag" (rlx recorded it), "params" (derived), "" (unknown)
    status: str
    steps: int | None
    duration_s: float | None
    ongoing: bool
    summaries: dict[str, Summary | None] = field(default_factory=dict)
    spark: str = ""
    marks: list[str] = field(default_factory=list)
    kind: str | None = None  # "smoke" (a CPU smoke run, smoke sizes) or "gpu" (verl's trainer); None: unknown

    @property
    def run_id(self) -> str:
        return self.info.run_id

    @property
    def rlx_tagged(self) -> bool:
        return any(k.startswith("rlx.") for k in self.info.tags)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.info.name,
            "label": self.label,
            "experiment": self.info.experiment,
            "algorithm": self.algorithm,
            "algorithm_source": self.algorithm_source,
            "kind": self.kind,
            "status": self.status,
            "mlflow_status": self.info.mlflow_status,
            "steps": self.steps,
            "duration_s": self.duration_s,
            "ongoing": self.ongoing,
            "rlx_tags": self.rlx_tagged,
            "sparkline": self.spark,
            "marks": self.marks,
            "metrics": {k: (s.to_dict() if s else None) for k, s in self.summaries.items()},
        }


@dataclass
class Comparison:
    """Everything `rlx compare runs` shows. `best[key][stat]` holds the run ids with the best value of a column."""

    tracking_uri: str
    rows: list[RunRow]
    metrics: list[MetricSpec]
    best: dict[str, dict[str, set[str]]]
    diff: ConfigDiff
    notes: list[str]
    histories: Histories | None = None  # every fetched point, for plots
    timings: dict[str, float] = field(default_factory=dict)

    def curve(self, run_id: str, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of one run's metric, in step order (empty when the run did not log it)."""
        return self.histories.curve(run_id, key) if self.histories is not None else ([], [])

    def to_dict(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.tracking_uri,
            "metrics": [m.to_dict() for m in self.metrics],
            "runs": [r.to_dict() for r in self.rows],
            "best": {k: {s: sorted(ids) for s, ids in v.items()} for k, v in self.best.items()},
            "config_diff": self.diff.to_dict(),
            "notes": self.notes,
        }


# ---- algorithm ------------------------------------------------------------------------------------------------


def _same(param: str, value: Any) -> bool:
    """Whether an MLflow param string (verl logs `str(value)`) equals a preset value."""
    if isinstance(value, bool):
        return param.lower() == str(value).lower()
    if value is None:
        return param in ("None", "null", "")
    if isinstance(value, (int, float)):
        try:
            return math.isclose(float(param), float(value), rel_tol=1e-9)
        except ValueError:
            return False
    return param == str(value)


@functools.cache
def _preset_values(name: str) -> dict[str, Any]:
    """{dotted key: value} a built-in preset sets after its `extends` chain (empty when it cannot be read)."""
    from rlx.presets import load

    try:
        return {k: s.value for k, (_, s) in load(name).effective().items()}
    except Exception:  # noqa: BLE001 - a broken preset only loses the tie-break
        return {}


def _preset_score(name: str, params: dict[str, str], keys: set[str]) -> float:
    """Fraction of the discriminating `keys` where the run has the value `name` would give it: the preset's own, or
    verl's default where the preset leaves the key alone. A plain GRPO script that keeps verl's token-mean is not
    DAPO just because DAPO's preset restates that default: it misses DAPO's filter, clip-higher and reward manager.
    """
    eff, defaults = _preset_values(name), _verl_default_values()
    hits = 0
    for k in keys:
        key = k.lstrip("+~")
        run = params.get(key.replace(".", "/"))
        expected = eff[k] if k in eff else defaults.get(key, _UNSET)
        if expected is _UNSET or run is None:
            hits += expected is _UNSET and run is None
        else:
            hits += _same(run, expected)
    return hits / max(1, len(keys))


_UNSET = object()


@functools.cache
def _verl_default_values() -> dict[str, Any]:
    try:
        from rlx.resolve import flatten, verl_defaults_container

        return flatten(verl_defaults_container())
    except Exception:  # noqa: BLE001 - without verl's defaults the tie-break reads only what presets set
        return {}


def _discriminating_keys(names: Sequence[str]) -> set[str]:
    """Keys the candidates' presets set to different values (or that only some of them set)."""
    values: dict[str, set[str]] = {}
    for n in names:
        for k, v in _preset_values(n).items():
            values.setdefault(k, set()).add(repr(v))
    return {k for k, v in values.items() if len(v) > 1 or any(k not in _preset_values(n) for n in names)}


_ALGO_CACHE: dict[tuple, str | None] = {}


def algorithm_of(tags: dict[str, str], params: dict[str, str]) -> tuple[str | None, str]:
    """The run's algorithm and how it is known: ("gspo", "tag") from rlx's tag, or derived from verl's params.

    Derivation matches `algorithm.adv_estimator` and `policy_loss.loss_mode` against the registry. Several
    algorithms share a pair (GRPO, Dr.GRPO and DAPO are all grpo + vanilla); the tie is broken by how many of the
    keys their presets set differently the run matches, then by registry order. An unknown pair is shown as
    `<adv_estimator>/<loss_mode>`.
    """
    from rlx.algorithms import ALGORITHMS

    if tags.get(ALGO_TAG):
        return tags[ALGO_TAG], "tag"
    adv = params.get(ADV_PARAM)
    if adv is None:
        return None, ""
    loss = params.get(LOSS_PARAM, VERL_DEFAULT_LOSS_MODE)
    # A variant that is chosen only by name (`inferable=False`, e.g. gspo-decoupled) is never derived from params:
    # a plain GSPO run would otherwise be labelled with it whenever it matches none of the keys either sets apart.
    candidates = [a.name for a in ALGORITHMS if a.inferable and a.adv_estimator == adv and a.loss_mode == loss]
    if not candidates:
        return f"{adv}/{loss}", "params"
    if len(candidates) == 1:
        return candidates[0], "params"
    keys = _discriminating_keys(candidates)
    signature = (tuple(candidates), tuple(sorted((k, params.get(k.replace(".", "/"))) for k in keys)))
    if signature not in _ALGO_CACHE:
        scores = {n: _preset_score(n, params, keys) for n in candidates}
        _ALGO_CACHE[signature] = max(candidates, key=lambda n: scores[n])  # max keeps the first of equals
    return _ALGO_CACHE[signature], "params"


def _preset_param_keys() -> list[str]:
    """Param keys the algorithm tie-break reads (every key any built-in preset sets), `/`-flattened."""
    from rlx.presets import builtin_names

    keys: set[str] = set()
    for name in builtin_names():
        keys |= set(_preset_values(name))
    return sorted(k.replace(".", "/") for k in keys)


def _resolve_algos(names: Sequence[str]) -> set[str]:
    from rlx.algorithms import ALGORITHMS

    return {ALGORITHMS.get(n.strip()).name for n in names if n.strip()}


# ---- status -----------------------------------------------------------------------------------------------------


def effective_status(info: RunInfo) -> str:
    """rlx's job status tag when present; MLflow's status otherwise, with `?` on RUNNING.

    MLflow marks a crashed driver FINISHED and leaves a SIGTERMed one RUNNING forever, so without rlx's
    reconciled tag a RUNNING run may be dead.
    """
    tag = info.tags.get(STATUS_TAG)
    if tag:
        return tag.upper()
    return "RUNNING?" if info.mlflow_status == "RUNNING" else (info.mlflow_status or "UNKNOWN")


# ---- selection --------------------------------------------------------------------------------------------------


def select_runs(
    source: Source,
    selectors: Sequence[str] = (),
    *,
    experiments: Sequence[str] = (),
    filter_string: str = "",
    last: int | None = None,
    algos: Sequence[str] = (),
) -> list[str]:
    """Run ids for the selection, newest first unless explicit selectors give the order. Raises when none match."""
    if last is not None and last < 1:
        from rlx.errors import UsageError

        raise UsageError(f"--last must be at least 1, got {last}", where="--last", hint="e.g. --last 5")
    wanted_algos = _resolve_algos(algos)
    exp_ids = source.experiment_ids(experiments)
    if selectors:
        ids: list[str] = []
        for sel in selectors:
            found = source.find(sel, exp_ids)
            if not found:
                hint = suggestion(sel, source.run_names(exp_ids))
                scope = f"experiment(s) {', '.join(experiments)}" if experiments else "any experiment"
                raise ConfigError(
                    f"no run with id or name '{sel}' in {scope}",
                    where=source.uri,
                    hint=(hint + " " if hint else "") + "`rlx compare runs --last 10` lists recent runs",
                )
            ids.extend(i for i in found if i not in ids)
        if filter_string:
            keep = set(source.search(exp_ids or list(source.experiments()), filter_string))
            ids = [i for i in ids if i in keep]
    else:
        ids = source.search(exp_ids, filter_string, max_results=None if wanted_algos else last)
    if wanted_algos and ids:
        infos = source.infos(ids)
        params = source.params(ids, keys=[ADV_PARAM, LOSS_PARAM, *_preset_param_keys()])
        ids = [i for i in ids if algorithm_of(infos[i].tags, params[i])[0] in wanted_algos]
    if last is not None:
        ids = ids[:last]
    if not ids:
        what = [
            f"--experiment {','.join(experiments)}" if experiments else "",
            f"--filter {filter_string!r}" if filter_string else "",
            f"--algo {','.join(sorted(wanted_algos))}" if wanted_algos else "",
        ]
        what = [w for w in what if w]
        raise ConfigError(
            "no runs matched" + (" " + " ".join(what) if what else ""),
            where=source.uri,
            hint="widen the selection (drop --filter or --algo) or check --tracking-uri; "
            "experiments here: " + (", ".join(sorted(source.experiments().values())[:10]) or "none"),
        )
    return ids


# ---- the comparison ---------------------------------------------------------------------------------------------


def _labels(infos: Sequence[RunInfo]) -> dict[str, str]:
    """Run names, made unique with a short id where two runs share a name."""
    counts: dict[str, int] = {}
    for i in infos:
        counts[i.name] = counts.get(i.name, 0) + 1
    return {
        i.run_id: (i.name if i.name and counts[i.name] == 1 else f"{i.name or 'run'}#{i.run_id[:6]}") for i in infos
    }


def compare_runs(
    selectors: Sequence[str] = (),
    *,
    experiments: Sequence[str] = (),
    algos: Sequence[str] = (),
    filter_string: str = "",
    last: int | None = None,
    metrics: Sequence[MetricSpec] = (),
    tracking_uri: str | None = None,
    source: Source | None = None,
    spark_width: int = 16,
    only_metrics: bool = False,
) -> Comparison:
    """Compare MLflow runs: the Python API behind `rlx compare runs`.

    Args:
        selectors: run ids or run names (all runs of a name). Empty: every run in `experiments`.
        experiments: experiment names (or ids) to search; empty means every active experiment.
        algos: keep runs of these algorithms (rlx's tag, else derived from verl's params).
        filter_string: MLflow search syntax, e.g. ``"params.`trainer/total_epochs` = '2'"``.
        last: keep the N newest runs.
        metrics: extra metric columns (`rlx.compare.metrics.parse_metric_option`).
        only_metrics: show `metrics` alone, without the key metrics (`--only-metric`).
        tracking_uri: default MLFLOW_TRACKING_URI, else `sqlite:///<cwd>/mlflow.db`.
        source: an already opened store (tests, benchmarks).
    """
    t0 = time.perf_counter()
    source = source or open_source(tracking_uri)
    timings: dict[str, float] = {}
    ids = select_runs(source, selectors, experiments=experiments, filter_string=filter_string, last=last, algos=algos)
    timings["select"] = time.perf_counter() - t0
    infos = source.infos(ids)
    counts, differing = source.param_summary(ids)
    if differing is None:
        params = source.params(ids)
        total_keys = None
    else:
        untagged = any(not i.tags.get(ALGO_TAG) for i in infos.values())
        params = source.params(
            ids, keys=[*differing, ADV_PARAM, LOSS_PARAM, *(_preset_param_keys() if untagged else ())]
        )
        # Identical keys are logged by every run with params, so one run's count minus its differing keys tells.
        first = next((r for r in ids if counts.get(r)), None)
        total_keys = 0 if first is None else counts[first] - sum(k in params[first] for k in differing) + len(differing)
    # Smoke runs trained with smaller sizes than verl's params say: show those (rlx/smoke/<key>) in their place.
    smoke_params = {r: p for r, p in source.params_with_prefix(ids, SMOKE_PREFIX).items() if p}
    smoke_resolved: dict[str, dict[str, str]] = {}
    if smoke_params:
        counterparts = smoke_counterparts(smoke_params)
        if differing is not None:
            for rid, p in source.params(ids, keys=counterparts).items():
                params.setdefault(rid, {}).update(p)
            folded = {
                k for p in smoke_params.values() for k in p if k[len(SMOKE_PREFIX) :].replace(".", "/") in counterparts
            }
            total_keys = None if total_keys is None else total_keys - len(folded)
            differing = [*differing, *counterparts]
        params, smoke_resolved = fold_smoke_sizes(params, smoke_params)
    timings["params"] = time.perf_counter() - t0
    logged = source.metric_keys(ids)
    cols, notes = select_metrics(list(metrics), set().union(*logged.values()), only=only_metrics)
    keys = list(dict.fromkeys(c.key for c in cols))
    # The reward is fetched even when --only-metric leaves it out of the columns: the sparkline draws it.
    hist = source.histories(ids, keys if REWARD in keys else [*keys, REWARD])
    summaries = summarise(hist, {c.key: c.direction for c in cols})
    timings["metrics"] = time.perf_counter() - t0

    labels = _labels([infos[i] for i in ids])
    now_ms = time.time() * 1000
    last_steps = hist.last_steps()
    longest = max(last_steps.values(), default=0)
    rows: list[RunRow] = []
    for rid in ids:
        info = infos[rid]
        algo, how = algorithm_of(info.tags, params.get(rid, {}))
        status = effective_status(info)
        ongoing = info.end_ms is None and status.startswith("RUNNING")
        end = info.end_ms if info.end_ms is not None else (now_ms if ongoing else None)
        duration = (end - info.start_ms) / 1000.0 if end is not None and info.start_ms is not None else None
        steps = last_steps.get(rid)
        row = RunRow(info, labels[rid], algo, how, status, None if steps is None else int(steps), duration, ongoing)
        row.summaries = {c.key: summaries.get((rid, c.key)) for c in cols}
        row.kind = _kind(info, rid in smoke_params, bool(counts.get(rid)))
        row.marks = _marks(row, cols, longest)
        rows.append(row)
    if any(r.kind == "smoke" for r in rows):  # side by side, say which is which
        for r in rows:
            r.marks.insert(0, {"smoke": "smoke run (CPU, smoke sizes)", "gpu": "gpu run"}.get(r.kind or "", "kind?"))

    notes.extend(_ending_notes(rows))

    # Sparklines of the reward on one shared scale.
    rewards = {r.run_id: r for r in rows}
    curves = {rid: values for rid in rewards if (values := hist.curve(rid, REWARD)[1])}
    finite = [v for vs in curves.values() for v in vs if math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    for rid, values in curves.items():
        rewards[rid].spark = sparkline(values, lo, hi, spark_width)

    # A run that failed, was stopped or may be dead (RUNNING? without rlx's tag) competes for no "best": its
    # numbers stop wherever it broke.
    contenders = [r for r in rows if r.status in OK_STATUSES or r.status == "RUNNING"]
    best = {
        c.key: {
            stat: best_runs(
                {r.run_id: (s.get(stat) if (s := r.summaries.get(c.key)) else None) for r in contenders}, c.direction
            )
            for stat in STATS
        }
        for c in cols
    }

    provenance = {r.run_id: source.provenance(r.info) for r in rows if r.rlx_tagged}
    differing_set = set(differing or ())
    diff = config_diff(
        ids,
        {r: {k: v for k, v in p.items() if differing is None or k in differing_set} for r, p in params.items()},
        provenance,
        param_counts=counts,
        total_keys=total_keys,
        smoke_resolved=smoke_resolved,
    )
    if diff.without_params:
        notes.append(
            f"{len(diff.without_params)} run(s) logged no params and are left out of the config diff: "
            + ", ".join(labels[r] for r in diff.without_params)
        )
    timings["total"] = time.perf_counter() - t0
    return Comparison(source.uri, rows, cols, best, diff, notes, hist, timings)


def _kind(info: RunInfo, smoke_params: bool, has_params: bool) -> str | None:
    """ "smoke" when rlx launched it with --smoke or it logged smoke sizes; "gpu" for a run of verl's trainer."""
    tag = info.tags.get("rlx.smoke", "").lower()
    if tag == "true" or smoke_params:
        return "smoke"
    if tag == "false" or (has_params and not any(k.startswith("rlx.") for k in info.tags)):
        return "gpu"
    return None


def _ending_notes(rows: Sequence[RunRow]) -> list[str]:
    """Why each run that did not succeed ended, one line per run, from the message rlx tagged it with
    (`rlx.job_message`). A raw Ray message (a run launched by an older rlx) is summarised the same way."""
    from rlx.launch.failure import failure_summary, shorten

    out = []
    for row in rows:
        message = (row.info.tags.get("rlx.job_message") or "").strip()
        if row.status in OK_STATUSES or row.status.startswith("RUNNING") or not message:
            continue
        if message.startswith("Job entrypoint command failed"):
            message = failure_summary(message)
        if not message.startswith("failed"):
            message = f"{row.status.lower()}: {shorten(message, 240)}"
        out.append(f"{row.label} {message}")
    return out


def _marks(row: RunRow, cols: Sequence[MetricSpec], longest: int) -> list[str]:
    """Short, explicit flags for everything that makes a row not directly comparable."""
    marks = []
    if row.status not in OK_STATUSES:
        marks.append(row.status.lower().rstrip("?") + ("?" if row.status.endswith("?") else ""))
    if row.steps is None:
        marks.append("no metrics")
    elif row.steps < longest:
        marks.append(f"short: {row.steps}/{longest} steps")
    if not row.rlx_tagged:
        marks.append("no rlx tags" + (" (algorithm from params)" if row.algorithm_source == "params" else ""))
    missing = [c.label for c in cols if row.summaries.get(c.key) is None]
    if missing and row.steps is not None:
        marks.append("missing: " + ", ".join(missing))
    return marks
