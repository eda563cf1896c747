"""Which sizes a smoke run shrinks: group size, batch, mini-batches; algorithm knobs are not touched."""

from __future__ import annotations

import pytest

from rlx.resolve import resolve
from rlx.smoke import sizes


def _plan(algo, **over):
    r = resolve(algo, overrides=[f"{k}={v}" for k, v in over.items()])
    return sizes.plan(r.get, max_prompt_length=5, max_response_length=4, steps=None), r


def test_group_size_is_capped_and_the_batch_kept_at_128_samples():
    sz, r = _plan("grpo")
    assert r.get("actor_rollout_ref.rollout.n") == 16
    assert (sz.n, sz.prompts, sz.samples) == (8, 16, 128)
    assert sz.steps == sizes.DEFAULT_STEPS


def test_single_sample_algorithms_get_more_prompts():
    sz, _ = _plan("ppo")
    assert (sz.n, sz.prompts) == (1, 128)


@pytest.mark.parametrize(("train", "mini", "expected"), [(256, 64, 4), (1024, 1024, 1), (512, 32, 4), (256, 128, 2)])
def test_mini_batch_count_follows_the_config_up_to_four(train, mini, expected):
    sz, _ = _plan("gspo", **{"data.train_batch_size": train, "actor_rollout_ref.actor.ppo_mini_batch_size": mini})
    assert sz.mini_batches == expected
    assert sz.prompts % sz.mini_batches == 0


def test_length_scaled_knobs_and_warmup_are_shrunk_and_listed():
    sz, _ = _plan("drgrpo")
    assert sz.loss_scale_factor == 4.0  # Dr.GRPO's constant is the max response length
    keys = {s.key for s in sz.shrunk}
    assert "actor_rollout_ref.actor.loss_scale_factor" in keys
    assert "actor_rollout_ref.actor.clip_ratio_low" not in keys  # a knob, kept
    table = sz.table()
    assert "actor_rollout_ref.rollout.n" in table and "rlx-smoke-qwen2-tiny" in table
    assert all(k.startswith("rlx/smoke/") for k in sz.params())
