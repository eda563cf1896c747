"""`rlx validate config` and `rlx train --dry-run` agree: a config one refuses, the other refuses too, and one that
passes validation (errors aside) is what train accepts. Both run through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

INPUT = Path(__file__).resolve().parents[1] / "data" / "validate" / "input"

# (id, arguments both commands take, text the error must contain)
REFUSED = [
    ("slash-in-run-name", ["--algo", "grpo", "trainer.experiment_name=a/b"], "trainer.experiment_name"),
    ("dotdot-project", ["--algo", "grpo", "trainer.project_name=.."], "trainer.project_name"),
    (
        "preset-vs-experiment-algo",
        ["--preset", str(INPUT / "preset_ok.yaml"), "-c", str(INPUT / "experiment_dapo.yaml")],
        "conflicting algorithm sources",
    ),
    ("algo-vs-preset", ["--algo", "dapo", "--preset", str(INPUT / "preset_ok.yaml")], "conflicting algorithm sources"),
    ("bad-key", ["--algo", "grpo", "actor_rollout_ref.actor.clip_ratoi=0.2"], "clip_ratoi"),
]


def _validate_args(args: list[str]) -> list[str]:
    # `rlx validate config` takes the experiment file as its FILE argument, not -c
    out = list(args)
    if "-c" in out:
        i = out.index("-c")
        out[i : i + 2] = [out[i + 1]]
    return out


@pytest.mark.parametrize(("args", "text"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_both_commands_refuse(rlx_cli, args, text):
    code, out, err = rlx_cli("validate", "config", *_validate_args(args))
    assert code == 1 and text in out + err, out + err
    code, out, err = rlx_cli("train", *args, "--dry-run")
    assert code == 1 and text in out + err, out + err


@pytest.mark.parametrize("name", ["my run ü", "gsm8k-grpo.v2"])
def test_both_commands_accept_a_plain_name(rlx_cli, name):
    code, out, err = rlx_cli(
        "validate", "config", "--algo", "grpo", f"trainer.experiment_name='{name}'", "--format", "json"
    )
    assert code == 0 and not [p for p in json.loads(out)["problems"] if p["code"] == "RLX114"], out + err
    code, out, err = rlx_cli("train", "--algo", "grpo", "--name", name, "--dry-run", "--format", "json")
    assert code == 0, out + err
