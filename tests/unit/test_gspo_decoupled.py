"""gspo-decoupled (AReaL's GSPO): each rule fires on its one defect and stays quiet on the valid twin.

The defects come from verl 0.9.1's source: bypass mode reuses rollout log-probs as old_log_prob (no proximal
recompute); rollout correction is skipped without rollout_log_probs or with rollout_is null; a cap <= 1 truncates
every up-weighted token.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RC = "algorithm.rollout_correction"


def _codes(*overrides: str) -> tuple[int, set[str]]:
    cmd = [
        str(Path(sys.executable).with_name("rlx")),
        "validate",
        "config",
        "--algo",
        "gspo-decoupled",
        "--format",
        "json",
        *overrides,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    codes = set()
    try:
        doc = json.loads(out.stdout)
        for f in doc.get("findings", doc.get("problems", [])):
            codes.add(f.get("code") or f.get("rule"))
    except json.JSONDecodeError:
        codes = {c for c in ("RLX475", "RLX476", "RLX477") if c in out.stdout}
    return out.returncode, codes


@pytest.mark.parametrize(
    ("code", "bad", "good"),
    [
        ("RLX475", f"{RC}.bypass_mode=true", f"{RC}.bypass_mode=false"),
        ("RLX476", f"{RC}.rollout_is_threshold=1.0", f"{RC}.rollout_is_threshold=1.5"),
        ("RLX477", f"{RC}.rollout_is=null", f"{RC}.rollout_is=sequence"),
        (
            "RLX477",
            "actor_rollout_ref.rollout.calculate_log_probs=false",
            "actor_rollout_ref.rollout.calculate_log_probs=true",
        ),
    ],
)
def test_rule_fires_on_defect_only(code: str, bad: str, good: str) -> None:
    rc, codes = _codes(bad)
    assert rc == 1 and code in codes
    rc, codes = _codes(good)
    assert code not in codes and rc == 0
