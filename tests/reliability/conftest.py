"""Fixtures for the reliability suite; the helpers live in `rel.py` (importable from the test modules)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import rel  # noqa: E402


@pytest.fixture
def rlx_env(tmp_path) -> dict[str, str]:
    """An isolated environment for one test: its own RLX_HOME, MLflow store and fast deadlines; no RAY_ADDRESS."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", *rel.CANARY)}
    env.update(rel.FAST_ENV)
    env["RLX_HOME"] = str(tmp_path / "rlx-home")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env["HOME"] = str(tmp_path / "home")  # Ray reads ~/.ray/auth_token: never the developer's
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


@pytest.fixture
def blackhole():
    """A loopback server that accepts connections and never answers."""
    b = rel.Blackhole()
    yield b
    b.close()


@pytest.fixture
def refused_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    return f"http://127.0.0.1:{rel.free_port()}"


@pytest.fixture
def own_head():
    """Start private Ray heads for tests that damage or configure them (token auth, killed GCS); stopped by PID."""
    heads = []

    def start(env: dict[str, str] | None = None, num_cpus: int = 1):
        tmp = rel.short_tmp("head")
        head = rel.RayHead(tmp, num_cpus=num_cpus, env=env)
        heads.append((head, tmp))
        return head.start()

    yield start
    for head, tmp in heads:
        rel.stop_head_tree(head)
        shutil.rmtree(tmp, ignore_errors=True)
