"""verl's own MLflow logging, made outage-proof for the runs rlx launches: rlx's sender sits in verl's place.

verl 0.9.1 logs each step with `_MlflowLoggingAdapter.log` (verl/utils/tracking.py): `mlflow.log_metrics` in the
training loop, tried 3 times, each try under MLflow's default HTTP retries (minutes against a dead server), and then
the step's metrics are dropped. A tracking outage therefore stalls every step and loses what it could not send.

`install()` replaces that adapter with `RlxMlflowAdapter`, a subclass that keeps verl's key sanitisation and hands
each step to `rlx.track.journal.Outbox`: a background thread sends it with a bounded wait per call, and journals
what fails (`RLX_TRACKING_JOURNAL`, else `./rlx-tracking-journal-<run>.jsonl`) to replay it, in order and
idempotently, when the server answers again, or later with `rlx runs sync RUN`. A step never waits for MLflow.

It is active only in jobs rlx launched: rlx's plugin (`rlx.verl_plugin`, imported by verl in every process) calls
`install()` when the job's environment has `RLX_VERL_TRACKING=1`, which rlx's launcher sets. A plain verl run with
rlx installed keeps verl's adapter.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ENV_FLAG = "RLX_VERL_TRACKING"
METRICS_PER_CALL = 1000  # MLflow's log_batch limit


def wanted() -> bool:
    return os.environ.get(ENV_FLAG, "") not in ("", "0")


def install() -> bool:
    """Put `RlxMlflowAdapter` in verl's place (idempotent); bound each MLflow call of this process. Returns whether
    it is installed."""
    if not wanted():
        return False
    from verl.utils import tracking

    if getattr(tracking._MlflowLoggingAdapter, "rlx", False):
        return True
    from rlx.track.journal import JOB_HTTP_ENV

    for k, v in JOB_HTTP_ENV.items():  # verl's own start_run/log_params too: a bounded wait, the user's values win
        os.environ.setdefault(k, v)
    # monkeypatch verl's module attribute with the (dynamically built) subclass
    tracking._MlflowLoggingAdapter = _adapter_class(tracking._MlflowLoggingAdapter)  # type: ignore[misc, assignment]
    _late_start(tracking)
    return True


def _adapter_class(base: type) -> type:
    class RlxMlflowAdapter(base):  # type: ignore[misc, valid-type]
        """verl's adapter (its key sanitisation kept) that queues each step for rlx's sender instead of blocking."""

        rlx = True

        def __init__(self) -> None:
            super().__init__()
            import mlflow
            from mlflow.tracking import MlflowClient

            from rlx.track.journal import JOURNAL_ENV, Journal, Outbox

            run = mlflow.active_run()  # verl's Tracking started (or attached to) it just before
            self.run_id = run.info.run_id if run is not None else os.environ["MLFLOW_RUN_ID"]
            self.client = MlflowClient(tracking_uri=mlflow.get_tracking_uri())
            path = os.environ.get(JOURNAL_ENV) or Path.cwd() / f"rlx-tracking-journal-{self.run_id}.jsonl"
            self.journal = Journal(path)
            self.buffered = 0
            self._outbox = Outbox(self.client, self.journal, note=_note)

        def log(self, data, step) -> None:
            from mlflow.entities import Metric

            from rlx.track import journal

            ts = int(time.time() * 1000)
            metrics = []
            for k, v in data.items():
                try:
                    value = float(v)
                except (TypeError, ValueError):
                    continue  # verl's adapter would have MLflow refuse the whole step for one non-number
                metrics.append(Metric(self._sanitize_key(k), value, ts, int(step)))
            for i in range(0, len(metrics), METRICS_PER_CALL):
                self._outbox.put(journal.batch(self.run_id, metrics=metrics[i : i + METRICS_PER_CALL]))

        def finish(self) -> None:
            """Drain the sender (up to `RLX_TRACKING_FINISH_WAIT` s for a server that is down), then end the run as
            verl does. With calls still journaled the run is left for rlx, which journals its end after them."""
            from rlx.track.journal import FINISH_WAIT, FINISH_WAIT_ENV

            self.buffered = self._outbox.close(float(os.environ.get(FINISH_WAIT_ENV) or FINISH_WAIT))
            if self.buffered:
                _note(
                    f"rlx: the tracking server is still unreachable; {self.buffered} calls are kept in "
                    f"{self.journal.path}. `rlx runs sync {self.run_id}` sends them when it is back"
                )
                return
            try:
                super().finish()
            except Exception as e:  # noqa: BLE001 - the run's end is rlx's to record; never fail training here
                _note(f"rlx: could not end the MLflow run ({str(e).splitlines()[0][:200] if str(e) else e!r})")

    return RlxMlflowAdapter


def _late_start(tracking) -> None:
    """verl's `Tracking` gives up on MLflow when it cannot start the run (3 tries, then "Proceeding without MLflow
    tracking"), and the whole run's metrics are lost. In a run rlx launched the run already exists
    (`MLFLOW_RUN_ID`): journal its params and metrics from the first step instead, for the sender to replay."""
    init = tracking.Tracking.__init__

    def __init__(self, project_name, experiment_name, default_backend="console", config=None):
        init(self, project_name, experiment_name, default_backend, config)
        backends = [default_backend] if isinstance(default_backend, str) else list(default_backend)
        if "mlflow" not in backends or "mlflow" in self.logger or not os.environ.get("MLFLOW_RUN_ID"):
            return
        from rlx.track import journal

        adapter = tracking._MlflowLoggingAdapter()
        params = [(k, str(v)[:6000]) for k, v in tracking._compute_mlflow_params_from_objects(config).items()]
        for i in range(0, len(params), 100):  # MLflow's limit per call
            adapter._outbox.put(journal.batch(adapter.run_id, params=params[i : i + 100]))
        self.logger["mlflow"] = adapter
        _note(
            f"rlx: MLflow was unreachable when verl's tracking started; run {adapter.run_id}'s params and metrics "
            f"wait in {adapter.journal.path} and are sent when it answers"
        )

    tracking.Tracking.__init__ = __init__


def _note(text: str) -> None:
    from rlx.redact import redact_text

    print(redact_text(text), file=sys.stderr, flush=True)
