"""GAD's rules: each fires on its one defect and stays quiet on the valid twin (real registry, real validator).

RLX465 no teacher-response column, RLX466 critic (the discriminator) disabled, RLX401 a group of one (GRPO over D's
scores needs n >= 2), RLX467 no D-only warm-up, RLX468 a reward model or custom reward beside the discriminator.
"""

from __future__ import annotations

import pytest

from rlx.validate import validate_source

TEACHER = "algorithm.rlx.gad.teacher_key"


def _findings(*overrides: str):
    report = validate_source(algo="gad", overrides=list(overrides))
    return {(f.code, f.severity.value if hasattr(f.severity, "value") else str(f.severity)) for f in report.problems}


def _codes(*overrides: str) -> set[str]:
    return {c for c, _ in _findings(*overrides)}


def test_preset_is_clean():
    assert not _codes()


@pytest.mark.parametrize(
    ("code", "severity", "bad", "good"),
    [
        ("RLX465", "error", f"{TEACHER}=null", f"{TEACHER}=my_teacher_column"),
        ("RLX465", "error", f"{TEACHER}=''", f"{TEACHER}=teacher_response"),
        ("RLX466", "error", "critic.enable=false", "critic.enable=true"),
        ("RLX401", "error", "actor_rollout_ref.rollout.n=1", "actor_rollout_ref.rollout.n=8"),
        ("RLX467", "warning", "trainer.critic_warmup=0", "trainer.critic_warmup=1"),
        ("RLX468", "warning", "reward.custom_reward_function.path=/tmp/reward.py",
         "reward.custom_reward_function.path=null"),
        ("RLX468", "warning", "reward.reward_model.enable=true", "reward.reward_model.enable=false"),
    ],
)
def test_rule_fires_on_defect_only(code: str, severity: str, bad: str, good: str) -> None:
    assert (code, severity) in _findings(bad)
    assert code not in _codes(good)


def test_critic_on_is_not_flagged_as_unused():
    # RLX405 (critic on a critic-free method) would be wrong here: the critic worker is GAD's discriminator
    assert "RLX405" not in _codes("critic.enable=true")


def test_other_reward_message_says_which_wins():
    report = validate_source(algo="gad", overrides=["reward.reward_model.enable=true"])
    (f,) = [f for f in report.problems if f.code == "RLX468"]
    assert "discriminator score wins" in f.message
