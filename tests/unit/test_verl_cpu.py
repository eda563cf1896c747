"""The pure parts of the verl engine (`rlx.verl_cpu`): the CPU overrides, the tokenizer and the rollout's sampler.

The overrides are checked against verl's own batch rules (a mini-batch divides the train batch; a micro-batch divides
a mini-batch's samples) and against the promise that only sizes change. The tokenizer is checked with verl's own
Continuous Token builder, which is what refused a tokenizer without a one-token newline. The sampler is checked
against the softmax it samples from.
"""

from __future__ import annotations

import math

import pytest
import torch

from rlx.algorithms import ALGORITHMS
from rlx.resolve import resolve
from rlx.resolve.overrides import parse
from rlx.verl_cpu import sizes
from rlx.verl_cpu.rollout import sample_rows

READY = sorted(a.name for a in ALGORITHMS if a.ready)
ASSETS = {"model": "/m", "train": "/d/train.parquet", "val": "/d/val.parquet", "reward": "/d/r.py", "checkpoints": "/c"}
# Algorithm knobs a CPU rehearsal must never touch (loss_scale_factor is a length and is shrunk with the length).
KNOBS = (
    "algorithm.",
    "actor_rollout_ref.actor.clip_ratio",
    "actor_rollout_ref.actor.loss_agg_mode",
    "actor_rollout_ref.actor.policy_loss",
    "actor_rollout_ref.actor.kl_loss",
    "actor_rollout_ref.actor.use_kl",
    "actor_rollout_ref.actor.entropy_coeff",
    "actor_rollout_ref.actor.ppo_epochs",
    "actor_rollout_ref.rollout.temperature",
    "actor_rollout_ref.rollout.top_p",
)


def _plan(algo: str, *overrides: str, steps: int | None = 3):
    r = resolve(algo, overrides=list(overrides))
    return sizes.plan(r.get, assets=ASSETS, steps=steps, has_critic=r.get("algorithm.adv_estimator") == "gae"), r


def _values(plan) -> dict[str, str]:
    return {o.removeprefix("++").partition("=")[0]: o.partition("=")[2] for o in plan.overrides}


@pytest.mark.parametrize("algo", READY)
def test_cpu_overrides_keep_every_algorithm_knob_and_parse(algo):
    plan, _ = _plan(algo)
    parse(list(plan.overrides))  # Hydra's grammar accepts every one
    assert all(o.startswith("++") for o in plan.overrides)
    touched = [k for k in _values(plan) if k.startswith(KNOBS)]
    assert touched == [], f"the CPU overrides change algorithm knobs: {touched}"


@pytest.mark.parametrize("algo", READY)
def test_cpu_batch_sizes_satisfy_verls_batch_rules(algo):
    plan, _ = _plan(algo)
    v = _values(plan)
    n = int(v["actor_rollout_ref.rollout.n"])
    train = int(v["data.train_batch_size"])
    mini = int(v["actor_rollout_ref.actor.ppo_mini_batch_size"])
    micro = int(v["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"])
    assert train % mini == 0  # verl: train_batch_size must be divisible by ppo_mini_batch_size
    assert (mini * n) % micro == 0  # verl: the mini-batch's samples split into whole micro-batches
    assert sizes.SAMPLES_PER_STEP - n < train * n <= sizes.SAMPLES_PER_STEP  # about 128 samples per step
    assert 1 <= train // mini <= sizes.MAX_MINI_BATCHES


def test_group_size_is_capped_and_steps_follow_the_flag():
    plan, r = _plan("grpo", "actor_rollout_ref.rollout.n=16", steps=7)
    v = _values(plan)
    assert v["actor_rollout_ref.rollout.n"] == "8" and v["data.train_batch_size"] == "16"
    assert v["trainer.total_training_steps"] == "7"
    shown = {s.key: s for s in plan.shrunk}
    assert shown["actor_rollout_ref.rollout.n"].resolved == 16  # the table shows what was replaced
    assert "trainer.device" not in shown  # platform settings are not sizes


def test_own_parquet_files_are_kept_with_their_reward(tmp_path):
    data = tmp_path / "train.parquet"
    data.write_bytes(b"PAR1")
    plan, _ = _plan("grpo", f"data.train_files={data}", "reward.custom_reward_function.path=/x/mine.py")
    v = _values(plan)
    assert plan.own_data
    assert "data.train_files" not in v and "reward.custom_reward_function.path" not in v
    assert v["data.truncation"] == "left"  # prompts truncated to the shrunk length, not refused
    missing, _ = _plan("grpo", "data.train_files=/nowhere/train.parquet")
    assert not missing.own_data and _values(missing)["data.train_files"] == ASSETS["train"]


def test_critic_gets_the_tiny_model_and_cpu_settings():
    plan, _ = _plan("ppo")
    v = _values(plan)
    assert v["critic.model.path"] == ASSETS["model"] and v["critic.strategy"] == "fsdp2"
    assert "critic.model.path" not in _values(_plan("grpo")[0])


def test_drgrpo_constant_shrinks_with_the_length():
    v = _values(_plan("drgrpo")[0])
    assert v["actor_rollout_ref.actor.loss_scale_factor"] == v["data.max_response_length"]


# ---- tokenizer ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from rlx.verl_cpu.assets import write_tokenizer

    path = tmp_path_factory.mktemp("tok")
    write_tokenizer(path)
    return AutoTokenizer.from_pretrained(str(path))


@pytest.mark.parametrize("text", ["123=", "héllo wörld", "def f(x):\n\treturn x  # 中文 ✓", "<think>a</think>"])
def test_byte_tokenizer_encodes_any_text_one_token_per_byte(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) == len(text.encode("utf-8"))
    assert tokenizer.decode(ids) == text


def test_verls_qwen_token_builder_accepts_the_tokenizer(tokenizer):
    # continuous_token.py:556-560 refused the smoke engine's character tokenizer (no one-token newline)
    from verl.utils.tokenizer.continuous_token import QwenContinuousTokenBuilder

    QwenContinuousTokenBuilder(tokenizer)
    assert tokenizer.eos_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "123="}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "123="  # content only: a 3-digit prompt stays 4 tokens


# ---- sampler ------------------------------------------------------------------------------------------------------

LOGITS = torch.tensor([[2.0, 1.0, 0.0, -1.0]])


def test_greedy_picks_the_argmax_with_its_log_softmax():
    tok, logp = sample_rows(LOGITS, 0.0, -1, 1.0)
    assert int(tok) == 0
    assert float(logp) == pytest.approx(2.0 - math.log(sum(math.exp(x) for x in (2, 1, 0, -1))), abs=1e-6)


def test_top_k_one_and_tiny_top_p_are_greedy():
    g = torch.Generator().manual_seed(0)
    rows = LOGITS.repeat(200, 1)
    assert set(sample_rows(rows, 1.0, 1, 1.0, g)[0].tolist()) == {0}
    assert set(sample_rows(rows, 1.0, -1, 0.01, g)[0].tolist()) == {0}


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    # probabilities 0.5, 0.3, 0.2: top_p=0.6 keeps {0, 1} (0.5 < 0.6 <= 0.8), never token 2
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]])).repeat(4000, 1)
    tok, _ = sample_rows(logits, 1.0, -1, 0.6, torch.Generator().manual_seed(1))
    counts = torch.bincount(tok, minlength=3).tolist()
    assert counts[2] == 0
    assert counts[0] / 4000 == pytest.approx(0.5 / 0.8, abs=0.03)


def test_sampling_follows_the_tempered_softmax_and_reports_its_log_prob():
    t = 2.0
    probs = torch.softmax(LOGITS[0] / t, -1)
    tok, logp = sample_rows(LOGITS.repeat(20000, 1), t, -1, 1.0, torch.Generator().manual_seed(2))
    freq = torch.bincount(tok, minlength=4).double() / 20000
    torch.testing.assert_close(freq, probs.double(), atol=0.015, rtol=0)
    torch.testing.assert_close(logp, torch.log(probs)[tok], atol=1e-6, rtol=0)
