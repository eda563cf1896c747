"""Run records: atomic writes, the state machine's terminal states, lookup by prefix, corrupt files quarantined."""

from __future__ import annotations

import json

import pytest

from rlx.errors import UsageError
from rlx.launch import records
from rlx.launch.records import TERMINAL, TO_MLFLOW, RunRecord, State


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RLX_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _record(run_id: str = "abc123def456", **kw) -> RunRecord:
    return RunRecord(run_id=run_id, submission_id=f"rlx-{run_id}", experiment="e", experiment_id="1",
                     tracking_uri="sqlite:////x/mlflow.db", address="http://127.0.0.1:1", embedded_head=False, **kw)


def test_save_writes_atomically_and_round_trips(home):
    rec = records.save(_record(), State.SUBMITTING, create=True)
    path = home / "runs" / rec.run_id / "record.json"
    assert json.loads(path.read_text())["state"] == "SUBMITTING"
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]  # no temp file left behind
    loaded = records.load(path)
    assert loaded == rec


def test_a_removed_record_is_not_written_back(home):
    """A follower that updates the record after the user deleted its folder must not recreate it (row 36)."""
    import shutil

    rec = records.save(_record(), State.SUBMITTED, create=True)
    shutil.rmtree(home / "runs" / rec.run_id)
    records.save(rec, job_status="RUNNING")
    assert rec.job_status == "RUNNING"  # the caller's copy is still current
    assert not (home / "runs" / rec.run_id).exists()


def test_every_terminal_state_has_an_mlflow_status_and_live_ones_do_not():
    assert set(TO_MLFLOW) == set(TERMINAL)
    assert not any(s.terminal for s in (State.PREPARED, State.SUBMITTING, State.SUBMITTED))
    assert TO_MLFLOW[State.STOPPED] == "KILLED" and TO_MLFLOW[State.FAILED] == "FAILED"


def test_find_by_prefix_exact_and_submission_id():
    records.save(_record("aaaa1111"), create=True)
    records.save(_record("aaaa2222"), create=True)
    assert records.find("aaaa1").run_id == "aaaa1111"
    assert records.find("rlx-aaaa2222").run_id == "aaaa2222"
    with pytest.raises(UsageError, match="matches 2 runs"):
        records.find("aaaa")
    with pytest.raises(UsageError, match="no run"):
        records.find("zzzz")


def test_corrupt_record_is_quarantined_not_overwritten(home):
    records.save(_record("good0001"), create=True)
    bad = home / "runs" / "bad00001" / "record.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{ truncated")
    assert [r.run_id for r in records.all_records()] == ["good0001"]
    assert (bad.parent / "record.json.corrupt").read_text() == "{ truncated"


def test_unknown_fields_from_a_newer_rlx_are_ignored():
    d = _record().to_dict() | {"future_field": 1}
    assert RunRecord.from_dict(d).run_id == "abc123def456"
