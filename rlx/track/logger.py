"""MLflow logging for rlx's smoke runs (the job `python -m rlx.smoke`), the way verl's `verl/utils/tracking.py::Tracking` logs GPU runs.

- The tracking URI comes from `MLFLOW_TRACKING_URI` (verl's default `sqlite:////tmp/mlruns.db` otherwise).
- With `MLFLOW_RUN_ID` set (rlx's launcher creates the run before submitting the job) the logger attaches to that
  run; otherwise it creates one in the experiment `trainer.project_name`, named `trainer.experiment_name`.
- The resolved config is logged as params flattened with `/` by verl's own helper, so `rlx compare` diffs smoke runs
  and GPU runs alike. The smoke sizes go under rlx's namespace (`rlx/smoke/...`): verl's keys keep the resolved
  values, and a key logged twice with two values would make MLflow refuse the second.
- Metrics use verl's names and sanitisation (`@` becomes `_at_`). They are buffered and written with `log_batch`
  about once a second (and at the end), each with its own step, so a fast run is not slowed by one round trip per step.
- Writes go out from a background thread (`rlx.track.journal.Outbox`): a tracking outage never stalls training. What
  cannot be sent is kept in a journal (`RLX_TRACKING_JOURNAL`, else `./rlx-tracking-journal-<run>.jsonl`) and
  replayed in order when the server answers again; an outage that outlasts the run leaves the journal for
  `rlx runs sync RUN`.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlx.track import journal
from rlx.track.journal import FINISH_WAIT, FINISH_WAIT_ENV, JOB_HTTP_ENV, JOURNAL_ENV, Journal, Outbox

DEFAULT_TRACKING_URI = "sqlite:////tmp/mlruns.db"  # verl's default in utils/tracking.py
FLUSH_EVERY_S = 1.0
_INVALID = re.compile(r"[^/\w.\- :]")


def sanitize_metric_key(key: str) -> str:
    """verl's MLflow key sanitisation: `@` -> `_at_`, repeated slashes collapsed, other invalid characters -> `_`."""
    key = re.sub(r"/+", "/", key.replace("@", "_at_"))
    return _INVALID.sub("_", key)


def config_params(config: Any) -> dict[str, Any]:
    """The resolved config as MLflow params, flattened with `/` by verl's own helper (lists become `k/0`, `k/list_len`).

    Secrets are redacted by `rlx.redact`, the one masker every sink uses: they must never reach MLflow."""
    from omegaconf import DictConfig, OmegaConf
    from verl.utils.tracking import _compute_mlflow_params_from_objects

    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=False)
    from rlx.redact import redact

    params = _compute_mlflow_params_from_objects(config)
    return {k: v if v in (None, "") else redact(v, key=k) for k, v in params.items()}


class MlflowLogger:
    """Attach to (or create) an MLflow run, log params once and metrics per step, then end the run."""

    def __init__(
        self,
        *,
        experiment: str,
        run_name: str | None = None,
        tracking_uri: str | None = None,
        run_id: str | None = None,
    ) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        for k, v in JOB_HTTP_ENV.items():  # a bounded wait per call; the journal keeps what does not get through
            os.environ.setdefault(k, v)
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        mlflow.set_tracking_uri(self.tracking_uri)
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        run_id = run_id or os.environ.get("MLFLOW_RUN_ID")
        if run_id:
            run = self.client.get_run(run_id)
            self.created = False
        else:
            exp = self.client.get_experiment_by_name(experiment)
            exp_id = exp.experiment_id if exp else self.client.create_experiment(experiment)
            run = self.client.create_run(exp_id, run_name=run_name, tags={"rlx.smoke": "true"})
            self.created = True
        self.run_id = run.info.run_id
        if run.info.status != "RUNNING":
            self.client.update_run(self.run_id, status="RUNNING")
        self._pending: list = []
        self._last_flush = time.monotonic()
        self.journal = Journal(os.environ.get(JOURNAL_ENV) or Path.cwd() / f"rlx-tracking-journal-{self.run_id}.jsonl")
        self.buffered = 0  # calls left in the journal when the run finished (the server was still down)
        self._outbox = Outbox(self.client, self.journal, note=_note)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params in batches of 100 (MLflow's limit per call); values are stringified and capped at 6000."""
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        items = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in existing]
        for i in range(0, len(items), 100):
            self._outbox.put(journal.batch(self.run_id, params=items[i : i + 100]))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Queue one step's metrics; written with `log_batch` about once a second."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        for k, v in metrics.items():
            if (
                v is None or v != v
            ):  # MLflow stores NaN, but compare/plots read it as noise; skip it as verl's reduce does
                continue
            self._pending.append(Metric(sanitize_metric_key(k), float(v), ts, int(step)))
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Hand the queued metrics to the sender (1000 per call, MLflow's limit)."""
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), 1000):
            self._outbox.put(journal.batch(self.run_id, metrics=pending[i : i + 1000]))
        self._last_flush = time.monotonic()

    def finish(self, status: str = "FINISHED") -> int:
        """Flush and end the run (verl's `Tracking.finish` ends it too: FINISHED, or FAILED on error).

        Waits up to `RLX_TRACKING_FINISH_WAIT` seconds (default 15) for a server that is down; returns how many
        calls are still in the journal (0 when everything reached MLflow)."""
        self.flush()
        self._outbox.put(journal.terminated(self.run_id, status))
        wait = float(os.environ.get(FINISH_WAIT_ENV) or FINISH_WAIT)
        self.buffered = self._outbox.close(wait)
        if self.buffered:
            _note(
                f"rlx: the tracking server is still unreachable; {self.buffered} calls are kept in "
                f"{self.journal.path}. `rlx runs sync {self.run_id}` sends them when it is back"
            )
        return self.buffered


def _note(text: str) -> None:
    from rlx.redact import redact_text

    print(redact_text(text), file=sys.stderr, flush=True)
