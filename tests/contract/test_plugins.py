"""Run the plugin contract checks (`test_plugins_fresh.py`) in a fresh interpreter that has not imported verl or rlx's
plugin, so what they test is what verl's own entry-point loading registers, as in a Ray worker.

Also checks the failure path: with verl's plugin loading switched off, `ensure_registered` raises a clear RlxError.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RLX_ALGO_CFG", "VERL_USE_EXTERNAL_PLUGINS",
                                                              "VERL_USE_EXTERNAL_MODULES")}
    env.update(extra)
    return env


@pytest.mark.slow
def test_plugin_checks_pass_in_a_fresh_process():
    """Slow: a fresh interpreter imports verl, whose entry point loads the plugins (about 12 s)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", str(HERE / "test_plugins_fresh.py")],
        cwd=REPO, env=_env(RLX_FRESH_PLUGIN_PROCESS="1"), capture_output=True, text=True, timeout=600,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1], tail


@pytest.mark.slow
def test_plugin_loading_switched_off_is_caught_by_ensure_registered():
    """Slow: a fresh interpreter imports verl with plugin loading switched off (about 8 s)."""
    code = (
        "import sys\n"
        "import verl\n"
        "from verl.trainer.ppo import core_algos\n"
        "print(sorted(n for n in core_algos.POLICY_LOSS_REGISTRY if n.startswith('rlx_')))\n"
        "from rlx.errors import RlxError\n"
        "from rlx.verl_plugin import ensure_registered\n"
        "try:\n"
        "    ensure_registered()\n"
        "except RlxError as e:\n"
        "    print(e.render()); sys.exit(7)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(VERL_USE_EXTERNAL_PLUGINS="none"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 7, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "[]"  # verl itself loaded nothing: a Ray worker would miss rlx's names
    assert "error: rlx's verl plugin is not loaded: VERL_USE_EXTERNAL_PLUGINS=none" in proc.stdout
    assert "hint: unset VERL_USE_EXTERNAL_PLUGINS" in proc.stdout
