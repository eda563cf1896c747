"""Run comparison that understands RL runs: `rlx compare runs` as a Python API.

    from rlx.compare import compare_runs
    cmp = compare_runs(experiments=["gsm8k"], algos=["gspo", "grpo"], last=4)
    for row in cmp.rows:
        print(row.label, row.algorithm, row.status, row.summaries["critic/score/mean"])
    print(cmp.diff.keys)            # only the config keys that differ, as verl dotted paths

Reads MLflow in bulk (`rlx.track.reads`), summarises curves (`rlx.compare.metrics`), diffs configs
(`rlx.compare.diff`), renders (`rlx.compare.report`) and plots (`rlx.compare.plot`). Importing this package imports
no mlflow, torch, ray or verl.
"""

from __future__ import annotations

from rlx.compare.core import Comparison, RunRow, algorithm_of, compare_runs, effective_status, select_runs
from rlx.compare.diff import ConfigDiff, DiffEntry, config_diff
from rlx.compare.metrics import KEY_METRICS, Direction, MetricSpec, Summary, parse_metric_option
from rlx.track.reads import open_source
from rlx.track.store import env_or_default_uri as default_tracking_uri

__all__ = [
    "KEY_METRICS",
    "Comparison",
    "ConfigDiff",
    "DiffEntry",
    "Direction",
    "MetricSpec",
    "RunRow",
    "Summary",
    "algorithm_of",
    "compare_runs",
    "config_diff",
    "default_tracking_uri",
    "effective_status",
    "open_source",
    "parse_metric_option",
    "select_runs",
]
