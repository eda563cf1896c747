"""Shared fixtures: a private Ray head on loopback, a real sqlite MLflow store, and the CLI runner.

Real components only (a real local Ray, a real MLflow store in a temporary directory). The Ray head is started with
`ray start --head --block` as a child process and stopped by signalling that process, which tears down exactly the
processes it started: never `ray stop` (it would stop every Ray cluster of this user) and never a kill by pattern.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from _rlxtest import REPO, RayHead, free_port, run_rlx, wait_for  # noqa: F401 - re-exported for old imports


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """One private Ray head for the session (integration tests share it; each job has its own id)."""
    if shutil.which("ray", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("ray is not installed in this environment")
    # Ray's session dir path must stay short (unix socket paths are limited to 107 bytes).
    tmp = Path(f"/tmp/rlxray-{os.getpid()}")
    tmp.mkdir(exist_ok=True)
    head = RayHead(tmp).start()
    yield head
    head.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory) -> Path:
    """One migrated sqlite MLflow store per session: creating a store runs MLflow's schema migrations (2-12 s)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch, _mlflow_template) -> str:
    """A fresh sqlite MLflow store in a temp dir (a copy of the migrated template), set as MLFLOW_TRACKING_URI."""
    import sqlite3

    db = tmp_path / "mlflow.db"
    shutil.copyfile(_mlflow_template, db)
    with sqlite3.connect(db) as con:  # the Default experiment's artifacts belong in this test's directory
        con.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            ((tmp_path / "mlruns" / "0").as_uri(),),
        )
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def rlx_cli():
    """Run the CLI in-process through its real entry point (error boundary included); returns (code, out, err)."""
    import contextlib
    import io

    from rlx.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
        return code, out.getvalue(), err.getvalue()

    return run


# The fast tier (`scripts/test.sh -m "not slow"`, in the README) is every test that needs no Ray head, no training run
# and no fault injection. Everything under these folders is slow by what it does (each file's docstring says what it
# starts), as is anything marked with one of these markers; a slow test elsewhere is marked by hand and says why.
_SLOW_DIRS = ("integration", "reliability")
_SLOW_MARKERS = ("integration", "smoke", "reliability", "verl_engine")


def pytest_collection_modifyitems(config, items):
    tests = Path(__file__).parent
    for item in items:
        folder = Path(item.path).relative_to(tests).parts[0] if Path(item.path).is_relative_to(tests) else ""
        if folder in _SLOW_DIRS or any(item.get_closest_marker(m) for m in _SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)
