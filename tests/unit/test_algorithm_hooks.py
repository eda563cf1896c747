"""`rlx.algorithms.hooks.trainer_options`: what a config asks of both trainers, read from the specs (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from rlx.algorithms import ALGORITHMS, Algorithm, Family, Status
from rlx.algorithms.hooks import TrainerOptions, trainer_options


def getter(values: dict[str, Any]):
    return lambda path, default=None: values.get(path, default)


ADV, LOSS = "algorithm.adv_estimator", "actor_rollout_ref.actor.policy_loss.loss_mode"


def test_nll_weight_is_the_spec_default_when_its_estimator_is_selected():
    default = ALGORITHMS.get("vapo").options["nll_coef"]
    opts = trainer_options(getter({ADV: "rlx_vapo"}))
    assert opts.nll_coef == default and opts.nll_path == "algorithm.rlx.vapo.nll_coef"


def test_nll_weight_follows_the_option_and_zero_switches_it_off():
    assert trainer_options(getter({ADV: "rlx_vapo", "algorithm.rlx.vapo.nll_coef": 0.3})).nll_coef == 0.3
    assert trainer_options(getter({ADV: "rlx_vapo", "algorithm.rlx.vapo.nll_coef": 0})).nll_coef == 0.0


def test_a_left_over_option_section_does_not_switch_the_term_on_for_another_algorithm():
    # a GRPO run whose experiment file still carries VAPO's section: VAPO's estimator is not selected
    assert trainer_options(getter({ADV: "grpo", LOSS: "vanilla", "algorithm.rlx.vapo.nll_coef": 0.5})) == (
        TrainerOptions()
    )


@pytest.mark.parametrize(("key", "expect"), [("teacher_response", "teacher_response"), ("  ", None), (None, None)])
def test_the_discriminator_is_asked_for_by_the_teacher_column(key, expect):
    values = {ADV: "grpo", LOSS: "gspo"}
    if key is not None:
        values["algorithm.rlx.gad.teacher_key"] = key
    opts = trainer_options(getter(values))
    assert opts.teacher_key == expect
    assert opts.teacher_path == ("algorithm.rlx.gad.teacher_key" if expect else None)


def test_a_third_party_spec_gets_the_same_treatment():
    toy = Algorithm(
        "toypo",
        "ToyPO",
        "a toy",
        "0000.00000",
        Family.GROUP,
        Status.READY,
        adv_estimator="toy_adv",
        loss_mode="vanilla",
        plugin_names={"adv_estimator": "toy_adv"},
        options={"sft_weight": 0.2},
        nll_option="sft_weight",
        origin="rlx-toypo",
    )
    opts = trainer_options(getter({ADV: "toy_adv"}), specs=[toy])
    assert (opts.nll_coef, opts.nll_path) == (0.2, "algorithm.rlx.toypo.sft_weight")
    assert trainer_options(getter({ADV: "grpo"}), specs=[toy]) == TrainerOptions()
