"""The tracking journal: order, resumable replay, torn lines, idempotence on a real MLflow store, the Outbox."""

from __future__ import annotations

import time

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from rlx.track import journal
from rlx.track import store as tracking
from rlx.track.journal import Journal, Outbox


@pytest.fixture
def store(tmp_path):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("j")
    run_id = client.create_run(exp).info.run_id
    return client, run_id


def _steps(client, run_id, key="m"):
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_replay_twice_holds_each_step_once_on_a_sql_store(store, tmp_path):
    client, run_id = store
    j = Journal(tmp_path / "j.jsonl")
    for step in range(1, 6):
        j.append(journal.batch(run_id, metrics=[Metric("m", step / 10, 1_700_000_000_000 + step, step)]))
    j.append(journal.terminated(run_id, "FINISHED"))
    assert j.pending() == 6
    done = j.replay(client)
    assert (done.sent, done.pending) == (6, 0)
    # A second replay of the same calls (the .sent file lost, as after a crash between send and mark) adds nothing.
    j.sent_path.unlink()
    j.replay(client)
    assert _steps(client, run_id) == [1, 2, 3, 4, 5]
    assert client.get_run(run_id).info.status == "FINISHED"


class Flaky:
    """A client whose calls fail while `down` is set; records what reached it, in order."""

    def __init__(self):
        self.down = False
        self.got: list[tuple] = []

    def log_batch(self, run_id, metrics=(), params=(), tags=(), synchronous=True):
        if self.down:
            raise ConnectionError("Connection refused")
        self.got += [("m", m.step) for m in metrics] + [("p", p.key) for p in params] + [("t", t.key) for t in tags]

    def set_terminated(self, run_id, status, end_time=None):
        if self.down:
            raise ConnectionError("Connection refused")
        self.got.append(("end", status))


def _metric(step):
    return journal.batch("r", metrics=[Metric("m", 0.0, step, step)])


def test_a_replay_cut_short_resumes_where_it_stopped(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    j.append([_metric(s) for s in (1, 2, 3)])
    client = Flaky()

    class DiesAfterTwo(Flaky):
        def log_batch(self, run_id, metrics=(), **kw):
            if len(self.got) == 2:
                raise ConnectionError("gone")
            super().log_batch(run_id, metrics, **kw)

    first = DiesAfterTwo()
    with pytest.raises(ConnectionError):
        j.replay(first)
    assert first.got == [("m", 1), ("m", 2)] and j.pending() == 1
    j.replay(client)
    assert client.got == [("m", 3)]


def test_a_line_torn_by_a_kill_spoils_only_itself(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    j.append(_metric(1))
    with open(j.path, "a") as f:
        f.write('{"op": "batch", "run_id": "r", "metr')  # killed mid-write: no newline
    j.append(_metric(3))
    client = Flaky()
    done = j.replay(client)
    assert client.got == [("m", 1), ("m", 3)]
    assert (done.sent, done.torn, done.pending) == (2, 1, 0)


def test_outbox_keeps_order_through_an_outage_and_replays(tmp_path):
    client = Flaky()
    notes: list[str] = []
    box = Outbox(client, Journal(tmp_path / "j.jsonl"), probe_every=0.05, note=notes.append)
    box.put(_metric(1))
    deadline = time.monotonic() + 5
    while not client.got and time.monotonic() < deadline:
        time.sleep(0.01)
    client.down = True
    for s in (2, 3, 4):
        box.put(_metric(s))
    deadline = time.monotonic() + 5
    while not box.offline and time.monotonic() < deadline:
        time.sleep(0.01)
    assert box.offline and "unreachable" in notes[0]
    client.down = False
    box.put(_metric(5))
    box.put(journal.terminated("r", "FINISHED"))
    assert box.close(wait=5) == 0
    assert client.got == [("m", 1), ("m", 2), ("m", 3), ("m", 4), ("m", 5), ("end", "FINISHED")]
    assert "back" in notes[-1]


def test_outbox_close_returns_what_an_outage_outlasting_the_run_left(tmp_path):
    client = Flaky()
    client.down = True
    j = Journal(tmp_path / "j.jsonl")
    box = Outbox(client, j, probe_every=0.05)
    for s in (1, 2):
        box.put(_metric(s))
    box.put(journal.terminated("r", "FINISHED"))
    t0 = time.monotonic()
    assert box.close(wait=0.3) == 3
    assert time.monotonic() - t0 < 3
    assert client.got == [] and j.pending() == 3


def test_finish_keeps_its_calls_behind_older_ones_when_the_store_is_down(tmp_path):
    keep = Journal(tmp_path / "client.jsonl")
    client = Flaky()
    client.down = True
    kept = tracking.finish(client, "r", mlflow_status="FINISHED", job_status="SUCCEEDED", keep=keep)
    assert kept == 2 and keep.pending() == 2  # the tags, then the status
    # Back up: a later finish first sends the older calls, then its own, in order.
    client.down = False
    assert tracking.finish(client, "r", mlflow_status="KILLED", job_status="STOPPED", keep=keep) == 0
    assert client.got == [("t", "rlx.job_status"), ("end", "FINISHED"), ("t", "rlx.job_status"), ("end", "KILLED")]


def test_finish_without_a_journal_raises_as_before(tmp_path):
    client = Flaky()
    client.down = True
    with pytest.raises(ConnectionError):
        tracking.finish(client, "r", mlflow_status="FINISHED", job_status="SUCCEEDED")
