"""`trackuri.reason`: MLflow's own failure text for a hung, a refused and an unresolvable server, condensed."""

from __future__ import annotations

import socket

import pytest

from rlx.trackuri import reason


def _mlflow_error(url: str, monkeypatch) -> Exception:
    """The exception MLflow's REST client raises for `url` (real urllib3 retries, no mock)."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(Exception) as info:
        MlflowClient(tracking_uri=url).search_experiments(max_results=1)
    return info.value


def test_a_server_that_never_answers_is_a_read_timeout_with_its_limit(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)  # accepts (in the kernel's backlog) and never answers
        e = _mlflow_error(f"http://127.0.0.1:{s.getsockname()[1]}", monkeypatch)
    assert "HTTPConnectionPool" in str(e)  # what MLflow says ...
    assert reason(e) == "no answer within 1 s (read timed out)"  # ... and what rlx says


def test_a_closed_port_is_connection_refused(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        e = _mlflow_error(f"http://127.0.0.1:{port}", monkeypatch)
    assert reason(e) == "nothing accepts connections (connection refused)"


def test_other_failures_keep_their_first_line_bounded():
    assert reason(RuntimeError("database is locked\nat line 2")) == "database is locked"
    assert reason(RuntimeError("x" * 1000)) == "x" * 300
    assert reason(KeyError()) == "KeyError"
