"""GAD in the smoke engine: the discriminator learns to separate teacher from student during the D-only warm-up,
and once the student trains against sg(D(student)) its mean D score climbs back from its low.

Slow: 60 seeded CPU training steps (about 20 s on the shared 2-core machine).
"""

from __future__ import annotations

import pytest

from rlx.resolve import resolve
from rlx.smoke.engine import run


@pytest.mark.slow
def test_gad_warmup_separates_then_student_score_rises():
    res = run(resolve("gad").container(), steps=60, seed=0, algorithm="gad")
    hist = res.history
    warm = res.sizes.critic_warmup
    assert warm >= 2  # the preset's critic_warmup=10 shrinks to the smoke engine's cap, never to 0
    for m in hist:
        for k in ("critic/d_loss", "critic/d_acc", "critic/d_teacher_score_mean", "critic/d_student_score_mean",
                  "response_length/mean"):
            assert k in m
    # warm-up: D alone on the BT loss; the actor is not updated
    assert all("actor/pg_loss" not in m for m in hist[:warm])
    assert max(m["critic/d_acc"] for m in hist[:warm]) > 0.7
    # the reward is D's score of the student's own response (critic/score is what the advantages saw)
    assert all(m["critic/score/mean"] == pytest.approx(m["critic/d_student_score_mean"], abs=1.0) for m in hist)
    # adversarial stage: the student's mean D score rises from its post-warm-up low
    student = [m["critic/d_student_score_mean"] for m in hist]
    low = min(range(warm, len(student)), key=student.__getitem__)
    assert low < len(student) - 5
    assert sum(student[-5:]) / 5 > student[low] + 0.5
