"""The Ray Jobs wrapper's pure logic: submission ids, deadlines, error mapping, idempotent submit, the job command."""

from __future__ import annotations

import re
import socket
import threading

import pytest

from rlx.errors import RlxError, UnreachableError
from rlx.launch.jobs import JobNotFound, Jobs, _translate, submission_id_for, with_deadline


def test_submission_id_is_derived_from_the_run_id_and_safe():
    sid = submission_id_for("8DF8872C52AF431AB190D45668551742")
    assert sid == "rlx-8df8872c52af431ab190d45668551742"
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", sid)
    with pytest.raises(ValueError):
        submission_id_for("../etc")


def test_deadline_abandons_a_hung_call():
    release = threading.Event()
    with pytest.raises(UnreachableError, match="did not answer") as e:
        with_deadline(lambda: release.wait(30), 0.2, "connect", "http://h:1")
    release.set()
    assert e.value.exit_code == 3


def test_dashboard_that_accepts_and_never_answers_fails_within_the_deadline():
    # reliability.md: the SDK constructor hangs forever on such a server.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    try:
        with pytest.raises(UnreachableError):
            Jobs(f"http://127.0.0.1:{srv.getsockname()[1]}", timeout=1.0)
    finally:
        srv.close()


class AuthenticationError(Exception):  # same name as ray.exceptions.AuthenticationError
    pass


def test_auth_errors_map_to_a_token_hint_without_the_token():
    err = _translate(AuthenticationError("401 Missing authentication token"), "connect", "http://h:1")
    assert isinstance(err, UnreachableError) and "RAY_AUTH_TOKEN" in err.hint
    err = _translate(RuntimeError("Request failed with status code 403: Invalid token"), "submit", "http://h:1")
    assert isinstance(err, UnreachableError) and "RAY_AUTH_TOKEN_PATH" in err.hint


def test_error_mapping():
    assert isinstance(_translate(RuntimeError("Request failed with status code 404: Job x does not exist."), "info",
                                 "a"), JobNotFound)
    assert isinstance(_translate(ConnectionError("Failed to connect to Ray at address: a"), "connect", "a"),
                      UnreachableError)
    other = RuntimeError("Request failed with status code 500: boom")
    assert _translate(other, "submit", "a") is other


class _FakeClient:
    """Ray's "already exists" behaviour: a second submit with the same id fails with an HTTP 500 text."""

    def __init__(self):
        self.jobs: dict[str, dict] = {}

    def submit_job(self, *, submission_id, metadata, **kw):
        if submission_id in self.jobs:
            raise RuntimeError(f"Request failed with status code 500: ValueError: Job with submission_id "
                               f"{submission_id} already exists. Please use a different submission_id.")
        self.jobs[submission_id] = metadata
        return submission_id

    def get_job_info(self, submission_id):
        return type("Info", (), {"metadata": self.jobs[submission_id]})()


def _jobs_with(client) -> Jobs:
    jobs = object.__new__(Jobs)
    jobs.address, jobs.timeout, jobs._client = "http://fake:1", 5.0, client
    return jobs


def test_resubmitting_the_same_run_adopts_the_job_and_a_foreign_one_is_refused():
    client = _FakeClient()
    jobs = _jobs_with(client)
    kw = dict(entrypoint="true", submission_id="rlx-abc", metadata={"rlx.run_id": "abc"}, runtime_env={})
    assert jobs.submit(run_id="abc", **kw) == "rlx-abc"
    assert jobs.submit(run_id="abc", **kw) == "rlx-abc"
    assert list(client.jobs) == ["rlx-abc"]
    with pytest.raises(RlxError, match="did not submit"):
        jobs.submit(run_id="other", **kw)


def test_gpu_job_command_adds_mlflow_parses_and_never_carries_a_literal_secret():
    from rlx.launch import job_overrides
    from rlx.resolve import resolve
    from rlx.resolve.overrides import parse

    resolved = resolve("grpo", overrides=["+trainer.wandb_api_key=sk-canary0123456789abcdef", "trainer.logger=[console]"])
    overrides, replaced = job_overrides(resolved)
    assert "trainer.logger=[console,mlflow]" in overrides
    assert replaced == ["trainer.wandb_api_key"]
    assert not any("sk-canary" in o for o in overrides)
    assert len(parse(overrides)) == len(overrides)


def test_remote_smoke_job_ships_its_config_and_uses_the_clusters_python(tmp_path, monkeypatch):
    from rlx.launch import prepare
    from rlx.launch.run import _runtime_env
    from rlx.resolve import resolve

    monkeypatch.delenv("RLX_JOB_PYTHON", raising=False)
    monkeypatch.delenv("RLX_SMOKE_ENTRY", raising=False)
    plan = prepare(resolve("grpo"), None, smoke=True, local=False, task="copy", steps=2, seed=1,
                   address="http://10.1.2.3:8265", detach=True, tracking_uri="http://mlflow:5000", format="json")
    assert plan.argv("resolved.yaml") == ["python", "-m", "rlx.smoke", "--config", "resolved.yaml", "--task", "copy",
                                          "--seed", "1", "--steps", "2"]
    env = _runtime_env(plan, "abc", tmp_path)
    assert env["working_dir"] == str(tmp_path)
    assert env["env_vars"] == {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLFLOW_RUN_ID": "abc",
                               "PYTHONUNBUFFERED": "1", "RLX_VERL_TRACKING": "1"}


def test_the_flag_the_launcher_sends_is_the_one_the_plugin_reads():
    from rlx.launch.submit_cmd import VERL_TRACKING
    from rlx.track.verl_tracking import ENV_FLAG

    assert VERL_TRACKING == ENV_FLAG


def test_tracking_uri_with_a_password_is_refused(monkeypatch):
    from rlx.errors import ConfigError
    from rlx.launch import prepare
    from rlx.resolve import resolve

    with pytest.raises(ConfigError, match="password") as e:
        prepare(resolve("grpo"), None, smoke=True, local=False, task="copy", steps=2, seed=1,
                address="http://10.1.2.3:8265", detach=True, tracking_uri="https://u:pw1234@mlflow:5000",
                format="text")
    assert "pw1234" not in e.value.render()
